#!/bin/sh
# Roles of the classifier-monitor image. Secrets may come as *_FILE variables
# (MONITOR_DATABASE_URL_FILE, MONITOR_API_TOKEN_FILE, MONITOR_BASIC_AUTH_FILE).
set -eu

role="${1:-dashboard}"
[ "$#" -gt 0 ] && shift

case "$role" in
  migrate)
    # one-shot: bring the schema to the latest migration, then exit
    exec monitor db upgrade "$@"
    ;;
  scheduler)
    # several may run: one holds the database lock, the others wait to take over
    exec monitor run "$@"
    ;;
  dashboard)
    # dashboard + HTTP API + /metrics; workers share the database, not memory
    # threads: reads answer while a worker's other thread waits on a write (bench/api_load.py)
    exec gunicorn --workers "${GUNICORN_WORKERS:-4}" --bind "${BIND:-0.0.0.0:8050}" --threads "${GUNICORN_THREADS:-4}" \
      --timeout "${GUNICORN_TIMEOUT:-120}" --access-logfile - --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
      "$@" dashboards.wsgi:server
    ;;
  api)
    # the HTTP API alone, without the dashboard
    exec gunicorn --workers "${GUNICORN_WORKERS:-4}" --bind "${BIND:-0.0.0.0:8050}" --threads "${GUNICORN_THREADS:-4}" \
      --timeout "${GUNICORN_TIMEOUT:-120}" --access-logfile - "$@" monitor.api.wsgi:app
    ;;
  retention)
    exec monitor retention "$@"
    ;;
  consume)
    # a stream consumer ([models.stream]); any number may run: they share the durable consumer
    exec monitor consume "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac

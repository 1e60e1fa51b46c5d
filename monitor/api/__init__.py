"""HTTP API on the dashboard's Flask server (docs/contract.md §4).

`register(server, config)` installs, on any Flask app:
- the security hooks (`monitor.api.security`: API token for writes, basic auth, body limit),
- `GET /healthz` (`monitor.api.health`),
- the JSON API under `/api/v1` (`monitor.api.routes`),
- `GET /metrics` in Prometheus text format (`monitor.api.prometheus`).

Reads use the dashboard's engine when it has put one in `server.extensions["monitor"]` (an
object with `.engine`); writes, and reads without a dashboard, use an engine made from
`config.database_url` on first use in each process (`monitor.api.engines.engine_for`), so
gunicorn workers never share connections across a fork.
`create_api_app(config)` is a Flask app with the API only (`monitor.api.wsgi:app`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from monitor.api.engines import engine_for
from monitor.config import MonitorConfig


def preload() -> None:
    """Import the services the API calls (pandas, scipy, scikit-learn behind them) now, at
    start, so that no request of a fresh gunicorn worker pays seconds of imports."""
    import importlib

    for module in ("monitor.ingest.pipeline", "monitor.metrics.service", "monitor.drift.service",
                   "monitor.fairness.service", "monitor.alerts.service", "monitor.drift.aggregate",
                   "monitor.estimation.aggregate", "monitor.estimation.service"):
        importlib.import_module(module)


def register(server: Any, config: MonitorConfig) -> None:
    """Install the API routes, /healthz, /metrics and the security hooks on a Flask app."""
    from monitor.api import health, prometheus, routes, security

    preload()

    server.extensions["monitor_api"] = {"config": config, "engine": None}
    security.install(server)
    server.register_blueprint(health.blueprint)
    server.register_blueprint(routes.blueprint)

    def metrics() -> Response:
        try:
            body = prometheus.render(config, lambda: engine_for(server))
        except Exception as error:
            # down or unmigrated: a JSON 503 with the reason (the scrape fails, `up` is 0);
            # anything else is a bug and goes to the server log and Flask's 500
            if health.database_failure(error) is None:
                raise
            return health.unavailable(error)
        return Response(body, mimetype=None, content_type=prometheus.CONTENT_TYPE)

    server.add_url_rule("/metrics", "monitor_prometheus", metrics, methods=["GET"])


def create_api_app(config: MonitorConfig) -> Flask:
    """A Flask app serving the API alone (no dashboard)."""
    app = Flask("monitor.api")
    register(app, config)
    return app

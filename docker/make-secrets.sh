#!/bin/sh
# Writes random secrets for compose.yaml into ./secrets (kept out of git). Idempotent.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets logs
umask 077
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
[ -s secrets/postgres_password ] || random > secrets/postgres_password
[ -s secrets/database_url ] || printf 'postgresql://monitor:%s@postgres:5432/monitor\n' "$(cat secrets/postgres_password)" > secrets/database_url
[ -s secrets/api_token ] || random > secrets/api_token
[ -s secrets/basic_auth ] || printf 'admin:%s\n' "$(random)" > secrets/basic_auth
[ -f monitor.toml ] || cp monitor.example.toml monitor.toml
echo "secrets in $(pwd)/secrets; dashboard login: $(cat secrets/basic_auth)"

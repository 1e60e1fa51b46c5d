"""WSGI entry point: `gunicorn -w 2 -b 127.0.0.1:8050 dashboards.wsgi:server`.

The configuration comes from $MONITOR_CONFIG (else ./monitor.toml); $MONITOR_DATABASE_URL
overrides its database. The app is built at import, in each worker after the fork when
gunicorn runs without --preload, so no database connection is shared between processes.
"""

from __future__ import annotations

from dashboards.app import create_app, freeze_startup_objects
from monitor.config import load_config

app = create_app(load_config())
freeze_startup_objects()
server = app.server

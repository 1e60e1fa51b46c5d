"""WSGI entry point of the API without the dashboard: `gunicorn monitor.api.wsgi:app`.

The configuration is found as by the CLI (`$MONITOR_CONFIG`, else ./monitor.toml); it is
read when gunicorn imports this module, in the master with --preload or in each worker.
"""

from __future__ import annotations

from monitor.api import create_api_app
from monitor.config import load_config

app = create_api_app(load_config())

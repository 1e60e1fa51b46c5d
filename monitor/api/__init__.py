"""HTTP API on the dashboard's Flask server (CONTRACT §4)."""

from __future__ import annotations

from typing import Any

from monitor.config import MonitorConfig


def register(server: Any, config: MonitorConfig) -> None:
    """Install the API routes, /healthz, /metrics and the security hooks on a Flask app."""

"""Real receivers on 127.0.0.1 (the alert tests' HTTP server) for the incident tests."""

from tests.alerts.conftest import http_receiver  # noqa: F401 - a fixture, used by name

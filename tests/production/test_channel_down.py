"""A notification channel that is down (nothing listening) is retried until it is back; the
alert is delivered once, on SQLite and PostgreSQL. Complements tests/alerts/test_outbox.py
(which covers HTTP error answers) with a refused connection."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine

from monitor.alerts.outbox import backoff, deliver_pending
from tests.alerts.helpers import context, feed, make_config, observation

NOW = 1_800_000_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_channel_that_is_down_is_retried_until_it_comes_back(engine: Engine, db_url: str) -> None:
    port = _free_port()  # nothing listens here yet: connection refused
    config = make_config(db_url, channels=[{"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "timeout": 2}])
    feed(engine, config, context(engine, config), [observation(10, 0, 40, segment="region", value="south")], now=NOW)
    assert deliver_pending(engine, config, now=NOW) == {"events": 1, "sent": 0, "failed": 1, "silenced": 0}
    assert deliver_pending(engine, config, now=NOW + backoff(1))["failed"] == 1

    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        later = NOW + backoff(1) + backoff(2)
        assert deliver_pending(engine, config, now=later)["sent"] == 1
        assert deliver_pending(engine, config, now=later + 86_400)["events"] == 0
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert len(received) == 1

"""Real receivers on 127.0.0.1: an HTTP server (webhook, Slack) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller


@dataclass
class HttpReceiver:
    """Records every POST; answers `fail_with` to the first `failures` requests."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    fail_with: int = 500

    @property
    def delivered(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["status"] == 200]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer
            ) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 (a free port) answering with `handler` in a thread; yields
    its base URL, stops it on exit."""
    server = server_class(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                status = receiver.fail_with if receiver.failures > 0 else 200
                receiver.failures -= 1 if receiver.failures > 0 else 0
                receiver.requests.append({"path": self.path, "body": body, "status": status})
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"broken")

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        receiver.url = url
        yield receiver


@dataclass
class SmtpReceiver:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            receiver.envelopes.append(envelope)
            receiver.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    receiver.port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=receiver.port)
    controller.start()
    yield receiver
    controller.stop()

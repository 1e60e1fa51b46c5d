"""Hostile receivers must not blind the monitor (issue 12, notification side).

Real HTTP receivers on 127.0.0.1 (one that answers in time, one that sleeps past the channel
timeout, one that answers 500, one that answers 400) and a real SMTP server (aiosmtpd), on
SQLite and PostgreSQL. We count what the receivers got: an event reaches a receiver that
answers in time exactly once, a slow one a bounded number of times and always with the same
Idempotency-Key, and one hanging channel costs a pass one timeout, not one per event.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select

from monitor.alerts.models import AlertEvent
from monitor.alerts.outbox import MAX_BACKOFF, DeliveryPolicy, claim_due, deliver_pending
from monitor.alerts.service import deliveries_frame, pending_events
from monitor.config import MonitorConfig
from tests.alerts.conftest import serving
from tests.alerts.helpers import context, feed, make_config, observation

NOW = 1_800_000_000
EVENTS = 6


@dataclass
class Receivers:
    """One HTTP server; the path says how it behaves: /fast answers 200 at once, /slow sleeps
    `slow_seconds` first, /error answers 500, /bad answers 400, /trickle sends its status line
    one byte every `trickle_gap` seconds. Every request is recorded when it arrives."""

    url: str = ""
    slow_seconds: float = 3.0
    trickle_gap: float = 0.3
    hits: list[dict[str, Any]] = field(default_factory=list)

    def keys(self, path: str) -> list[str]:
        return [hit["key"] for hit in self.hits if hit["path"] == path]


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    receivers = Receivers()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                receivers.hits.append({"path": self.path, "key": self.headers.get("Idempotency-Key"),
                                       "event_id": body.get("event_id"), "at": time.monotonic()})
            if self.path == "/trickle":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    time.sleep(receivers.trickle_gap)
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                return
            if self.path == "/slow":
                time.sleep(receivers.slow_seconds)
            status = {"/error": 500, "/bad": 400}.get(self.path, 200)
            try:
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")
            except OSError:
                pass  # the monitor gave up waiting and closed the connection

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # the monitor opens up to 4 connections per channel at once; with the default backlog
        # of 5 the kernel drops SYNs and a connect timeout would look like a lost request
        request_queue_size = 128

    with serving(Handler, Server) as url:
        receivers.url = url
        yield receivers


def webhook(receivers: Receivers, path: str, timeout: float = 1.0) -> dict[str, Any]:
    return {"type": "webhook", "name": path.strip("/"), "url": receivers.url + path, "timeout": timeout}


def fire(engine: Engine, config: MonitorConfig, count: int = EVENTS) -> None:
    """`count` regions collapse at once: `count` critical alerts, one outbox event each."""
    rows = [observation(10, 0, 40, segment="region", value=f"r{i}") for i in range(count)]
    feed(engine, config, context(engine, config), rows, now=NOW)


def drain(engine: Engine, config: MonitorConfig, policy: DeliveryPolicy, passes: int = 40) -> int:
    """Run passes an hour apart (every backoff and lease has run out) until nothing is left."""
    for step in range(passes):
        deliver_pending(engine, config, now=NOW + step * MAX_BACKOFF, policy=policy)
        with engine.begin() as conn:
            if pending_events(conn) == 0:
                return step + 1
    raise AssertionError(f"events still pending after {passes} passes")


def statuses(engine: Engine, channel: str) -> Counter[str]:
    with engine.begin() as conn:
        log = deliveries_frame(conn, limit=10_000)
    return Counter(log[log["channel"] == channel]["status"])


def test_it_delivers_every_event_exactly_once_to_a_receiver_that_answers_in_time(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    receivers.slow_seconds = 1.5
    config = make_config(db_url, channels=[webhook(receivers, "/fast"), webhook(receivers, "/slow", 0.5),
                                           webhook(receivers, "/error"), webhook(receivers, "/bad")])
    fire(engine, config)
    drain(engine, config, DeliveryPolicy(max_attempts=3))
    fast = receivers.keys("/fast")
    assert len(fast) == EVENTS and len(set(fast)) == EVENTS
    assert Counter(receivers.keys("/bad")) == Counter({key: 1 for key in fast})  # 4xx: at once
    assert Counter(receivers.keys("/error")) == Counter({key: 3 for key in fast})
    assert Counter(receivers.keys("/slow")) == Counter({key: 3 for key in fast})
    assert statuses(engine, "fast") == {"sent": EVENTS}
    assert statuses(engine, "bad") == {"failed_permanently": EVENTS}
    assert statuses(engine, "error") == {"failed": 2 * EVENTS, "given_up": EVENTS}


def test_slack_gets_the_event_id_as_a_header_only_and_the_same_one_as_the_webhook(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    config = make_config(db_url, channels=[{"type": "slack", "url": receivers.url + "/fast"},
                                           {"type": "webhook", "url": receivers.url + "/fast"}])
    fire(engine, config, count=1)
    deliver_pending(engine, config, now=NOW)
    slack, hook = sorted(receivers.hits, key=lambda hit: hit["event_id"] is not None)
    assert slack["event_id"] is None and slack["key"] == hook["key"] == hook["event_id"]


def test_a_receiver_that_answers_after_the_timeout_gets_a_bounded_number_of_attempts_all_with_one_key(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    receivers.slow_seconds = 1.5
    config = make_config(db_url, channels=[webhook(receivers, "/slow", 0.5)])
    fire(engine, config)
    drain(engine, config, DeliveryPolicy(max_attempts=4))
    hits = [hit for hit in receivers.hits if hit["path"] == "/slow"]
    per_event = Counter(hit["key"] for hit in hits)
    assert len(per_event) == EVENTS and set(per_event.values()) == {4}
    assert all(hit["key"] == hit["event_id"] for hit in hits)  # header and body agree
    with engine.begin() as conn:
        log = deliveries_frame(conn, limit=10_000)
        outcomes = conn.execute(select(AlertEvent.outcome)).scalars().all()
    given_up = log[log["status"] == "given_up"]
    assert len(given_up) == EVENTS and given_up["error"].str.contains("timed out").all()
    assert outcomes == ["given_up"] * EVENTS
    deliver_pending(engine, config, now=NOW + 30 * 86_400)  # never again
    assert len(receivers.keys("/slow")) == 4 * EVENTS


def test_a_pass_with_a_hanging_channel_takes_about_one_timeout_and_the_fast_channel_gets_everything(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    receivers.slow_seconds = 6.0
    config = make_config(db_url, channels=[webhook(receivers, "/slow", 2.0), webhook(receivers, "/fast")])
    fire(engine, config)
    started = time.monotonic()
    counts = deliver_pending(engine, config, now=NOW)
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 3.5, f"one pass took {elapsed:.1f} s; sending one event after another takes 12 s"
    assert len(set(receivers.keys("/fast"))) == EVENTS
    # four sends at once found the channel down; the two others were not started in this pass
    assert len(receivers.keys("/slow")) == 4
    assert counts == {"events": EVENTS, "sent": EVENTS, "failed": 4, "silenced": 0}
    with engine.begin() as conn:
        events = conn.execute(select(AlertEvent.attempts, AlertEvent.next_attempt_at, AlertEvent.claim_token)
                              .order_by(AlertEvent.id)).all()
    assert [e.attempts for e in events] == [1] * EVENTS  # the fast channel's; a skip is no attempt
    assert all(e.claim_token is None for e in events)  # released, not left to the lease
    # the two skipped events are due at once, the four that timed out after the first backoff
    assert sorted(e.next_attempt_at - NOW for e in events) == [0, 0, 30, 30, 30, 30]
    assert statuses(engine, "slow") == {"failed": 4} and statuses(engine, "fast") == {"sent": EVENTS}


def test_sends_that_do_not_fit_in_the_budget_wait_for_the_next_pass_and_go_out_once(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    receivers.slow_seconds = 0.4  # slow, but answers within its timeout
    config = make_config(db_url, channels=[webhook(receivers, "/slow", 2.0)])
    fire(engine, config)
    policy = DeliveryPolicy(send_budget=0.5, per_channel=1)
    first = deliver_pending(engine, config, now=NOW, policy=policy)
    assert 1 <= first["sent"] < EVENTS and first["failed"] == 0
    passes = drain(engine, config, policy)
    assert passes >= 2
    keys = receivers.keys("/slow")
    assert len(keys) == EVENTS and len(set(keys)) == EVENTS
    with engine.begin() as conn:
        assert conn.execute(select(AlertEvent.attempts)).scalars().all() == [1] * EVENTS


def test_a_permanent_error_gives_up_at_once_and_a_500_after_max_attempts(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    config = make_config(db_url, channels=[webhook(receivers, "/bad"), webhook(receivers, "/error")])
    fire(engine, config, count=1)
    drain(engine, config, DeliveryPolicy(max_attempts=5))
    assert len(receivers.keys("/bad")) == 1 and len(receivers.keys("/error")) == 5
    with engine.begin() as conn:
        log = deliveries_frame(conn).sort_values("id")
    errors = log[log["channel"] == "error"]
    assert errors["status"].tolist() == ["failed"] * 4 + ["given_up"]
    assert errors["attempt"].tolist() == [1, 2, 3, 4, 5] and errors["error"].str.startswith("HTTP 500").all()
    assert log[log["channel"] == "bad"]["error"].tolist() == ["HTTP 400: no"]


def test_an_event_older_than_max_age_gives_up_at_its_next_failure(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    config = make_config(db_url, channels=[webhook(receivers, "/error")])
    fire(engine, config, count=1)
    deliver_pending(engine, config, now=NOW + 86_400, policy=DeliveryPolicy(max_age=86_400))
    assert statuses(engine, "error") == {"given_up": 1}
    with engine.begin() as conn:
        assert pending_events(conn) == 0


def test_a_sender_killed_in_every_claim_gives_the_event_up_instead_of_retrying_it_for_ever(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    config = make_config(db_url, channels=[webhook(receivers, "/fast")])
    fire(engine, config, count=1)
    policy = DeliveryPolicy(max_attempts=3, lease=60)
    for claim in range(3):  # each sender claims and dies before sending
        assert len(claim_due(engine, NOW + claim * 61, lease=60)[1]) == 1
    assert deliver_pending(engine, config, now=NOW + 3 * 61, policy=policy)["events"] == 1
    assert receivers.hits == []
    with engine.begin() as conn:
        [row] = deliveries_frame(conn).to_dict("records")
        assert pending_events(conn) == 0
    assert row["status"] == "given_up" and "no outcome after repeated claims" in row["error"]


def test_a_receiver_that_trickles_its_answer_cannot_hold_the_pass_and_the_event_is_not_sent_twice(
        engine: Engine, db_url: str, receivers: Receivers) -> None:
    # each byte well within the 1 s timeout (a loaded machine stalls a thread for tenths of a
    # second: with a 0.5 s timeout the send itself failed once); the answer takes ~5.7 s
    receivers.trickle_gap = 0.15
    config = make_config(db_url, channels=[webhook(receivers, "/trickle", 1.0)])
    fire(engine, config, count=1)
    policy = DeliveryPolicy(send_budget=0.5, lease=60)
    started = time.monotonic()
    deliver_pending(engine, config, now=NOW, policy=policy)
    assert time.monotonic() - started < 3.5  # budget + 2 timeouts (2.5 s), then it is left running
    with engine.begin() as conn:
        assert conn.execute(select(AlertEvent.claim_token)).scalar_one() is not None  # still leased
    deadline = time.monotonic() + 15
    while statuses(engine, "trickle") != {"sent": 1} and time.monotonic() < deadline:
        time.sleep(0.2)  # the abandoned send finishes in the background and records itself
    assert statuses(engine, "trickle") == {"sent": 1}
    deliver_pending(engine, config, now=NOW + 61, policy=policy)  # lease expired: settled, not resent
    assert len(receivers.keys("/trickle")) == 1
    with engine.begin() as conn:
        assert conn.execute(select(AlertEvent.outcome)).scalar_one() == "sent"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def greylisting_smtp() -> Iterator[tuple[int, list[Message]]]:
    """An SMTP server that refuses every recipient once with 451 (greylisting), then accepts."""
    messages: list[Message] = []
    seen: set[str] = set()

    class Handler:
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                              options: Any) -> str:
            if address not in seen:
                seen.add(address)
                return "451 4.7.1 greylisted, try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, messages
    controller.stop()


def test_an_email_refused_for_now_is_retried_and_arrives_once_with_the_event_id(
        engine: Engine, db_url: str, greylisting_smtp: tuple[int, list[Message]]) -> None:
    port, messages = greylisting_smtp
    config = make_config(db_url, channels=[{"type": "email", "name": "mail", "smtp_host": "127.0.0.1",
                                            "smtp_port": port, "email_from": "m@example.org",
                                            "email_to": ["oncall@example.org"], "timeout": 5}])
    fire(engine, config, count=2)
    drain(engine, config, DeliveryPolicy())
    assert statuses(engine, "mail") == {"failed": 1, "sent": 2}  # one greylisting refusal, then both
    ids = [message["X-Monitor-Event-Id"] for message in messages]
    assert len(set(ids)) == 2 and all(len(key) == 32 for key in ids)
    assert {message["Message-ID"] for message in messages} == {f"<{key}@classifier-monitor>" for key in ids}


def test_a_delivery_error_never_stores_the_webhook_token(engine: Engine, db_url: str) -> None:
    """A Slack webhook's path is its token. When the receiver cannot be reached, the stored
    error (the dashboard shows the delivery log) names the host and port,
    never the path or query. The receiver is a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T0123/B0456/s3cretT0ken?key=k3y"
    config = make_config(db_url, channels=[{"type": "slack", "name": "team", "url": url, "timeout": 1.0}])
    fire(engine, config, count=1)
    deliver_pending(engine, config, now=NOW, policy=DeliveryPolicy())
    with engine.begin() as conn:
        errors = deliveries_frame(conn)["error"].dropna().tolist()
    assert errors and all("ConnectionError" in e and f"port={port}" in e for e in errors), errors
    assert not any("s3cretT0ken" in e or "k3y" in e or "T0123" in e for e in errors), errors

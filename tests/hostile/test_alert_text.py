"""Hostile text in alert notifications (segment values and class names come from production).

A segment value is whatever a user typed. Through the real path (an alert fires on a series
whose value is hostile, the outbox delivers it to real receivers on 127.0.0.1) we check that
such a value can neither stop the delivery of its alert or of the others, nor make a
notification say or do what we did not mean: ping a Slack channel, fake a link, add a mail
header or a forged log line, or turn the numbers around with a right-to-left override.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from monitor.alerts.channels.messages import email_bodies, slack_payload, title, webhook_payload
from monitor.alerts.models import AlertEvent
from monitor.alerts.outbox import MAX_BACKOFF, deliver_pending
from monitor.alerts.service import deliveries_frame, pending_events, silence
from monitor.config import MonitorConfig
from monitor.store.db import make_engine
from tests.alerts import conftest as receivers
from tests.alerts.conftest import SmtpReceiver
from tests.alerts.helpers import context, feed, make_config, observation

NOW = 1_800_000_000
PING = "<!channel> <!here> <https://evil.example/login|Evidence> *all* _clear_ ~down~"
# what Slack shows as a mention or a link: `<...>`; ours are only the two dashboard links
SLACK_TOKEN = re.compile(r"<[^>]*>")
BIDI_AND_CONTROLS = "\x1b[31m\x07\u2028\u2029\u202e\u2066\x85"


@dataclass
class FakeSlack:
    """An incoming webhook that enforces Slack's documented limits (section text 1-3,000
    characters, header 150, plain_text or mrkdwn text objects) and answers `400
    invalid_blocks` to a message that breaks one, as Slack does."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @staticmethod
    def problem(body: dict[str, Any]) -> str | None:
        for block in body.get("blocks", []):
            texts = [block["text"]] if "text" in block else list(block.get("elements", []))
            limit = 150 if block["type"] == "header" else 3000
            for text in texts:
                if text["type"] not in ("plain_text", "mrkdwn") or not 1 <= len(text["text"]) <= limit:
                    return f"invalid_blocks: {block['type']} text of {len(text['text'])} characters"
        return None


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    slack = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            problem = FakeSlack.problem(body)
            if problem:
                slack.refused.append(problem)
            else:
                slack.bodies.append(body)
            self.send_response(400 if problem else 200)
            self.end_headers()
            self.wfile.write((problem or "ok").encode())

        def log_message(self, *args: Any) -> None:
            pass

    with receivers.serving(Handler) as url:
        slack.url = f"{url}/services/T0/B0/secret"
        yield slack


smtp = receivers.smtp_receiver  # the real SMTP server (aiosmtpd) of the alert tests


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def fire(engine: Engine, config: MonitorConfig, *values: str) -> None:
    """Recall of `critical` collapses in region=<value> for every value: one alert each."""
    rows = [observation(10, 0, 40, segment="region", value=value) for value in values]
    feed(engine, config, context(engine, config), rows, now=NOW)


def email_channel(smtp: SmtpReceiver) -> dict[str, Any]:
    return {"type": "email", "smtp_host": smtp.host, "smtp_port": smtp.port,
            "email_from": "monitor@example.org", "email_to": ["oncall@example.org"]}


def statuses(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.begin() as conn:
        log = deliveries_frame(conn, limit=1000)
    return sorted(zip(log["channel"], log["status"], log["error"], strict=True), key=str)


def mrkdwn_texts(body: dict[str, Any]) -> list[str]:
    """Every text of a Slack message that Slack parses for mentions and links."""
    texts = [body["text"]]
    for block in body["blocks"]:
        objects = [block["text"]] if "text" in block else block.get("elements", [])
        texts += [o["text"] for o in objects if o["type"] == "mrkdwn"]
    return texts


def subject_of(message: Message) -> str:
    """The Subject as a reader sees it: unfolded, encoded words decoded."""
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", message["Subject"])
    return str(make_header(decode_header(unfolded)))


def parts(message: Message) -> dict[str, str]:
    return {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
            if part.get_content_maintype() == "text"}


def event_of(value: str, segment: str = "region", cls: str = "critical") -> dict[str, Any]:
    """An event as the outbox stores it, for the pure message builders."""
    where = f"{segment}={value}"
    record = {"model": "triage", "rule": "minority-recall", "metric": "recall", "class": cls,
              "segment": segment, "segment_value": value, "fingerprint": "f" * 32, "window": 604800,
              "value": 0.0, "reference_value": 0.8, "low": 0.0, "high": 0.09, "support": 40,
              "started_at": NOW, "fired_at": NOW, "resolved_at": None,
              "message": f"Recall of class {cls!r} {where} is 0.00 (95% CI 0.00-0.09), 0.80 below the "
                         "reference 0.80, on 40 labelled positives; 7d window ending 2027-01-15T08:00:00Z."}
    return {"id": 1, "kind": "firing", "severity": "critical", "data_time": NOW, "payload": record}


# --- Slack ---------------------------------------------------------------------------------

def test_a_segment_value_cannot_ping_the_channel_or_fake_a_link_in_slack(
        engine: Engine, db_url: str, fake_slack: FakeSlack) -> None:
    config = make_config(db_url, channels=[{"type": "slack", "url": fake_slack.url}])
    fire(engine, config, PING)
    assert deliver_pending(engine, config, now=NOW)["sent"] == 1
    [body] = fake_slack.bodies
    for text in mrkdwn_texts(body):
        tokens = SLACK_TOKEN.findall(text)
        assert all(t.startswith("<http://dash.example:8050/") for t in tokens), tokens
    links = SLACK_TOKEN.findall(body["text"])
    assert [t.rsplit("|", 1)[1] for t in links] == ["Evidence>", "All alerts>"]
    assert "&lt;!channel&gt;" in body["text"]  # shown, not acted on
    # the blocks show the value as it is, in text that Slack neither formats nor parses
    plain = [b["text"]["text"] for b in body["blocks"] if b["text"]["type"] == "plain_text"]
    assert any(PING in text and "0.80 below the reference" in text for text in plain)


def test_a_ten_thousand_character_segment_value_still_makes_a_message_slack_accepts(
        engine: Engine, db_url: str, fake_slack: FakeSlack) -> None:
    config = make_config(db_url, channels=[{"type": "slack", "url": fake_slack.url}])
    fire(engine, config, "é<" * 5_000)
    assert deliver_pending(engine, config, now=NOW)["sent"] == 1, fake_slack.refused
    [body] = fake_slack.bodies
    shown = " ".join(b["text"]["text"] for b in body["blocks"])
    # what comes from the data is cut; what we say about it and the links stay
    assert "0.80 below the reference" in shown and "40 labelled positives" in shown
    assert "|Evidence>" in shown and "|All alerts>" in shown
    assert len(body["text"]) < 40_000


def test_formatting_characters_in_a_value_do_not_format_the_slack_message() -> None:
    body = slack_payload(event_of("*bold* _it_ ~gone~ `code`"), "http://dash.example:8050")
    header, message, links = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert message["text"]["type"] == "plain_text" and "*bold* _it_ ~gone~ `code`" in message["text"]["text"]
    assert links["text"]["type"] == "mrkdwn" and "*" not in links["text"]["text"]


# --- Email -----------------------------------------------------------------------------------

def test_a_line_break_in_a_segment_value_neither_blocks_the_email_nor_adds_a_header(
        engine: Engine, db_url: str, smtp: SmtpReceiver) -> None:
    hostile = "north\r\nBcc: attacker@evil.example\r\nX-Injected: yes"
    config = make_config(db_url, channels=[email_channel(smtp)])
    fire(engine, config, hostile, "south")
    assert deliver_pending(engine, config, now=NOW)["sent"] == 2, statuses(engine)
    assert [e.rcpt_tos for e in smtp.envelopes] == [["oncall@example.org"]] * 2
    hostile_mail = next(m for m in smtp.messages if "north" in subject_of(m))
    subject = subject_of(hostile_mail)
    assert "\n" not in subject and "\r" not in subject and "\\r\\nBcc" in subject
    assert hostile_mail["Bcc"] is None and hostile_mail["X-Injected"] is None
    body = parts(hostile_mail)
    # the body keeps the value, shown on its own line (no forged "Bcc:" fact line)
    assert "region=north\\r\\nBcc: attacker@evil.example\\r\\nX-Injected: yes" in body["text/plain"]
    assert not any(line.startswith("Bcc:") for line in body["text/plain"].splitlines())
    assert "north\\r\\nBcc: attacker@evil.example" in body["text/html"]
    # and the HTML escapes what could close an attribute or open a tag
    _, _, html_body = email_bodies(event_of("\"><script>x</script><a href='javascript:x'>"), "http://d.example")
    assert "<script>" not in html_body and "href='javascript" not in html_body
    hrefs = re.findall(r'href="([^"]*)"', html_body)
    assert len(hrefs) == 2 and all(h.startswith("http://d.example/") for h in hrefs)


def test_an_email_subject_is_one_bounded_line_and_the_body_keeps_the_whole_value(
        engine: Engine, db_url: str, smtp: SmtpReceiver) -> None:
    long_value = "Zürich " * 1_500  # 10,500 characters
    config = make_config(db_url, channels=[email_channel(smtp)])
    fire(engine, config, long_value)
    assert deliver_pending(engine, config, now=NOW)["sent"] == 1
    [mail] = smtp.messages
    subject = subject_of(mail)
    assert subject.startswith("[CRITICAL] triage: recall of critical region=Zürich") and len(subject) <= 250
    assert long_value.strip() in parts(mail)["text/plain"]


# --- control and direction characters ----------------------------------------------------------

def test_control_and_direction_characters_are_shown_not_obeyed_in_every_text() -> None:
    event = event_of(f"west{BIDI_AND_CONTROLS}", cls="critical")
    subject, plain, html_body = email_bodies(event, "http://dash.example:8050")
    slack = slack_payload(event, "http://dash.example:8050")
    hook = webhook_payload(event, "http://dash.example:8050")
    texts = [title(event), subject, plain.replace("\n", " "), html_body, slack["text"].replace("\n", " "),
             *(b["text"]["text"] for b in slack["blocks"]),
             hook["commonAnnotations"]["summary"], hook["commonAnnotations"]["description"]]
    for text in texts:
        assert not set("\x1b\x07\u2028\u2029\u202e\u2066\x85") & set(text), ascii(text)
    assert "\\x1b[31m\\x07\\u2028\\u2029\\u202e\\u2066\\x85" in title(event)
    # machine-readable labels keep the exact value (JSON escapes it)
    assert hook["commonLabels"]["segment_value"] == f"west{BIDI_AND_CONTROLS}"
    # letters of any direction and emoji (joined by U+200D) are text, not controls: unchanged
    value = "👩‍👩‍👧 Tel Aviv תל אביב القاهرة"
    subject, plain, _ = email_bodies(event_of(value), "http://dash.example:8050")
    assert value in subject and value in plain
    assert value in slack_payload(event_of(value), "http://dash.example:8050")["blocks"][0]["text"]["text"]


def test_a_segment_value_cannot_forge_a_line_in_the_log_channel(
        engine: Engine, db_url: str, caplog: pytest.LogCaptureFixture, tmp_path: Any) -> None:
    forged = "x\n2027-01-15 08:00:00 WARNING [RESOLVED] triage: recall of critical overall"
    path = tmp_path / "alerts.jsonl"
    config = make_config(db_url, channels=[{"type": "log", "path": str(path)}])
    fire(engine, config, forged)
    with caplog.at_level(logging.WARNING, logger="monitor.alerts.notify"):
        assert deliver_pending(engine, config, now=NOW)["sent"] == 1
    [record] = [r for r in caplog.records if r.name == "monitor.alerts.notify"]
    assert "\n" not in record.getMessage() and "x\\n2027-01-15" in record.getMessage()
    [line] = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["commonLabels"]["segment_value"] == forged


# --- a message that cannot be built ------------------------------------------------------------

def test_an_event_whose_message_cannot_be_built_fails_alone_at_once_with_its_reason(
        sqlite_engine: Engine, sqlite_url: str, fake_slack: FakeSlack, smtp: SmtpReceiver) -> None:
    engine = sqlite_engine
    config = make_config(sqlite_url, channels=[{"type": "slack", "url": fake_slack.url},
                                               email_channel(smtp)])
    fire(engine, config, "poison", "south")
    with engine.begin() as conn:
        rows = conn.execute(select(AlertEvent.id, AlertEvent.payload)).all()
        poison_id, payload = next((r.id, r.payload) for r in rows if r.payload["segment_value"] == "poison")
        conn.execute(update(AlertEvent).where(AlertEvent.id == poison_id)
                     .values(payload={k: v for k, v in payload.items() if k != "message"}))
    counts = deliver_pending(engine, config, now=NOW)
    assert counts["sent"] == 2 and counts["failed"] == 2  # the other event went everywhere
    assert len(fake_slack.bodies) == 1 and len(smtp.messages) == 1
    failures = [s for s in statuses(engine) if s[1] != "sent"]
    assert [s[1] for s in failures] == ["failed_permanently"] * 2  # the same every time: no retry
    assert all(s[2] == "cannot build the message: KeyError: 'message'" for s in failures)
    deliver_pending(engine, config, now=NOW + MAX_BACKOFF)
    with engine.begin() as conn:
        assert pending_events(conn) == 0
    assert len(fake_slack.bodies) == 1 and len(smtp.messages) == 1


def test_a_malformed_payload_does_not_stop_the_pass_when_a_silence_is_active(
        sqlite_engine: Engine, sqlite_url: str, fake_slack: FakeSlack) -> None:
    engine = sqlite_engine
    config = make_config(sqlite_url, channels=[{"type": "slack", "url": fake_slack.url}])
    fire(engine, config, "poison", "south")
    with engine.begin() as conn:
        silence(conn, model="triage", segment="region", segment_value="east", starts=NOW - 60,
                until=NOW + 86_400, by="oncall")
        rows = conn.execute(select(AlertEvent.id, AlertEvent.payload)).all()
        poison_id, payload = next((r.id, r.payload) for r in rows if r.payload["segment_value"] == "poison")
        conn.execute(update(AlertEvent).where(AlertEvent.id == poison_id)
                     .values(payload={k: v for k, v in payload.items() if k != "segment_value"}))
    assert deliver_pending(engine, config, now=NOW)["sent"] == 1
    assert "region=south" in fake_slack.bodies[0]["text"]
    [failure] = [s for s in statuses(engine) if s[1] != "sent"]
    assert failure[1:] == ("failed_permanently", "cannot build the message: KeyError: 'segment_value'")

"""Delivery through the outbox to real receivers on 127.0.0.1: payloads, retries, restarts."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from monitor.alerts.channels.messages import event_id
from monitor.alerts.outbox import LEASE_SECONDS, backoff, claim_due, deliver_pending
from monitor.alerts.service import deliveries_frame, events_frame, pending_events, silence
from monitor.config import MonitorConfig
from tests.alerts.conftest import HttpReceiver, SmtpReceiver
from tests.alerts.helpers import context, feed, make_config, observation

NOW = 1_800_000_000


def fire_collapse(engine: Engine, config: MonitorConfig) -> None:
    """The model stops predicting 'critical' in region=south: one critical alert fires."""
    feed(engine, config, context(engine, config),
         [observation(10, 0, 40, segment="region", value="south")], now=NOW)


def resolve_it(engine: Engine, config: MonitorConfig) -> None:
    ctx = context(engine, config)
    for day in (11, 12):
        feed(engine, config, ctx, [observation(day, 33, 40, segment="region", value="south")], now=NOW)


def test_the_webhook_gets_an_alertmanager_shaped_payload_with_evidence(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url + "/hook"}])
    fire_collapse(engine, config)
    assert deliver_pending(engine, config, now=NOW) == {"events": 1, "sent": 1, "failed": 0, "silenced": 0}
    [body] = http_receiver.delivered
    assert body["status"] == "firing" and body["version"] == "4"
    [alert] = body["alerts"]
    assert alert["labels"] == {"alertname": "minority-recall", "model": "triage", "metric": "recall",
                               "class": "critical", "segment": "region", "segment_value": "south",
                               "severity": "critical"}
    assert alert["startsAt"] == "2024-01-11T00:00:00Z" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert len(alert["fingerprint"]) == 32
    assert alert["annotations"]["support"] == "40" and alert["annotations"]["value"] == "0.0000"
    assert "region=south" in alert["annotations"]["description"]
    assert alert["generatorURL"].startswith("http://dash.example:8050/classes?model=triage")
    assert body["externalURL"] == "http://dash.example:8050/alerts?model=triage"

    resolve_it(engine, config)
    deliver_pending(engine, config, now=NOW + 1)
    resolved = http_receiver.delivered[-1]["alerts"][0]
    assert resolved["status"] == "resolved" and resolved["endsAt"] == "2024-01-13T00:00:00Z"
    assert resolved["fingerprint"] == alert["fingerprint"]


def test_it_sends_the_same_event_id_on_every_attempt_of_one_event(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    http_receiver.failures = 1
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url}])
    fire_collapse(engine, config)
    deliver_pending(engine, config, now=NOW)
    deliver_pending(engine, config, now=NOW + backoff(1))
    first, second = (r["body"] for r in http_receiver.requests)
    assert first["event_id"] == second["event_id"] and len(first["event_id"]) == 32
    assert first["event_time"] == "2024-01-11T00:00:00Z"
    resolve_it(engine, config)
    deliver_pending(engine, config, now=NOW + 10_000)
    assert http_receiver.delivered[-1]["event_id"] != first["event_id"]  # another notification


def test_the_event_id_does_not_depend_on_the_outbox_row_or_the_process() -> None:
    record = {"model": "triage", "rule": "minority-recall", "fingerprint": "f" * 32, "started_at": 10}
    event = {"id": 1, "kind": "firing", "severity": "critical", "data_time": 20, "payload": record}
    assert event_id(event) == event_id({**event, "id": 99, "attempts": 5, "claim_token": "x"})
    # pinned: a new key for old events after an upgrade would defeat receivers' de-duplication
    assert event_id(event) == "27eaac059906900d3de30568c4c207a5"
    assert event_id(event) != event_id({**event, "kind": "reminder"})
    assert event_id(event) != event_id({**event, "payload": {**record, "started_at": 11}})


def test_slack_gets_a_message_that_says_what_where_how_much_and_links(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    config = make_config(db_url, channels=[{"type": "slack", "url": http_receiver.url + "/slack"}])
    fire_collapse(engine, config)
    deliver_pending(engine, config, now=NOW)
    [body] = http_receiver.delivered
    assert http_receiver.requests[0]["path"] == "/slack"
    text = body["text"]
    assert "[CRITICAL]" in text and "region=south" in text and "0.80 below the reference" in text
    assert "40 labelled positives" in text and "|Evidence>" in text


def test_email_goes_out_over_smtp_as_plain_text_and_html(engine: Engine, db_url: str, smtp_receiver: SmtpReceiver) -> None:
    config = make_config(db_url, channels=[{
        "type": "email", "smtp_host": smtp_receiver.host, "smtp_port": smtp_receiver.port,
        "email_from": "monitor@example.org", "email_to": ["oncall@example.org", "ml@example.org"]}])
    fire_collapse(engine, config)
    assert deliver_pending(engine, config, now=NOW)["sent"] == 1
    [message] = smtp_receiver.messages
    assert smtp_receiver.envelopes[0].rcpt_tos == ["oncall@example.org", "ml@example.org"]
    assert message["Subject"].startswith("[CRITICAL] triage: recall of critical region=south")
    parts = {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
             if part.get_content_maintype() == "text"}
    assert "Labelled cases: 40" in parts["text/plain"]
    assert "<table>" in parts["text/html"] and "http://dash.example:8050/alerts?model=triage" in parts["text/html"]
    assert message["Message-ID"] == f"<{message['X-Monitor-Event-Id']}@classifier-monitor>"


def test_it_retries_a_failed_webhook_with_backoff_until_it_is_delivered(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    http_receiver.failures = 2
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url}])
    fire_collapse(engine, config)
    assert deliver_pending(engine, config, now=NOW)["failed"] == 1
    assert deliver_pending(engine, config, now=NOW + backoff(1) - 1)["events"] == 0  # not due yet
    assert deliver_pending(engine, config, now=NOW + backoff(1))["failed"] == 1
    later = NOW + backoff(1) + backoff(2)
    assert deliver_pending(engine, config, now=later)["sent"] == 1
    assert deliver_pending(engine, config, now=later + 10_000)["events"] == 0
    assert [r["status"] for r in http_receiver.requests] == [500, 500, 200]
    with engine.begin() as conn:
        log = deliveries_frame(conn, model="triage")
        assert sorted(log["status"].tolist()) == ["failed", "failed", "sent"]
        assert log["error"].dropna().str.startswith("HTTP 500").all()
        events = events_frame(conn, int(log["alert_id"].iloc[0]))
        assert events["outcome"].tolist() == ["sent"] and events["attempts"].tolist() == [3]


def test_a_permanent_failure_is_not_retried(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    http_receiver.failures, http_receiver.fail_with = 10, 404
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url}])
    fire_collapse(engine, config)
    deliver_pending(engine, config, now=NOW)
    deliver_pending(engine, config, now=NOW + 10 * 3600)
    assert len(http_receiver.requests) == 1
    with engine.begin() as conn:
        assert deliveries_frame(conn)["status"].tolist() == ["failed_permanently"]
        assert pending_events(conn) == 0


def test_a_restart_between_claim_and_delivery_neither_loses_nor_repeats_the_notification(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url}])
    fire_collapse(engine, config)
    _, claimed = claim_due(engine, NOW)  # the sender claims, then is killed before sending
    assert len(claimed) == 1
    assert deliver_pending(engine, config, now=NOW + 1)["events"] == 0  # another sender: still leased
    assert http_receiver.requests == []
    assert deliver_pending(engine, config, now=NOW + LEASE_SECONDS + 1)["sent"] == 1  # lease expired
    for tick in range(2, 6):
        deliver_pending(engine, config, now=NOW + tick * LEASE_SECONDS)
    assert len(http_receiver.delivered) == 1


def test_a_channel_that_already_succeeded_is_not_sent_again_when_another_one_is_retried(
        engine: Engine, db_url: str, http_receiver: HttpReceiver, smtp_receiver: SmtpReceiver) -> None:
    config = make_config(db_url, channels=[
        {"type": "email", "smtp_host": smtp_receiver.host, "smtp_port": smtp_receiver.port,
         "email_from": "m@example.org", "email_to": ["o@example.org"]},
        {"type": "webhook", "url": http_receiver.url}])
    http_receiver.failures = 1
    fire_collapse(engine, config)
    deliver_pending(engine, config, now=NOW)
    deliver_pending(engine, config, now=NOW + backoff(1))
    assert len(smtp_receiver.messages) == 1
    assert [r["status"] for r in http_receiver.requests] == [500, 200]


def test_a_stale_sender_whose_lease_expired_cannot_settle_the_event(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url}])
    fire_collapse(engine, config)
    stale_token, _ = claim_due(engine, NOW)
    fresh_token, events = claim_due(engine, NOW + LEASE_SECONDS + 1)
    assert stale_token != fresh_token and len(events) == 1
    assert claim_due(engine, NOW + LEASE_SECONDS + 2)[1] == []


def test_channels_subscribe_by_severity_so_a_warning_does_not_page(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    config = make_config(db_url, channels=[
        {"type": "webhook", "url": http_receiver.url + "/pager", "severity": ["critical"]},
        {"type": "webhook", "url": http_receiver.url + "/daily", "severity": ["warning"]}])
    ctx = context(engine, config)
    feed(engine, config, ctx, [observation(1, 120, 200)], now=NOW)  # a moderate, significant drop
    deliver_pending(engine, config, now=NOW)
    assert [r["path"] for r in http_receiver.requests] == ["/daily"]


def test_a_silenced_alert_is_not_sent(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url}])
    context(engine, config)
    with engine.begin() as conn:
        silence(conn, model="triage", segment="region", segment_value="south",
                until="2100-01-01T00:00:00Z", by="ana", comment="known outage in the south")
    fire_collapse(engine, config)
    assert deliver_pending(engine, config, now=NOW)["silenced"] == 1
    assert http_receiver.requests == []


def test_the_log_channel_appends_one_json_line_per_notification(engine: Engine, db_url: str, tmp_path: Any) -> None:
    path = tmp_path / "alerts.jsonl"
    config = make_config(db_url, channels=[{"type": "log", "path": str(path)}])
    fire_collapse(engine, config)
    deliver_pending(engine, config, now=NOW)
    [line] = path.read_text().splitlines()
    assert json.loads(line)["alerts"][0]["labels"]["segment_value"] == "south"

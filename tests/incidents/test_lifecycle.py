"""The incident lifecycle on observations fed straight to the rules (no counts stored, so the
slice search finds nothing and each alert is its own cause): open with one notification,
absorb a related alert, escalate, resolve once, inhibit the members, remind by the wall clock
only in live ticks, acknowledge and silence. Real database (SQLite and PostgreSQL), real
HTTP receiver on 127.0.0.1."""

from __future__ import annotations

from sqlalchemy import Engine, select

from monitor.alerts.grouping import group_incidents
from monitor.alerts.models import AlertEvent
from monitor.alerts.outbox import deliver_pending
from monitor.config import MonitorConfig
from monitor.context import ModelContext
from monitor.read import incidents as incident_reads
from tests.alerts.conftest import HttpReceiver
from tests.alerts.helpers import DAY, T0, context, feed, make_config, observation

NOW = 1_800_000_000  # the wall clock of the first tick


def group(engine: Engine, config: MonitorConfig, ctx: ModelContext, *, as_of: int, now: int) -> dict[str, int]:
    with engine.begin() as conn:
        return dict(group_incidents(conn, config, ctx, as_of, now=now))


def events(engine: Engine) -> list[tuple[int | None, str, str | None]]:
    with engine.begin() as conn:
        rows = conn.execute(select(AlertEvent.incident_id, AlertEvent.kind, AlertEvent.outcome)
                            .order_by(AlertEvent.id)).all()
    return [(r.incident_id, r.kind, r.outcome) for r in rows]


def incidents(engine: Engine) -> list[dict]:  # type: ignore[type-arg]
    with engine.begin() as conn:
        return incident_reads.incidents(conn).to_dict("records")


def south_collapses(engine: Engine, config: MonitorConfig, ctx: ModelContext) -> None:
    """Recall 0 of 40 in region=south at day 10: a critical alert fires at once."""
    feed(engine, config, ctx, [observation(10, 0, 40, segment="region", value="south")], now=NOW)
    group(engine, config, ctx, as_of=T0 + 10 * DAY, now=NOW)


def test_an_incident_opens_with_one_notification_and_its_member_alert_stays_quiet(
        engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url}])
    ctx = context(engine, config)
    south_collapses(engine, config, ctx)
    [incident] = incidents(engine)
    assert (incident["state"], incident["segment"], incident["segment_value"], incident["n_alerts"]) == (
        "open", "region", "south", 1)
    assert incident["explains"] == ["region=south"] and incident["severity"] == "critical"
    assert "dropped in region=south" in incident["message"] and "on 40 labelled positives" in incident["message"]
    assert events(engine) == [(None, "firing", "inhibited"), (incident["id"], "firing", None)]
    assert deliver_pending(engine, config, now=NOW)["sent"] == 1
    [body] = http_receiver.delivered
    [alert] = body["alerts"]
    assert alert["labels"]["incident_id"] == str(incident["id"])
    assert alert["annotations"]["explains"] == "region=south"
    assert "incident" in alert["annotations"]["summary"] and "cause region=south" in alert["annotations"]["summary"]


def test_a_related_alert_firing_soon_after_joins_the_open_incident_and_escalation_notifies(
        engine: Engine, db_url: str) -> None:
    config = make_config(db_url)
    ctx = context(engine, config)
    feed(engine, config, ctx, [observation(10, 20, 40, segment="region", value="south")], now=NOW)
    feed(engine, config, ctx, [observation(11, 20, 40, segment="region", value="south")], now=NOW)
    group(engine, config, ctx, as_of=T0 + 11 * DAY, now=NOW)
    [incident] = incidents(engine)
    assert incident["severity"] == "warning"
    # the overall series collapses a day later: within the grouping window, and global relates to every slice
    feed(engine, config, ctx, [observation(12, 0, 300), observation(12, 20, 40, segment="region", value="south")],
         now=NOW)
    counts = group(engine, config, ctx, as_of=T0 + 12 * DAY, now=NOW)
    [incident] = incidents(engine)
    assert incident["n_alerts"] == 2 and incident["explains"] == ["region=south", "*"]
    assert incident["severity"] == "critical" and counts["incidents_escalated"] == 1
    kinds = [(kind, outcome) for incident_id, kind, outcome in events(engine) if incident_id is not None]
    assert kinds == [("firing", None), ("escalated", None)]
    assert all(outcome == "inhibited" for incident_id, _, outcome in events(engine) if incident_id is None)


def test_it_resolves_once_when_every_member_has_resolved(engine: Engine, db_url: str) -> None:
    config = make_config(db_url)
    ctx = context(engine, config)
    south_collapses(engine, config, ctx)
    feed(engine, config, ctx, [observation(11, 33, 40, segment="region", value="south")], now=NOW)
    assert group(engine, config, ctx, as_of=T0 + 11 * DAY, now=NOW).get("incidents_resolved", 0) == 0
    feed(engine, config, ctx, [observation(12, 33, 40, segment="region", value="south")], now=NOW)
    group(engine, config, ctx, as_of=T0 + 12 * DAY, now=NOW)
    group(engine, config, ctx, as_of=T0 + 12 * DAY, now=NOW)  # a tick with nothing new changes nothing
    [incident] = incidents(engine)
    assert (incident["state"], incident["resolved_at"]) == ("resolved", "2024-01-13T00:00:00Z")
    assert [kind for incident_id, kind, _ in events(engine) if incident_id] == ["firing", "resolved"]


def test_reminders_go_by_the_wall_clock_only_in_live_ticks_and_stop_when_acknowledged(
        engine: Engine, db_url: str) -> None:
    config = make_config(db_url)
    ctx = context(engine, config)
    south_collapses(engine, config, ctx)
    later = NOW + 2 * DAY
    # a backfill or replay: the tick's as_of is the data's time, far from the clock
    assert group(engine, config, ctx, as_of=T0 + 10 * DAY, now=later).get("incidents_reminded", 0) == 0
    assert group(engine, config, ctx, as_of=NOW + 3600 * 2, now=NOW + 3600 * 2).get("incidents_reminded", 0) == 0
    assert group(engine, config, ctx, as_of=later, now=later)["incidents_reminded"] == 1
    assert group(engine, config, ctx, as_of=later + 60, now=later + 60).get("incidents_reminded", 0) == 0
    [incident] = incidents(engine)
    with engine.begin() as conn:
        incident_reads.acknowledge(conn, incident["id"], by="oncall")
    assert group(engine, config, ctx, as_of=later + 2 * DAY, now=later + 2 * DAY).get("incidents_reminded", 0) == 0
    assert [kind for incident_id, kind, _ in events(engine) if incident_id] == ["firing", "reminder"]
    assert incidents(engine)[0]["acknowledged_by"] == "oncall"


def test_a_silenced_incident_is_held_back_at_delivery(engine: Engine, db_url: str, http_receiver: HttpReceiver) -> None:
    config = make_config(db_url, channels=[{"type": "webhook", "url": http_receiver.url}])
    ctx = context(engine, config)
    south_collapses(engine, config, ctx)
    [incident] = incidents(engine)
    with engine.begin() as conn:
        incident_reads.silence(conn, incident["id"], until=NOW + 10 * DAY, by="oncall")
    assert deliver_pending(engine, config, now=NOW)["silenced"] == 1
    assert http_receiver.requests == []
    assert incidents(engine)[0]["silenced_until"] is not None


def test_with_incidents_disabled_every_alert_notifies_on_its_own(engine: Engine, db_url: str) -> None:
    config = make_config(db_url)
    config.models[0].incidents.enabled = False
    ctx = context(engine, config)
    south_collapses(engine, config, ctx)
    assert incidents(engine) == []
    assert events(engine) == [(None, "firing", None)]

"""Reads and user actions on alerts (CLI, HTTP API, dashboard). The caller owns the transaction.

- `alerts_frame`: docs/contract.md `alerts` records, newest first, then extra columns (severity,
  fingerprint, fired_as_of, p_value, acknowledged_by, acknowledged_at, silenced_until,
  incident_id: the incident the alert belongs to, `monitor.alerts.grouping`).
- `series_frame`: the current state of every series (ok, insufficient_data, pending, firing).
- `acknowledge`: stops reminders for an alert (resolve notifications still go out).
- `silence` / `unsilence` / `silences_frame`: time-bound mutes matched at delivery time;
  a matcher left None matches anything. Times are epoch seconds or ISO strings.
- `deliveries_frame`, `events_frame`: the outbox and its delivery log, for inspection.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from monitor.alerts.models import Alert, AlertDelivery, AlertEvent, AlertSeries, AlertSilence
from monitor.incidents.models import Incident
from monitor.store.bulk import inserted_id
from monitor.store.models import MonitoredModel
from monitor.timeutil import iso_columns, now_epoch, parse_time

ALERT_COLUMNS = [
    "id", "model", "rule", "metric", "class", "segment", "segment_value", "state", "started_at",
    "fired_at", "resolved_at", "value", "reference_value", "low", "high", "support", "message",
]
EXTRA_COLUMNS = ["severity", "fingerprint", "fired_as_of", "p_value", "acknowledged_by",
                 "acknowledged_at", "silenced_until", "incident_id"]
STATES = ("pending", "firing", "resolved", "all")


def alerts_frame(conn: Connection, *, model: str | None = None, state: str = "all",
                 limit: int | None = None) -> pd.DataFrame:
    """Alert records (docs/contract.md §3), newest first. Raises ValueError for an unknown state."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    query = (select(Alert, MonitoredModel.name.label("model"))
             .join(MonitoredModel, MonitoredModel.id == Alert.model_id)
             .order_by(Alert.started_at.desc(), Alert.id.desc()))
    if model is not None:
        query = query.where(MonitoredModel.name == model)
    if state != "all":
        query = query.where(Alert.state == state)
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=ALERT_COLUMNS + EXTRA_COLUMNS)
    frame = frame.rename(columns={"class_name": "class"})
    frame["silenced_until"] = _silenced_until(conn, frame)
    iso_columns(frame, ["started_at", "fired_at", "resolved_at", "fired_as_of", "acknowledged_at",
                 "silenced_until"])
    frame["support"] = frame["support"].astype("Int64")
    frame["incident_id"] = pd.to_numeric(frame["incident_id"]).astype("Int64")
    return frame[ALERT_COLUMNS + EXTRA_COLUMNS].reset_index(drop=True)


def active_silences(conn: Connection, now: int | None = None) -> pd.DataFrame:
    now = now_epoch() if now is None else now
    rows = conn.execute(select(AlertSilence).where(AlertSilence.starts_at <= now,
                                                   AlertSilence.ends_at > now)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in AlertSilence.__table__.c])


def silence_matches(silence: dict[Any, Any], record: dict[Any, Any]) -> bool:
    """Does a silence (None = any) cover an alert record (keys as in alerts_frame)? A record
    without a matched key is not covered: the outbox asks this of every claimed event before
    sending, and one malformed payload must not stop the pass for all of them."""
    pairs = (("model", "model"), ("rule", "rule"), ("class_name", "class"),
             ("segment", "segment"), ("segment_value", "segment_value"))
    return all(silence[s] is None or (isinstance(silence[s], float) and np.isnan(silence[s]))
               or (r in record and str(silence[s]) == str(record[r])) for s, r in pairs)


def _silenced_until(conn: Connection, frame: pd.DataFrame) -> pd.Series:
    silences = active_silences(conn).to_dict("records")
    records = frame.rename(columns={"class_name": "class"}).to_dict("records")
    until = [max((s["ends_at"] for s in silences if silence_matches(s, r)), default=None)
             for r in records]
    return pd.Series(until, index=frame.index, dtype=object)


def series_frame(conn: Connection, *, model: str | None = None) -> pd.DataFrame:
    """State of every series ever evaluated: status, streak, last window end and value."""
    query = (select(MonitoredModel.name.label("model"), AlertSeries.rule, AlertSeries.metric,
                    AlertSeries.class_name.label("class"), AlertSeries.segment,
                    AlertSeries.segment_value, AlertSeries.status, AlertSeries.streak,
                    AlertSeries.last_end, AlertSeries.last_value, AlertSeries.last_support,
                    AlertSeries.alert_id, AlertSeries.fingerprint)
             .join(MonitoredModel, MonitoredModel.id == AlertSeries.model_id)
             .order_by(AlertSeries.rule, AlertSeries.class_name, AlertSeries.segment,
                       AlertSeries.segment_value))
    if model is not None:
        query = query.where(MonitoredModel.name == model)
    frame = pd.DataFrame([dict(r) for r in conn.execute(query).mappings().all()],
                         columns=["model", "rule", "metric", "class", "segment", "segment_value",
                                  "status", "streak", "last_end", "last_value", "last_support",
                                  "alert_id", "fingerprint"])
    if len(frame):
        iso_columns(frame, ["last_end"])
        _fill_from_alerts(conn, frame)
    for column in ("last_support", "alert_id"):  # whole numbers, also beside nulls (int?)
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame


def _fill_from_alerts(conn: Connection, frame: pd.DataFrame) -> None:
    """Series written before the engine kept their last observation have no value: an open
    alert's value and support are that observation's."""
    missing = frame["last_value"].isna() & frame["alert_id"].notna()
    if not missing.any():
        return
    ids = [int(i) for i in frame.loc[missing, "alert_id"]]
    rows = {r.id: r for r in conn.execute(select(Alert.id, Alert.value, Alert.support)
                                          .where(Alert.id.in_(ids))).all()}
    for index, alert_id in zip(frame.index[missing], ids):
        row = rows.get(alert_id)
        if row is not None:
            frame.at[index, "last_value"], frame.at[index, "last_support"] = row.value, row.support


def acknowledge(conn: Connection, alert_id: int, *, by: str, comment: str | None = None) -> None:
    """Mark an alert acknowledged: no more reminders. Raises LookupError for an unknown id."""
    result = conn.execute(update(Alert).where(Alert.id == int(alert_id)).values(
        acknowledged_by=by, acknowledged_at=now_epoch(), ack_comment=comment))
    if result.rowcount == 0:
        raise LookupError(f"no alert with id {alert_id}")


def silence(conn: Connection, *, model: str, rule: str | None = None, class_: str | None = None,
            segment: str | None = None, segment_value: str | None = None,
            until: int | str, by: str, comment: str | None = None,
            starts: int | str | None = None) -> int:
    """Mute notifications of matching alerts until `until`; returns the silence id."""
    now = now_epoch()
    start = now if starts is None else parse_time(starts)
    end = parse_time(until)
    if end <= start:
        raise ValueError("a silence must end after it starts (until is in the past?)")
    result = conn.execute(insert(AlertSilence).values(
        model=model, rule=rule, class_name=class_, segment=segment, segment_value=segment_value,
        starts_at=start, ends_at=end, created_by=by, comment=comment, created_at=now))
    return inserted_id(result)


def unsilence(conn: Connection, silence_id: int) -> None:
    """End a silence now. Raises LookupError for an unknown id."""
    result = conn.execute(update(AlertSilence).where(AlertSilence.id == int(silence_id))
                          .values(ends_at=now_epoch()))
    if result.rowcount == 0:
        raise LookupError(f"no silence with id {silence_id}")


def silences_frame(conn: Connection, model: str | None = None, *, include_expired: bool = False) -> pd.DataFrame:
    query = select(AlertSilence).order_by(AlertSilence.ends_at.desc())
    if model is not None:
        query = query.where(AlertSilence.model == model)
    if not include_expired:
        query = query.where(AlertSilence.ends_at > now_epoch())
    frame = pd.DataFrame([dict(r) for r in conn.execute(query).mappings().all()],
                         columns=[c.name for c in AlertSilence.__table__.c])
    frame = frame.rename(columns={"class_name": "class"})
    if len(frame):
        iso_columns(frame, ["starts_at", "ends_at", "created_at"])
    return frame


def deliveries_frame(conn: Connection, model: str | None = None, limit: int = 200) -> pd.DataFrame:
    """The delivery log, newest first: every attempt to send an event to a channel."""
    query = (select(AlertDelivery.id, AlertDelivery.event_id, AlertEvent.alert_id,
                    MonitoredModel.name.label("model"), AlertEvent.kind, AlertEvent.severity,
                    AlertDelivery.channel, AlertDelivery.attempt, AlertDelivery.status,
                    AlertDelivery.error, AlertDelivery.duration_ms, AlertDelivery.created_at)
             .join(AlertEvent, AlertEvent.id == AlertDelivery.event_id)
             .join(MonitoredModel, MonitoredModel.id == AlertEvent.model_id)
             .order_by(AlertDelivery.id.desc()).limit(limit))
    if model is not None:
        query = query.where(MonitoredModel.name == model)
    columns = ["id", "event_id", "alert_id", "model", "kind", "severity", "channel", "attempt",
               "status", "error", "duration_ms", "created_at"]
    frame = pd.DataFrame([dict(r) for r in conn.execute(query).mappings().all()], columns=columns)
    if len(frame):
        iso_columns(frame, ["created_at"])
    return frame


def events_frame(conn: Connection, alert_id: int) -> pd.DataFrame:
    """The outbox events of one alert, oldest first, with their delivery outcome."""
    query = (select(AlertEvent.id, AlertEvent.alert_id, AlertEvent.kind, AlertEvent.severity,
                    AlertEvent.data_time, AlertEvent.created_at, AlertEvent.attempts,
                    AlertEvent.next_attempt_at, AlertEvent.processed_at, AlertEvent.outcome)
             .where(AlertEvent.alert_id == int(alert_id)).order_by(AlertEvent.id))
    columns = ["id", "alert_id", "kind", "severity", "data_time", "created_at", "attempts",
               "next_attempt_at", "processed_at", "outcome"]
    frame = pd.DataFrame([dict(r) for r in conn.execute(query).mappings().all()], columns=columns)
    if len(frame):
        iso_columns(frame, ["data_time", "created_at", "next_attempt_at", "processed_at"])
    return frame


def pending_events(conn: Connection) -> int:
    """Events not yet processed (for health pages and tests)."""
    return len(conn.execute(select(AlertEvent.id).where(AlertEvent.processed_at.is_(None))).all())


def forget_model(conn: Connection, model_id: int) -> None:
    """Delete every alert row of a model and its incidents (used by backtests that reuse a database)."""
    conn.execute(delete(AlertSeries).where(AlertSeries.model_id == model_id))
    conn.execute(delete(Alert).where(or_(Alert.model_id == model_id)))
    conn.execute(delete(Incident).where(Incident.model_id == model_id))

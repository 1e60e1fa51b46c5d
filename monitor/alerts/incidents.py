"""Reads and user actions on incidents (CLI, HTTP API). The caller owns the transaction.

- `incidents_frame`: docs/contract.md `incidents` records, newest first, then extra columns
  (fingerprint, fired_as_of, acknowledged_by, acknowledged_at, silenced_until).
- `incident_snapshot`: one incident as the payload of its notifications.
- `acknowledge_incident`: no more reminders for it (its resolve notification still goes out).
- `silence_incident` / `unsilence_incident`: mute its notifications until a time (checked at
  delivery, so a silence set after an event was written still holds it back).

Incidents live in `monitor.incidents.models`; this module sits in the alerts package because it
counts their member alerts (`alerts.incident_id`), and alerts may import incidents, not the reverse.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from monitor.alerts.models import Alert
from monitor.incidents.models import Incident
from monitor.store.models import MonitoredModel
from monitor.timeutil import iso_columns, now_epoch, parse_time

INCIDENT_COLUMNS = [
    "id", "model", "state", "severity", "class", "segment", "segment_value", "explains", "n_alerts",
    "started_at", "fired_at", "resolved_at", "value", "reference_value", "low", "high", "support",
    "evidence", "message",
]
EXTRA_COLUMNS = ["fingerprint", "fired_as_of", "acknowledged_by", "acknowledged_at", "silenced_until"]
STATES = ("open", "resolved", "all")
TIMES = ["started_at", "fired_at", "resolved_at", "fired_as_of", "acknowledged_at", "silenced_until"]


def incidents_frame(conn: Connection, *, model: str | None = None, state: str = "all",
                    limit: int | None = None, ids: list[int] | None = None) -> pd.DataFrame:
    """Incident records (docs/contract.md), newest first. ValueError for an unknown state."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    members = (select(Alert.incident_id, func.count().label("n_alerts"))
               .where(Alert.incident_id.is_not(None)).group_by(Alert.incident_id).subquery())
    query = (select(Incident, MonitoredModel.name.label("model"), members.c.n_alerts)
             .join(MonitoredModel, MonitoredModel.id == Incident.model_id)
             .outerjoin(members, members.c.incident_id == Incident.id)
             .order_by(Incident.fired_at.desc(), Incident.id.desc()))
    if model is not None:
        query = query.where(MonitoredModel.name == model)
    if state != "all":
        query = query.where(Incident.state == state)
    if ids is not None:
        query = query.where(Incident.id.in_(ids))
    if limit is not None:
        query = query.limit(limit)
    frame = pd.DataFrame([dict(r) for r in conn.execute(query).mappings().all()])
    if frame.empty:
        return pd.DataFrame(columns=INCIDENT_COLUMNS + EXTRA_COLUMNS)
    frame = frame.rename(columns={"class_name": "class"})
    now = now_epoch()
    frame["silenced_until"] = [u if u is not None and u == u and u > now else None
                               for u in frame["silenced_until"].astype(object)]
    iso_columns(frame, TIMES)
    frame["n_alerts"] = frame["n_alerts"].fillna(0).astype("int64")
    frame["support"] = pd.to_numeric(frame["support"]).astype("Int64")
    frame["explains"] = [list(v or []) for v in frame["explains"]]
    frame["evidence"] = [list(v or []) for v in frame["evidence"]]
    return frame[INCIDENT_COLUMNS + EXTRA_COLUMNS].reset_index(drop=True)


def incident_snapshot(conn: Connection, incident_id: int) -> dict[str, Any]:
    """The incident as a plain dict (its notifications' payload): the record's names, data
    times as epoch seconds (as an alert snapshot), plus `incident_id`, `rule` (its member
    alerts' rule, so that alert silences match it), `metric`, `window` and `fingerprint`."""
    row = conn.execute(select(Incident, MonitoredModel.name.label("model"))
                       .join(MonitoredModel, MonitoredModel.id == Incident.model_id)
                       .where(Incident.id == incident_id)).mappings().one()
    rules = conn.execute(select(Alert.rule).where(Alert.incident_id == incident_id)
                         .order_by(Alert.id)).scalars().all()
    snapshot = {name: row[name] for name in (
        "model", "state", "severity", "metric", "segment", "segment_value", "window", "started_at", "fired_at",
        "resolved_at", "value", "reference_value", "low", "high", "support", "message", "fingerprint",
        "acknowledged_by")}
    snapshot.update({"incident_id": int(incident_id), "id": int(incident_id), "class": row["class_name"],
                     "rule": rules[0] if rules else "incident", "explains": list(row["explains"] or []),
                     "evidence": list(row["evidence"] or []), "n_alerts": len(rules)})
    return snapshot


def acknowledge_incident(conn: Connection, incident_id: int, *, by: str, comment: str | None = None) -> None:
    """No more reminders for this incident. LookupError for an unknown id."""
    result = conn.execute(update(Incident).where(Incident.id == int(incident_id)).values(
        acknowledged_by=by, acknowledged_at=now_epoch(), ack_comment=comment))
    if result.rowcount == 0:
        raise LookupError(f"no incident with id {incident_id}")


def silence_incident(conn: Connection, incident_id: int, *, until: int | str, by: str) -> int:
    """Mute the incident's notifications until `until` (epoch or ISO); returns that time."""
    end = parse_time(until)
    if end <= now_epoch():
        raise ValueError("a silence must end in the future (until is in the past?)")
    result = conn.execute(update(Incident).where(Incident.id == int(incident_id)).values(
        silenced_until=end, silenced_by=by))
    if result.rowcount == 0:
        raise LookupError(f"no incident with id {incident_id}")
    return end


def unsilence_incident(conn: Connection, incident_id: int) -> None:
    result = conn.execute(update(Incident).where(Incident.id == int(incident_id)).values(
        silenced_until=None, silenced_by=None))
    if result.rowcount == 0:
        raise LookupError(f"no incident with id {incident_id}")


def silenced_incidents(conn: Connection, now: int) -> set[int]:
    """Ids of the incidents muted at `now` (the outbox holds back their events)."""
    return set(conn.execute(select(Incident.id).where(Incident.silenced_until > now)).scalars().all())

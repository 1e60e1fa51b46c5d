"""Typed reads and user actions on incidents, straight from `monitor.alerts.incidents`.

Read: `incidents` (records, newest first). Actions, each in the caller's write transaction:
`acknowledge` (no more reminders; LookupError for an unknown id), `silence` (mute its
notifications until a time; ValueError for an end in the past, LookupError), `unsilence`.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection

from monitor.alerts import incidents as service
from monitor.alerts.incidents import STATES

__all__ = ["STATES", "acknowledge", "incidents", "silence", "unsilence"]


def incidents(conn: Connection, *, model: str | None = None, state: str = "all",
              limit: int | None = None) -> pd.DataFrame:
    """Incident records, newest first (ValueError for an unknown state)."""
    return service.incidents_frame(conn, model=model, state=state, limit=limit)


def acknowledge(conn: Connection, incident_id: int, *, by: str, comment: str | None = None) -> None:
    service.acknowledge_incident(conn, incident_id, by=by, comment=comment)


def silence(conn: Connection, incident_id: int, *, until: int | str, by: str) -> int:
    return service.silence_incident(conn, incident_id, until=until, by=by)


def unsilence(conn: Connection, incident_id: int) -> None:
    service.unsilence_incident(conn, incident_id)

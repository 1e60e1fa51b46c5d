"""Typed reads and user actions on alerts, straight from `monitor.alerts.service`.

Reads: `alerts` (records, newest first), `alert_series` (every series' state), `events`
(one alert's outbox), `silences`, `deliveries`. Actions, each in the caller's write
transaction: `acknowledge` (LookupError for an unknown id), `silence` (ValueError for a bad
end), `unsilence` (LookupError).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection

from monitor.alerts import service
from monitor.alerts.service import acknowledge, silence, unsilence

__all__ = ["acknowledge", "alert_series", "alerts", "deliveries", "events", "silence", "silences",
           "unsilence"]


def alerts(conn: Connection, *, model: str | None = None, state: str = "all",
           limit: int | None = None) -> pd.DataFrame:
    """Alert records, newest first (ValueError for an unknown state)."""
    return service.alerts_frame(conn, model=model, state=state, limit=limit)


def alert_series(conn: Connection, *, model: str | None = None) -> pd.DataFrame:
    return service.series_frame(conn, model=model)


def events(conn: Connection, alert_id: int) -> pd.DataFrame:
    return service.events_frame(conn, alert_id)


def silences(conn: Connection, model: str | None = None, *, include_expired: bool = False) -> pd.DataFrame:
    return service.silences_frame(conn, model, include_expired=include_expired)


def deliveries(conn: Connection, model: str | None = None, *, limit: int = 200) -> pd.DataFrame:
    return service.deliveries_frame(conn, model, limit=limit)

"""Reads and user actions on alerts (CLI, HTTP API, dashboard)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection

ALERT_COLUMNS = [
    "id", "model", "rule", "metric", "class", "segment", "segment_value", "state", "started_at",
    "fired_at", "resolved_at", "value", "reference_value", "low", "high", "support", "message",
]


def alerts_frame(conn: Connection, *, model: str | None = None, state: str = "all") -> pd.DataFrame:
    """Alert records (CONTRACT §3), newest first."""
    return pd.DataFrame(columns=ALERT_COLUMNS)

"""Alert rule evaluation (called once per tick per model)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from monitor.config import MonitorConfig
from monitor.context import ModelContext


def evaluate(conn: Connection, config: MonitorConfig, ctx: ModelContext, as_of: int) -> dict[str, int]:
    """Evaluate every rule of `ctx` at data time `as_of`; write state changes and events.
    Returns counts for the tick summary (e.g. {"firing": 1, "resolved": 0})."""
    return {}

"""The outbox: claim unprocessed alert events atomically and deliver them to channels."""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.config import MonitorConfig


def deliver_pending(engine: Engine, config: MonitorConfig, now: int | None = None) -> dict[str, int]:
    """Deliver every due event to every subscribed channel; returns counts (sent, failed)."""
    return {}

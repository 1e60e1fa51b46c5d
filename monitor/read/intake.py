"""Typed reads of the two push paths into the monitor: the stream consumers of `monitor
consume` (`monitor.stream.status`, issue 17) and the HTTP write inbox (`monitor.ingest.inbox`,
issue 15). For the Data page; `/metrics` and the ingest route read the same functions' sources."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Connection

from monitor.ingest import inbox
from monitor.stream import status

__all__ = ["inbox_status", "stream_consumers"]


def stream_consumers(conn: Connection, models: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (model, stream, consumer): pending, ack_pending, lag_seconds, last_batch_at
    (epoch seconds), batch and record counts (`monitor.stream.status.COLUMNS`)."""
    return status.consumers(conn, None if models is None else list(models))


def inbox_status(conn: Connection, model_id: int) -> inbox.InboxStatus:
    """The model's HTTP inbox: queued prediction and label rows, the oldest one's receive
    time (epoch microseconds), `aggregated_through` (epoch seconds)."""
    return inbox.status(conn, model_id)

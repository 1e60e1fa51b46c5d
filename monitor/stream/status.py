"""Reads of `stream_consumers`: the consumers of each model, their counts and lag (for
`/metrics`, `monitor consume` and the Data page)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection

from monitor.store.models import MonitoredModel
from monitor.stream.models import StreamConsumer

COLUMNS = ["model", "source", "stream", "consumer", "pending", "ack_pending", "lag_seconds", "last_batch_at",
           "updated_at", "batches", "messages", "redelivered", "predictions", "labels", "skipped", "rejected"]


def consumers(conn: Connection, models: list[str] | None = None) -> pd.DataFrame:
    """One row per (model, stream, consumer), ordered by model and consumer; `models` limits
    the rows to those model names."""
    c = StreamConsumer
    query = (select(MonitoredModel.name.label("model"), *[getattr(c, name) for name in COLUMNS[1:]])
             .join(MonitoredModel, MonitoredModel.id == c.model_id)
             .order_by(MonitoredModel.name, c.stream, c.consumer))
    if models is not None:
        query = query.where(MonitoredModel.name.in_(models))
    return pd.DataFrame(conn.execute(query).all(), columns=COLUMNS)

"""Small reads of stored facts for the read layer (`monitor.read`): a model's row, the
newest bucket of its predictions."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from monitor.store.models import MonitoredModel, PredictionCount


def stored_model(conn: Connection, name: str) -> tuple[int, list[str], list[str]] | None:
    """(id, learned classes, learned minority classes) of model `name`, or None when it has
    no row yet (it was never ingested)."""
    row = conn.execute(
        select(MonitoredModel.id, MonitoredModel.classes, MonitoredModel.minority_classes)
        .where(MonitoredModel.name == name)
    ).first()
    if row is None:
        return None
    return int(row.id), list(row.classes or []), list(row.minority_classes or [])


def newest_bucket(conn: Connection, model_id: int) -> int | None:
    """The newest `bucket_start` with predictions of the model (every stored bucket counts)."""
    newest = conn.execute(
        select(func.max(PredictionCount.bucket_start)).where(PredictionCount.model_id == model_id)
    ).scalar_one_or_none()
    return None if newest is None else int(newest)

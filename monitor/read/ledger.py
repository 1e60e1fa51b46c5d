"""Typed reads of what ingestion recorded (`monitor.ingest.report`) and of the database's
health (`monitor.store.db`): the file ledger, rejects, per-model summaries, the data
version pages refresh on, the last good tick, segment attributes past their value limit."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Connection

from monitor.ingest import report
from monitor.ingest.slices import OTHER_SEGMENT
from monitor.store.db import is_migrated

__all__ = ["OTHER_SEGMENT", "files", "is_migrated", "last_ok_ingest", "ledger_summary", "ledger_version", "overflowed_attributes",
           "rejects"]


def files(conn: Connection, models: Sequence[str]) -> pd.DataFrame:
    """Every file seen for `models`, newest first, with status and row counts."""
    return report.files_frame(conn, models)


def rejects(conn: Connection, models: Sequence[str], *, limit: int = 1000) -> pd.DataFrame:
    """Rejected rows with their reasons, then failed files, newest first."""
    return report.rejects_frame(conn, models, limit=limit)


def ledger_summary(conn: Connection, model: str) -> tuple[pd.Timestamp | None, int, int]:
    """(last ingest time, rejected rows, failed files) of `model`."""
    return report.ledger_summary(conn, model)


def ledger_version(conn: Connection) -> str:
    """Text that changes whenever a file was ingested (cache keys)."""
    return report.ledger_version(conn)


def last_ok_ingest(conn: Connection) -> int | None:
    """End of the last successful tick (epoch seconds), None before the first."""
    return report.last_ok_ingest(conn)


def overflowed_attributes(conn: Connection, models: Sequence[str]) -> list[tuple[str, str]]:
    """(model, attribute) pairs with new values counted as OTHER_SEGMENT because the
    attribute passed `limits.max_segment_values`, sorted."""
    return report.attributes_with_value(conn, models, OTHER_SEGMENT)

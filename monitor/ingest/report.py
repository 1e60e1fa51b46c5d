"""Reads of what ingestion recorded: rejected rows, failed files, the file ledger, ticks.

For `monitor rejects`, the dashboard's Overview and Data pages and `/metrics`, called through
the read layer (`monitor.read.ledger`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from monitor.store.models import (
    IngestedFile,
    IngestRun,
    MonitoredModel,
    RejectedRow,
    Slice,
    SliceValue,
)
from monitor.timeutil import parse_time

REJECT_COLUMNS = ["model", "kind", "source", "row", "field", "reason", "raw", "created_at"]
FILE_COLUMNS = ["model", "kind", "path", "status", "rows_read", "rows_accepted", "rows_rejected",
                "rows_waiting", "error", "ingested_at", "rows_skipped"]
_STORED = FILE_COLUMNS[:-1]


def rejects_frame(conn: Connection, models: Sequence[str], *, limit: int = 1000) -> pd.DataFrame:
    """Rejected rows with their reasons, then failed files (row and field empty), newest first."""
    m = MonitoredModel.__table__
    r = RejectedRow.__table__
    f = IngestedFile.__table__
    rows = conn.execute(
        select(m.c.name, r.c.kind, r.c.source, r.c.row_number, r.c.field, r.c.reason, r.c.raw, r.c.created_at)
        .select_from(r.join(m, m.c.id == r.c.model_id)).where(m.c.name.in_(list(models)))
        .order_by(r.c.id.desc()).limit(limit)
    ).all()
    failed = conn.execute(
        select(m.c.name, f.c.kind, f.c.path, f.c.error, f.c.ingested_at)
        .select_from(f.join(m, m.c.id == f.c.model_id))
        .where(m.c.name.in_(list(models)), f.c.status == "failed").order_by(f.c.id.desc())
    ).all()
    frame = pd.DataFrame(rows, columns=REJECT_COLUMNS)
    if failed:
        files = pd.DataFrame([{"model": x[0], "kind": x[1], "source": x[2], "row": None, "field": None,
                               "reason": f"file failed: {x[3]}", "raw": None, "created_at": x[4]} for x in failed])
        frame = pd.concat([files, frame], ignore_index=True) if len(frame) else files
    if len(frame):
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame["row"] = frame["row"].astype("Int64")
    return frame[REJECT_COLUMNS]


def files_frame(conn: Connection, models: Sequence[str]) -> pd.DataFrame:
    """The file ledger: every file seen, with status and row counts.

    `rows_skipped` is what the ledger does not store but a reader asks about: the rows read
    that were neither accepted, rejected nor waiting (exact duplicates, rows an earlier read
    already stored, label corrections superseded in the same file), so that
    read = accepted + rejected + skipped + waiting for every file."""
    m = MonitoredModel.__table__
    f = IngestedFile.__table__
    rows = conn.execute(
        select(m.c.name, f.c.kind, f.c.path, f.c.status, f.c.rows_read, f.c.rows_accepted, f.c.rows_rejected,
               f.c.rows_waiting, f.c.error, f.c.ingested_at)
        .select_from(f.join(m, m.c.id == f.c.model_id)).where(m.c.name.in_(list(models)))
        .order_by(f.c.ingested_at.desc())
    ).all()
    frame = pd.DataFrame(rows, columns=_STORED)
    if len(frame):
        frame["ingested_at"] = pd.to_datetime(frame["ingested_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    counted = frame["rows_accepted"] + frame["rows_rejected"] + frame["rows_waiting"]
    # accepted counts earlier partial reads of the same content too: never below zero
    frame["rows_skipped"] = (frame["rows_read"] - counted).clip(lower=0).astype("int64")
    return frame[FILE_COLUMNS]


def last_runs(conn: Connection, limit: int = 20) -> pd.DataFrame:
    """The latest ticks (started, finished, status, error)."""
    t = IngestRun.__table__
    rows = conn.execute(select(t.c.id, t.c.started_at, t.c.finished_at, t.c.as_of, t.c.status, t.c.error)
                        .order_by(t.c.id.desc()).limit(limit)).all()
    return pd.DataFrame(rows, columns=["id", "started_at", "finished_at", "as_of", "status", "error"])


def ledger_summary(conn: Connection, model: str) -> tuple[pd.Timestamp | None, int, int]:
    """(last ingest time as a UTC Timestamp, rejected rows, failed files) of `model`."""
    failed = case((IngestedFile.status == "failed", 1), else_=0)
    row = conn.execute(
        select(func.max(IngestedFile.ingested_at),
               func.coalesce(func.sum(IngestedFile.rows_rejected), 0),
               func.coalesce(func.sum(failed), 0))
        .join(MonitoredModel, MonitoredModel.id == IngestedFile.model_id)
        .where(MonitoredModel.name == model)
    ).one()
    last = pd.Timestamp(row[0]) if row[0] is not None else None
    if last is not None and last.tzinfo is None:
        last = last.tz_localize("UTC")
    return last, int(row[1] or 0), int(row[2] or 0)


def ledger_version(conn: Connection) -> str:
    """Changes whenever a file was ingested: the ledger's size, newest time and rows."""
    row = conn.execute(select(func.count(IngestedFile.id), func.max(IngestedFile.ingested_at),
                              func.sum(IngestedFile.rows_accepted))).one()
    return f"{row[0]}|{row[1]}|{row[2]}"


def last_ok_ingest(conn: Connection) -> int | None:
    """End of the newest successful tick (epoch seconds), or None before the first."""
    # newest first by primary key: constant time however long the run history grows
    finished = conn.execute(
        select(IngestRun.finished_at).where(IngestRun.status == "ok").order_by(IngestRun.id.desc()).limit(1)
    ).scalar_one_or_none()
    return None if finished is None else parse_time(finished)


def attributes_with_value(conn: Connection, models: Sequence[str], value: str) -> list[tuple[str, str]]:
    """(model, attribute) pairs that have segment value `value` in some slice, sorted."""
    rows = conn.execute(
        select(MonitoredModel.name, SliceValue.attribute).distinct()
        .join(Slice, Slice.id == SliceValue.slice_id)
        .join(MonitoredModel, MonitoredModel.id == Slice.model_id)
        .where(SliceValue.value == value, MonitoredModel.name.in_(list(models)))
        .order_by(MonitoredModel.name, SliceValue.attribute)
    ).all()
    return [(str(name), str(attribute)) for name, attribute in rows]

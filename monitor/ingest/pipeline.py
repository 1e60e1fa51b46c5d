"""Loading validated batches of predictions and labels (the slices are `slices.py`, the label
join `labels.py`, a batch of files' deferred counts `batch.py`).

Everything here runs inside the caller's transaction, so a batch's rows, counts, hook counts
and ledger entry commit together or not at all (kill-safe). Idempotency comes from keys:
a prediction id already stored with the same content is skipped, with other content it is a
rejected conflict; a label is applied once and a corrected label moves its count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation.aggregate import kept_scores
from monitor.ingest.batch import Pending, count_predictions
from monitor.ingest.labels import apply_labels, apply_labels_with, stored_predictions_of
from monitor.ingest.recent import RecentPredictions
from monitor.ingest.rejects import store_rejects
from monitor.ingest.slices import OTHER_SEGMENT, slice_ids
from monitor.ingest.validate import REJECT_COLUMNS, validate_labels, validate_predictions
from monitor.store.bulk import insert_frame, select_in, update_rows
from monitor.store.models import Label, Prediction
from monitor.timeutil import now_epoch

# names other modules import from here: batches, slices and label application live in
# monitor.ingest.batch, .slices and .labels (the chain slices -> labels -> batch -> pipeline)
__all__ = ["OTHER_SEGMENT", "IngestResult", "Pending", "apply_labels", "ingest_frame", "load_labels",
           "load_predictions", "slice_ids"]
# a mapped class's __table__ is declared as FromClause; here it is a Table
PREDICTIONS = cast(Table, Prediction.__table__)
LABELS = cast(Table, Label.__table__)
LOOKUP_CHUNK = 5_000


_NO_REJECTS = pd.DataFrame(columns=REJECT_COLUMNS)  # copied: a fresh frame costs 20x a copy


@dataclass
class IngestResult:
    """What happened to one batch (a file chunk or a POST body)."""

    read: int = 0
    accepted: int = 0
    skipped: int = 0  # already stored (re-read) or an exact duplicate
    waiting: int = 0  # not yet visible at as_of
    next_visible: int | None = None  # the earliest time of a waiting row
    rejected: int = 0
    rejects: pd.DataFrame = field(default_factory=lambda: _NO_REJECTS.copy())

    def add(self, other: IngestResult) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.skipped += other.skipped
        self.waiting += other.waiting
        if other.next_visible is not None:
            self.next_visible = other.next_visible if self.next_visible is None else min(self.next_visible, other.next_visible)
        self.rejected += other.rejected
        self.rejects = pd.concat([self.rejects, other.rejects], ignore_index=True) if len(other.rejects) else self.rejects

    @property
    def reasons(self) -> list[dict]:
        if self.rejects.empty:
            return []
        return [
            {"row": int(row), "field": column, "reason": reason}
            for row, column, reason in self.rejects[["row_number", "field", "reason"]].itertuples(index=False, name=None)
        ]


def _conflict_rejects(rows: pd.DataFrame, field: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"row_number": rows["_row"].to_numpy(), "field": field, "reason": reason,
         "raw": [json.dumps({"prediction_id": str(i)}) for i in rows["prediction_id"]]}
    )


def _existing(conn: Connection, table: Table, model_id: int, ids: pd.Series, columns: list[str]) -> pd.DataFrame:
    """Rows of `table` for `ids` (one prepared lookup on the driver's cursor, bounded
    parameters on every backend: see `select_in`)."""
    unique = pd.unique(ids)
    if not len(unique):
        return pd.DataFrame(columns=["prediction_id", *columns])
    found = select_in(conn, table, key_column="prediction_id", keys=[str(v) for v in unique],
                      columns=columns, equal={"model_id": model_id})
    return pd.DataFrame(found, columns=["prediction_id", *columns])


def _content_hash(rows: pd.DataFrame, ctx: ModelContext) -> pd.Series:
    columns = ["ts", "predicted", *ctx.segments]
    hashed = pd.util.hash_pandas_object(rows[columns].astype(str), index=False)
    return pd.Series(hashed.to_numpy(dtype=np.uint64).view(np.int64), index=rows.index)



def load_predictions(conn: Connection, ctx: ModelContext, frame: pd.DataFrame, *, as_of: int | None,
                     file_id: int | None = None, pending: Pending | None = None) -> IngestResult:
    """Validate and store a batch of raw prediction records; update counts; run hooks
    (or leave counts and hooks to `pending.flush`, for a batch of files)."""
    result = IngestResult(read=len(frame))
    if frame.empty:
        return result
    validated = validate_predictions(frame, ctx)
    rows, rejects = validated.rows, [validated.rejects]
    if as_of is not None:
        later = rows["ts"] > as_of
        result.waiting = int(later.sum())
        result.next_visible = int(rows.loc[later, "ts"].min()) if result.waiting else None
        rows = rows.loc[~later]
    rows = rows.assign(content_hash=_content_hash(rows, ctx)) if len(rows) else rows.assign(content_hash=pd.Series(dtype="int64"))
    # duplicates inside the batch: identical ones are dropped, conflicting ones rejected
    first = ~rows.duplicated("prediction_id", keep="first")
    same = rows.duplicated(["prediction_id", "content_hash"], keep="first")
    conflict_in_batch = ~first & ~same
    rejects.append(_conflict_rejects(rows.loc[conflict_in_batch], ctx.config.predictions.id,
                                     "conflicting duplicate prediction (same id, other content, earlier in the batch)"))
    result.skipped += int(same.sum())
    rows = rows.loc[first]
    stored = _existing(conn, PREDICTIONS, ctx.model_id, rows["prediction_id"], ["content_hash"])
    if len(stored):
        merged = rows[["prediction_id", "content_hash"]].merge(stored, on="prediction_id", how="left", suffixes=("", "_stored"))
        known = merged["content_hash_stored"].notna().to_numpy()
        differs = known & (merged["content_hash_stored"].to_numpy() != merged["content_hash"].to_numpy())
        rejects.append(_conflict_rejects(rows.loc[differs], ctx.config.predictions.id,
                                         "conflicting duplicate prediction (same id, other content, already ingested)"))
        result.skipped += int((known & ~differs).sum())
        rows = rows.loc[~known]
    result.rejects = pd.concat([r for r in rejects if len(r)], ignore_index=True) if any(len(r) for r in rejects) else result.rejects
    result.rejected = len(result.rejects)
    if rows.empty:
        return result
    rows = rows.assign(slice_id=slice_ids(conn, ctx, rows), bucket_start=rows["ts"] - rows["ts"] % ctx.bucket)
    stored_rows = pd.DataFrame({
        "model_id": ctx.model_id, "prediction_id": rows["prediction_id"], "ts": rows["ts"],
        "bucket_start": rows["bucket_start"], "slice_id": rows["slice_id"], "predicted": rows["predicted"],
        "model_version": rows["model_version"].astype(object), "content_hash": rows["content_hash"],
        "file_id": file_id,
    })
    scores = kept_scores(ctx, rows)
    if scores is not None:
        stored_rows["scores"] = scores
    insert_frame(conn, PREDICTIONS, stored_rows)
    accepted = rows.drop(columns=["_row", "content_hash"])
    if pending is not None:
        pending.add_predictions(accepted)
    else:
        count_predictions(conn, ctx, accepted)
    result.accepted = len(rows)
    return result


def load_labels(conn: Connection, ctx: ModelContext, frame: pd.DataFrame, *, as_of: int | None,
                file_id: int | None = None, pending: Pending | None = None) -> IngestResult:
    """Validate and store a batch of labels (newest label per id wins); apply what can be
    (or leave that to `pending.flush`, for a batch of files)."""
    result = IngestResult(read=len(frame))
    if frame.empty:
        return result
    default_ts = as_of if as_of is not None else now_epoch()
    validated = validate_labels(frame, ctx, default_ts)
    rows = validated.rows
    result.rejects, result.rejected = validated.rejects, len(validated.rejects)
    if as_of is not None:
        later = rows["label_ts"] > as_of
        result.waiting = int(later.sum())
        result.next_visible = int(rows.loc[later, "label_ts"].min()) if result.waiting else None
        rows = rows.loc[~later]
    # the newest label of an id wins (a correction); ties: the later row in the batch
    rows = rows.sort_values(["label_ts", "_row"], kind="stable")
    newest = rows.drop_duplicates("prediction_id", keep="last")
    result.skipped += len(rows) - len(newest)
    stored = _existing(conn, LABELS, ctx.model_id, newest["prediction_id"], ["label", "label_ts"])
    if stored.empty:  # the usual case: all new (no merge, whose fixed cost dominated small files)
        fresh, corrections = newest.reset_index(drop=True), newest.iloc[:0]
    else:
        merged = newest.merge(stored, on="prediction_id", how="left", suffixes=("", "_stored"))
        is_new = merged["label_stored"].isna()
        stored_ts = merged["label_ts_stored"].fillna(-1).astype("int64")
        changed = ~is_new & (merged["label"] != merged["label_stored"].fillna("")) & (merged["label_ts"] >= stored_ts)
        result.skipped += int((~is_new & ~changed).sum())
        fresh, corrections = merged.loc[is_new], merged.loc[changed]
    direct = store_new_labels(conn, ctx, fresh, file_id, pending.recent if pending is not None else None)
    store_corrections(conn, ctx, corrections)
    result.accepted = len(fresh) + len(corrections)
    if pending is not None:
        pending.add_direct(direct)
        if result.accepted:
            pending.label_ids += [fresh["prediction_id"], corrections["prediction_id"]]
    else:
        apply_labels_with(conn, ctx, direct)
    return result



def store_new_labels(conn: Connection, ctx: ModelContext, fresh: pd.DataFrame, file_id: Any,
                     recent: RecentPredictions | None = None) -> pd.DataFrame:
    """Insert the new labels of `fresh`; returns those whose prediction is stored (TODO_COLUMNS).

    A new label whose prediction is stored is applied on the spot: stored as applied and
    counted by the caller together with the other labels to apply, exactly as if it had been
    stored pending and applied by the join in `apply_labels` (which then has only the others
    to do). `file_id`: one id, or one per row of `fresh`. `recent`: the sweep's predictions
    (`monitor.ingest.recent`), joined before any lookup."""
    direct, applied = stored_predictions_of(conn, ctx, fresh, recent)
    applied_label = fresh["label"].to_numpy(dtype=object, copy=True)
    applied_label[~applied] = None  # stored pending: counted when its prediction comes
    insert_frame(conn, LABELS, pd.DataFrame({
        "model_id": ctx.model_id, "prediction_id": fresh["prediction_id"], "label": fresh["label"],
        "label_ts": fresh["label_ts"], "applied_label": applied_label, "needs_apply": ~applied,
        "file_id": file_id,
    }))
    return direct


def store_corrections(conn: Connection, ctx: ModelContext, corrections: pd.DataFrame) -> None:
    """A changed label replaces the stored one and waits to be applied (its count moves). The
    last correction of an id wins, as it would one after another; all in one statement on
    PostgreSQL (`update_rows`)."""
    if not len(corrections):
        return
    last = corrections.drop_duplicates("prediction_id", keep="last")
    update_rows(conn, LABELS, pd.DataFrame({
        "model_id": ctx.model_id, "prediction_id": last["prediction_id"].astype(str).to_numpy(),
        "label": last["label"].astype(str).to_numpy(), "label_ts": last["label_ts"].astype("int64").to_numpy(),
        "needs_apply": True}), key_columns=["model_id", "prediction_id"])


def ingest_frame(conn: Connection, ctx: ModelContext, kind: str, frame: pd.DataFrame, *,
                 source: str = "api", as_of: int | None = None, pending: Pending | None = None) -> IngestResult:
    """Ingest raw records (a POST body) with exactly the rules of files; rejects are stored.
    With `pending`, counts and hooks are left to `pending.flush` (a stream batch's phase two)."""
    frame = frame.reset_index(drop=True)
    if "_row" not in frame.columns:
        frame = frame.assign(_row=np.arange(1, len(frame) + 1))
    if kind == "predictions":
        result = load_predictions(conn, ctx, frame, as_of=as_of, pending=pending)
    elif kind == "labels":
        result = load_labels(conn, ctx, frame, as_of=as_of, pending=pending)
    else:
        raise ValueError(f"unknown kind {kind!r}: use predictions or labels")
    store_rejects(conn, ctx, kind, source, None, result.rejects)
    return result

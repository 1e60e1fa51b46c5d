"""Loading validated batches: predictions, labels, the label join, and the count aggregates.

Everything here runs inside the caller's transaction, so a batch's rows, counts, hook counts
and ledger entry commit together or not at all (kill-safe). Idempotency comes from keys:
a prediction id already stored with the same content is skipped, with other content it is a
rejected conflict; a label is applied once and a corrected label moves its count.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, and_, bindparam, exists, select, update
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.ingest import hooks
from monitor.ingest.rejects import store_rejects
from monitor.ingest.validate import REJECT_COLUMNS, validate_labels, validate_predictions
from monitor.store.bulk import add_counts, insert_frame, inserted_id, select_in, update_rows
from monitor.store.models import (
    ConfusionCount,
    Label,
    LabelArrivalCount,
    Prediction,
    PredictionCount,
    Slice,
    SliceValue,
)
from monitor.timeutil import now_epoch

log = logging.getLogger(__name__)
# a mapped class's __table__ is declared as FromClause; here it is a Table
PREDICTIONS = cast(Table, Prediction.__table__)
LABELS = cast(Table, Label.__table__)
SLICES = cast(Table, Slice.__table__)
SLICE_VALUES = cast(Table, SliceValue.__table__)
PREDICTION_COUNTS = cast(Table, PredictionCount.__table__)
CONFUSION_COUNTS = cast(Table, ConfusionCount.__table__)
ARRIVAL_COUNTS = cast(Table, LabelArrivalCount.__table__)
LOOKUP_CHUNK = 5_000


@dataclass
class IngestResult:
    """What happened to one batch (a file chunk or a POST body)."""

    read: int = 0
    accepted: int = 0
    skipped: int = 0  # already stored (re-read) or an exact duplicate
    waiting: int = 0  # not yet visible at as_of
    next_visible: int | None = None  # the earliest time of a waiting row
    rejected: int = 0
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECT_COLUMNS))

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


OTHER_SEGMENT = "(other)"  # the value of every new segment value past limits.max_segment_values


def cap_segment_values(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows whose segment values past `limits.max_segment_values` distinct values of their
    attribute (stored so far plus new ones, in order of first appearance) are `(other)`.

    One attribute with 100k ids would otherwise make 100k slices, as many alert series and a
    /metrics page of megabytes. The values stored are bounded by the limit, so reading them
    all is cheap; the cut is logged and shown on the Data page (an `(other)` value)."""
    limit = ctx.config.limits.max_segment_values
    for segment in ctx.segments:
        present = pd.unique(rows[segment])
        if len(present) == 0:
            continue
        stored = set(conn.execute(
            select(SliceValue.value).distinct()
            .join(Slice, Slice.id == SliceValue.slice_id)
            .where(Slice.model_id == ctx.model_id, SliceValue.attribute == segment)
        ).scalars())
        new = [v for v in present if v not in stored and v != OTHER_SEGMENT]
        room = max(limit - len(stored - {OTHER_SEGMENT}), 0)
        if len(new) <= room:
            continue
        refused = new[room:]
        hit = rows[segment].isin(refused)
        log.warning("model %s: segment %r has more than %d distinct values; %d rows of %d new values "
                    "are counted as %s (limits.max_segment_values)", ctx.name, segment, limit,
                    int(hit.sum()), len(refused), OTHER_SEGMENT)
        rows = rows.assign(**{segment: rows[segment].where(~hit, OTHER_SEGMENT)})
    return rows


def slice_ids(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> pd.Series:
    """The slice id of every row (inserting new slices), from its segment values (capped
    by `cap_segment_values` first)."""
    if ctx.segments and len(rows):
        rows = cap_segment_values(conn, ctx, rows)
    if not ctx.segments:
        combo = np.zeros(len(rows), dtype=np.int64)
        wanted = ["{}"] if len(rows) else []
    else:
        # one code per distinct combination of segment values, numbered in order of first
        # appearance (so new slices get their ids in that order)
        combo = np.zeros(len(rows), dtype=np.int64)
        for segment in ctx.segments:
            codes, uniques = pd.factorize(rows[segment], use_na_sentinel=False)
            combo, _ = pd.factorize(combo * len(uniques) + codes)
        _, first_row = np.unique(combo, return_index=True)  # codes 0..k-1: row of each one's first
        firsts = rows[ctx.segments].iloc[first_row]
        wanted = [json.dumps(dict(zip(ctx.segments, values)), sort_keys=True)
                  for values in firsts.itertuples(index=False, name=None)]
    known = dict(
        conn.execute(
            select(Slice.key, Slice.id).where(Slice.model_id == ctx.model_id, Slice.key.in_(list(wanted)))
        ).all()
    )
    for key in wanted:
        if key in known:
            continue
        new_id = inserted_id(conn.execute(SLICES.insert().values(model_id=ctx.model_id, key=key)))
        values = json.loads(key)
        if values:
            conn.execute(SLICE_VALUES.insert(),
                         [{"slice_id": new_id, "attribute": a, "value": v} for a, v in values.items()])
        known[key] = new_id
    ids = np.asarray([known[key] for key in wanted], dtype=np.int64)
    return pd.Series(ids[combo], index=rows.index, dtype="int64")


def _content_hash(rows: pd.DataFrame, ctx: ModelContext) -> pd.Series:
    columns = ["ts", "predicted", *ctx.segments]
    hashed = pd.util.hash_pandas_object(rows[columns].astype(str), index=False)
    return pd.Series(hashed.to_numpy(dtype=np.uint64).view(np.int64), index=rows.index)


@dataclass
class Pending:
    """Aggregation deferred to the end of a batch of files (one transaction): the accepted
    predictions and the labels applied on the spot, summed in one pass per batch instead of
    one groupby per file and table (pandas' fixed cost per operation dominated small files).

    Frames are grouped by their columns and dtypes: a file without a feature or score column
    must reach the hooks without it (a column filled with NaN would count as missing values)."""

    predictions: dict[tuple, list[pd.DataFrame]] = field(default_factory=dict)
    direct: list[pd.DataFrame] = field(default_factory=list)
    labels: bool = False  # a label file was loaded: waiting labels are applied at the flush
    rows: int = 0

    def add_predictions(self, rows: pd.DataFrame) -> None:
        key = tuple(zip(rows.columns, map(str, rows.dtypes), strict=True))
        self.predictions.setdefault(key, []).append(rows)
        self.rows += len(rows)

    def add_direct(self, direct: pd.DataFrame) -> None:
        self.labels = True
        if len(direct):
            self.direct.append(direct)
            self.rows += len(direct)

    def extend(self, other: Pending) -> None:
        for key, frames in other.predictions.items():
            self.predictions.setdefault(key, []).extend(frames)
        self.direct.extend(other.direct)
        self.labels = self.labels or other.labels
        self.rows += other.rows

    def flush(self, conn: Connection, ctx: ModelContext) -> None:
        """Counts and hooks of everything pending, in the caller's transaction."""
        for frames in self.predictions.values():
            _count_predictions(conn, ctx, frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))
        if self.labels:
            direct = (pd.concat(self.direct, ignore_index=True) if len(self.direct) > 1
                      else self.direct[0] if self.direct else None)
            _apply_labels(conn, ctx, direct)
        self.predictions, self.direct, self.labels, self.rows = {}, [], False, 0


def _count_predictions(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> None:
    """Prediction counts and the prediction hooks of accepted rows."""
    counts = rows.groupby(["bucket_start", "slice_id", "predicted"], as_index=False).size()
    add_counts(conn, PREDICTION_COUNTS, pd.DataFrame({
        "model_id": ctx.model_id, "bucket_start": counts["bucket_start"], "slice_id": counts["slice_id"],
        "pred_class": counts["predicted"], "n": counts["size"],
    }), key_columns=["model_id", "bucket_start", "slice_id", "pred_class"])
    for hook in hooks.prediction_hooks():
        hook(conn, ctx, rows)


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
    insert_frame(conn, PREDICTIONS, pd.DataFrame({
        "model_id": ctx.model_id, "prediction_id": rows["prediction_id"], "ts": rows["ts"],
        "bucket_start": rows["bucket_start"], "slice_id": rows["slice_id"], "predicted": rows["predicted"],
        "model_version": rows["model_version"].astype(object), "content_hash": rows["content_hash"],
        "labeled_at": None, "file_id": file_id,
    }))
    accepted = rows.drop(columns=["_row", "content_hash"])
    if pending is not None:
        pending.add_predictions(accepted)
    else:
        _count_predictions(conn, ctx, accepted)
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
    merged = newest.merge(stored, on="prediction_id", how="left", suffixes=("", "_stored"))
    is_new = merged["label_stored"].isna()
    stored_ts = merged["label_ts_stored"].fillna(-1).astype("int64")
    changed = ~is_new & (merged["label"] != merged["label_stored"].fillna("")) & (merged["label_ts"] >= stored_ts)
    result.skipped += int((~is_new & ~changed).sum())
    fresh = merged.loc[is_new]
    # A new label whose prediction is stored is applied on the spot: stored as applied and
    # counted below together with the other labels to apply, exactly as if it had been stored
    # pending and applied by the join in `apply_labels` (which then has only the others to do).
    direct = _stored_predictions(conn, ctx, fresh)
    applied = fresh["prediction_id"].isin(direct["prediction_id"]).to_numpy()
    applied_label = fresh["label"].to_numpy(dtype=object, copy=True)
    applied_label[~applied] = None  # stored pending: counted when its prediction comes
    insert_frame(conn, LABELS, pd.DataFrame({
        "model_id": ctx.model_id, "prediction_id": fresh["prediction_id"], "label": fresh["label"],
        "label_ts": fresh["label_ts"],
        "applied_label": applied_label,
        "needs_apply": ~applied, "file_id": file_id,
    }))
    corrections = merged.loc[changed]
    if len(corrections):
        conn.execute(
            update(LABELS)
            .where(LABELS.c.model_id == ctx.model_id, LABELS.c.prediction_id == bindparam("pid"))
            .values(label=bindparam("new_label"), label_ts=bindparam("new_ts"), needs_apply=True),
            [{"pid": p, "new_label": lab, "new_ts": int(t)} for p, lab, t in
             zip(corrections["prediction_id"], corrections["label"], corrections["label_ts"])],
        )
    result.accepted = len(fresh) + len(corrections)
    if pending is not None:
        pending.add_direct(direct)
    else:
        _apply_labels(conn, ctx, direct)
    return result


TODO_COLUMNS = ["prediction_id", "label", "applied_label", "label_ts", "bucket_start", "slice_id", "predicted",
                "ts", "labeled_at"]


def _stored_predictions(conn: Connection, ctx: ModelContext, fresh: pd.DataFrame) -> pd.DataFrame:
    """The new labels of `fresh` whose prediction is stored, joined with it (TODO_COLUMNS)."""
    if fresh.empty:
        return pd.DataFrame(columns=TODO_COLUMNS)
    found = select_in(conn, PREDICTIONS, key_column="prediction_id", keys=[str(v) for v in fresh["prediction_id"]],
                      columns=["bucket_start", "slice_id", "predicted", "ts", "labeled_at"],
                      equal={"model_id": ctx.model_id})
    stored = pd.DataFrame(found, columns=["prediction_id", "bucket_start", "slice_id", "predicted", "ts", "labeled_at"])
    if stored.empty:
        return pd.DataFrame(columns=TODO_COLUMNS)
    joined = fresh[["prediction_id", "label", "label_ts"]].merge(stored, on="prediction_id", how="inner")
    return joined.assign(applied_label=None)[TODO_COLUMNS]


def _delay_bins(delay_seconds: np.ndarray) -> np.ndarray:
    """Delay in hours rounded up to a power of two; 0 for under an hour."""
    hours = np.maximum(delay_seconds, 0) / 3600.0
    bins = np.zeros(len(hours), dtype=np.int64)
    late = hours > 1
    bins[late] = np.power(2, np.ceil(np.log2(hours[late]))).astype(np.int64)
    bins[(hours > 0) & (hours <= 1)] = 1
    return bins


def apply_labels(conn: Connection, ctx: ModelContext) -> int:
    """Move counts for every label not yet (or wrongly) counted whose prediction is stored.

    Set-based: one join finds them; deltas (+1 new label, -1 replaced label) go into the
    confusion counts; the first label of a prediction also records its arrival delay.
    """
    return _apply_labels(conn, ctx, None)


def _apply_labels(conn: Connection, ctx: ModelContext, direct: pd.DataFrame | None) -> int:
    """`apply_labels`, plus `direct`: new labels stored as applied already (TODO_COLUMNS,
    `applied_label` None), counted in the same pass; their predictions get `labeled_at`."""
    joined = conn.execute(
        select(LABELS.c.prediction_id, LABELS.c.label, LABELS.c.applied_label, LABELS.c.label_ts,
               PREDICTIONS.c.bucket_start, PREDICTIONS.c.slice_id, PREDICTIONS.c.predicted,
               PREDICTIONS.c.ts, PREDICTIONS.c.labeled_at)
        .select_from(LABELS.join(PREDICTIONS, and_(PREDICTIONS.c.model_id == LABELS.c.model_id,
                                                   PREDICTIONS.c.prediction_id == LABELS.c.prediction_id)))
        .where(LABELS.c.model_id == ctx.model_id, LABELS.c.needs_apply.is_(True))
    ).fetchall()
    has_direct = direct is not None and not direct.empty
    if not joined and not has_direct:
        return 0
    # plain tuples: pandas would convert the Row objects one attribute probe at a time
    pending = pd.DataFrame([tuple(row) for row in joined], columns=TODO_COLUMNS) if joined else None
    if pending is None:
        todo = direct
    elif has_direct:
        todo = pd.concat([pending, direct], ignore_index=True)
    else:
        todo = pending
    assert todo is not None
    plus = todo[["bucket_start", "slice_id", "label", "predicted"]].assign(n=1)
    minus = todo.loc[todo["applied_label"].notna(), ["bucket_start", "slice_id", "applied_label", "predicted"]]
    minus = minus.rename(columns={"applied_label": "label"}).assign(n=-1)
    deltas = pd.concat([plus, minus], ignore_index=True)
    deltas = deltas.groupby(["bucket_start", "slice_id", "label", "predicted"], as_index=False).agg(n=("n", "sum"))
    deltas = deltas.loc[deltas["n"] != 0]
    add_counts(conn, CONFUSION_COUNTS, pd.DataFrame({
        "model_id": ctx.model_id, "bucket_start": deltas["bucket_start"], "slice_id": deltas["slice_id"],
        "true_class": deltas["label"], "pred_class": deltas["predicted"], "n": deltas["n"],
    }), key_columns=["model_id", "bucket_start", "slice_id", "true_class", "pred_class"])
    is_first = todo["labeled_at"].isna().to_numpy().copy()
    if has_direct and pending is not None:
        # a label applied on the spot and corrected later in the same batch of files (its
        # prediction's labeled_at is set below): the arrival is the first label's, in `direct`
        assert direct is not None
        from_pending = np.arange(len(todo)) < len(pending)
        is_first &= ~(from_pending & todo["prediction_id"].isin(direct["prediction_id"]).to_numpy())
    first = todo.loc[is_first]
    if len(first):
        bins = _delay_bins((first["label_ts"] - first["ts"]).to_numpy(dtype=np.float64))
        arrivals = pd.DataFrame({"model_id": ctx.model_id, "bucket_start": first["bucket_start"].to_numpy(),
                                 "delay_bin": bins, "n": 1})
        add_counts(conn, ARRIVAL_COUNTS, arrivals,
                   key_columns=["model_id", "bucket_start", "delay_bin"])
    if has_direct:
        assert direct is not None
        # in key order: neighbouring rows share index and table pages
        first_direct = direct.loc[direct["labeled_at"].isna()].sort_values("prediction_id", kind="stable")
        update_rows(conn, PREDICTIONS, pd.DataFrame({
            "labeled_at": first_direct["label_ts"], "model_id": ctx.model_id,
            "prediction_id": first_direct["prediction_id"]}),
            key_columns=["model_id", "prediction_id"], value_columns=["labeled_at"], only_null=["labeled_at"])
    if pending is not None and (pending["labeled_at"].isna().any()):
        pending_label = (
            select(LABELS.c.label_ts)
            .where(LABELS.c.model_id == PREDICTIONS.c.model_id,
                   LABELS.c.prediction_id == PREDICTIONS.c.prediction_id,
                   LABELS.c.needs_apply.is_(True))
            .scalar_subquery()
        )
        conn.execute(
            update(PREDICTIONS)
            .where(PREDICTIONS.c.model_id == ctx.model_id, PREDICTIONS.c.labeled_at.is_(None),
                   PREDICTIONS.c.prediction_id.in_(
                       select(LABELS.c.prediction_id).where(LABELS.c.model_id == ctx.model_id,
                                                            LABELS.c.needs_apply.is_(True))))
            .values(labeled_at=pending_label)
        )
    if pending is not None:
        matched = exists().where(PREDICTIONS.c.model_id == LABELS.c.model_id,
                                 PREDICTIONS.c.prediction_id == LABELS.c.prediction_id)
        conn.execute(
            update(LABELS)
            .where(LABELS.c.model_id == ctx.model_id, LABELS.c.needs_apply.is_(True), matched)
            .values(applied_label=LABELS.c.label, needs_apply=False)
        )
    return len(todo)


def ingest_frame(conn: Connection, ctx: ModelContext, kind: str, frame: pd.DataFrame, *,
                 source: str = "api", as_of: int | None = None) -> IngestResult:
    """Ingest raw records (a POST body) with exactly the rules of files; rejects are stored."""
    frame = frame.reset_index(drop=True)
    if "_row" not in frame.columns:
        frame = frame.assign(_row=np.arange(1, len(frame) + 1))
    if kind == "predictions":
        result = load_predictions(conn, ctx, frame, as_of=as_of)
    elif kind == "labels":
        result = load_labels(conn, ctx, frame, as_of=as_of)
    else:
        raise ValueError(f"unknown kind {kind!r}: use predictions or labels")
    store_rejects(conn, ctx, kind, source, None, result.rejects)
    return result

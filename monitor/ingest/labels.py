"""Applying labels: the set-based join of stored labels with their predictions that moves
confusion counts (+1 the new label, -1 the label it replaces) and records the arrival delay of
a prediction's first label. Runs inside the caller's transaction.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, and_, exists, select, update
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.store.bulk import add_counts, select_in_recent, update_rows
from monitor.store.models import ConfusionCount, Label, LabelArrivalCount, Prediction
from monitor.store.partitions import LABEL_LOOKUP_WINDOW, RECENT_LOOKUP_WINDOW

# a mapped class's __table__ is declared as FromClause; here it is a Table
PREDICTIONS = cast(Table, Prediction.__table__)
LABELS = cast(Table, Label.__table__)
CONFUSION_COUNTS = cast(Table, ConfusionCount.__table__)
ARRIVAL_COUNTS = cast(Table, LabelArrivalCount.__table__)


TODO_COLUMNS = ["prediction_id", "label", "applied_label", "label_ts", "bucket_start", "slice_id", "predicted",
                "ts", "labeled_at"]


def stored_predictions(conn: Connection, ctx: ModelContext, fresh: pd.DataFrame) -> pd.DataFrame:
    """The new labels of `fresh` whose prediction is stored, joined with it (TODO_COLUMNS)."""
    if fresh.empty:
        return pd.DataFrame(columns=TODO_COLUMNS)
    # PostgreSQL: the last week's partitions first (most labels come within days), then those
    # within the label horizon, then older ones, each for the ids not found yet
    first = int(fresh["label_ts"].min())
    found = select_in_recent(conn, PREDICTIONS, key_column="prediction_id", keys=[str(v) for v in fresh["prediction_id"]],
                             columns=["bucket_start", "slice_id", "predicted", "ts", "labeled_at"],
                             equal={"model_id": ctx.model_id}, time_column="ts",
                             since=[first - RECENT_LOOKUP_WINDOW, first - LABEL_LOOKUP_WINDOW])
    if not found:
        return pd.DataFrame(columns=TODO_COLUMNS)
    # the inner join in `fresh`'s order (its ids are unique), with dicts: a merge's fixed cost
    # dominated a small file's labels
    by_id = {row[0]: row for row in found}
    ids = fresh["prediction_id"].to_numpy()
    take = np.fromiter((pid in by_id for pid in ids), dtype=bool, count=len(ids))
    stored = pd.DataFrame([by_id[pid] for pid in ids[take]],
                          columns=["prediction_id", "bucket_start", "slice_id", "predicted", "ts", "labeled_at"])
    return pd.DataFrame({
        "prediction_id": pd.Series(ids[take], dtype=object), "label": pd.Series(fresh["label"].to_numpy()[take], dtype=object),
        "applied_label": None, "label_ts": fresh["label_ts"].to_numpy()[take],
        **{c: stored[c] for c in ["bucket_start", "slice_id", "predicted", "ts", "labeled_at"]},
    })[TODO_COLUMNS]


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
    return apply_labels_with(conn, ctx, None)


def apply_labels_with(conn: Connection, ctx: ModelContext, direct: pd.DataFrame | None) -> int:
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
        # with the prediction's time: PostgreSQL looks in its one weekly partition
        update_rows(conn, PREDICTIONS, pd.DataFrame({
            "labeled_at": first_direct["label_ts"], "model_id": ctx.model_id,
            "prediction_id": first_direct["prediction_id"], "ts": first_direct["ts"]}),
            key_columns=["model_id", "prediction_id", "ts"], value_columns=["labeled_at"], only_null=["labeled_at"])
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

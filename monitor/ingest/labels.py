"""Applying labels: the set-based match of stored labels with their predictions that moves
confusion counts (+1 the new label, -1 the label it replaces) and records the arrival delay of
a prediction's first label. Runs inside the caller's transaction.
"""

from __future__ import annotations

from operator import itemgetter
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.ingest.recent import RecentPredictions
from monitor.store.bulk import IN_CHUNK, add_counts, select_in, select_in_recent
from monitor.store.models import ConfusionCount, Label, LabelArrivalCount, Prediction
from monitor.store.partitions import LABEL_LOOKUP_WINDOW, RECENT_LOOKUP_WINDOW

# a mapped class's __table__ is declared as FromClause; here it is a Table
PREDICTIONS = cast(Table, Prediction.__table__)
LABELS = cast(Table, Label.__table__)
CONFUSION_COUNTS = cast(Table, ConfusionCount.__table__)
ARRIVAL_COUNTS = cast(Table, LabelArrivalCount.__table__)


TODO_COLUMNS = ["prediction_id", "label", "applied_label", "label_ts", "bucket_start", "slice_id", "predicted",
                "ts"]


def stored_predictions(conn: Connection, ctx: ModelContext, fresh: pd.DataFrame) -> pd.DataFrame:
    """The new labels of `fresh` whose prediction is stored, joined with it (TODO_COLUMNS)."""
    return stored_predictions_of(conn, ctx, fresh)[0]


def stored_predictions_of(conn: Connection, ctx: ModelContext, fresh: pd.DataFrame,
                          recent: RecentPredictions | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """`stored_predictions`, and which rows of `fresh` it holds (a boolean mask). Ids among
    the sweep's `recent` predictions are joined in memory, the others looked up."""
    n = len(fresh)
    if not n:
        return pd.DataFrame(columns=TODO_COLUMNS), np.zeros(n, dtype=bool)
    ids = fresh["prediction_id"].to_numpy()
    take = np.zeros(n, dtype=bool)
    joined = {"bucket_start": np.zeros(n, dtype=np.int64), "slice_id": np.zeros(n, dtype=np.int64),
              "predicted": np.empty(n, dtype=object), "ts": np.zeros(n, dtype=np.int64)}

    def fill(rows: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        take[rows] = True
        for name, values in columns.items():
            joined[name][rows] = values

    if recent is not None and len(recent):
        at, kept = recent.find(ids)
        rows = np.flatnonzero(at >= 0)
        fill(rows, {name: kept[name].take(at[rows]).to_numpy(dtype=joined[name].dtype) for name in joined})
    todo = np.flatnonzero(~take)
    if len(todo):
        fill(*_look_up(conn, ctx, ids[todo], fresh["label_ts"].to_numpy()[todo], todo))
    if not take.any():
        return pd.DataFrame(columns=TODO_COLUMNS), take
    return pd.DataFrame({
        "prediction_id": pd.Series(ids[take], dtype=object), "label": pd.Series(fresh["label"].to_numpy()[take], dtype=object),
        "applied_label": None, "label_ts": fresh["label_ts"].to_numpy()[take],
        **{name: values[take] for name, values in joined.items()},
    })[TODO_COLUMNS], take


def _look_up(conn: Connection, ctx: ModelContext, ids: np.ndarray, label_ts: np.ndarray, rows: np.ndarray
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(the `rows` whose id is stored, their prediction's columns) of labels `ids` (`rows` of
    the caller's batch)."""
    # PostgreSQL: the last week's partitions first (most labels come within days), then those
    # within the label horizon, then older ones, each for the ids not found yet
    first = int(label_ts.min())
    found = select_in_recent(conn, PREDICTIONS, key_column="prediction_id", keys=[str(v) for v in ids],
                             columns=["bucket_start", "slice_id", "predicted", "ts"],
                             equal={"model_id": ctx.model_id}, time_column="ts",
                             since=[first - RECENT_LOOKUP_WINDOW, first - LABEL_LOOKUP_WINDOW])
    # the inner join by positions, a column at a time: a merge's fixed cost dominated a small
    # file's labels, and a frame built from the row tuples cost more than the lookup itself
    # on a large one (columns by itemgetter, not zip(*found): transposing 900k rows that way
    # cost 1.1 s)
    position = dict(zip(map(itemgetter(0), found), range(len(found))))
    at = np.fromiter((position.get(pid, -1) for pid in ids), dtype=np.int64, count=len(ids))
    hit = at >= 0

    def column(k: int, dtype: type) -> np.ndarray:
        return np.fromiter(map(itemgetter(k), found), dtype=dtype, count=len(found))[at[hit]]

    return rows[hit], {"bucket_start": column(1, np.int64), "slice_id": column(2, np.int64),
                       "predicted": column(3, object), "ts": column(4, np.int64)}


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

    Set-based: the waiting labels and their predictions are read in two lookups; deltas (+1
    new label, -1 replaced label) go into the confusion counts; the first label of a
    prediction also records its arrival delay.
    """
    return apply_labels_with(conn, ctx, None)


def apply_labels_with(conn: Connection, ctx: ModelContext, direct: pd.DataFrame | None,
                      scope: list[str] | None = None) -> int:
    """`apply_labels`, plus `direct`: new labels stored as applied already (TODO_COLUMNS,
    `applied_label` None), counted in the same pass. With `scope`, only the waiting labels of
    those prediction ids are looked at (a stream batch: the ids it stored), not every waiting
    label of the model: labels whose prediction never comes are left to the scheduler's pass.

    A label counted for the first time is one whose `applied_label` is None: a new label
    (direct, or pending until its prediction came). A correction carries the label it
    replaces, so its prediction's arrival is not recorded twice. Predictions are never
    updated: on PostgreSQL their partitions are insert-only (no dead rows to vacuum)."""
    pending = _pending_with_predictions(conn, ctx, scope)
    has_direct = direct is not None and not direct.empty
    if pending is None and not has_direct:
        return 0
    if pending is None:
        todo = direct
    elif has_direct:
        todo = pd.concat([pending, direct], ignore_index=True)
    else:
        todo = pending
    assert todo is not None
    plus = todo[["bucket_start", "slice_id", "label", "predicted"]].assign(n=1)
    replaced = todo["applied_label"].notna()
    minus = todo.loc[replaced, ["bucket_start", "slice_id", "applied_label", "predicted"]]
    minus = minus.rename(columns={"applied_label": "label"}).assign(n=-1)
    deltas = pd.concat([plus, minus], ignore_index=True)
    deltas = deltas.groupby(["bucket_start", "slice_id", "label", "predicted"], as_index=False).agg(n=("n", "sum"))
    deltas = deltas.loc[deltas["n"] != 0]
    add_counts(conn, CONFUSION_COUNTS, pd.DataFrame({
        "model_id": ctx.model_id, "bucket_start": deltas["bucket_start"], "slice_id": deltas["slice_id"],
        "true_class": deltas["label"], "pred_class": deltas["predicted"], "n": deltas["n"],
    }), key_columns=["model_id", "bucket_start", "slice_id", "true_class", "pred_class"])
    first = todo.loc[~replaced]
    if len(first):
        bins = _delay_bins((first["label_ts"] - first["ts"]).to_numpy(dtype=np.float64))
        arrivals = pd.DataFrame({"model_id": ctx.model_id, "bucket_start": first["bucket_start"].to_numpy(),
                                 "delay_bin": bins, "n": 1})
        add_counts(conn, ARRIVAL_COUNTS, arrivals,
                   key_columns=["model_id", "bucket_start", "delay_bin"])
    if pending is not None:
        ids = pending["prediction_id"].tolist()
        for start in range(0, len(ids), IN_CHUNK):
            conn.execute(
                update(LABELS)
                .where(LABELS.c.model_id == ctx.model_id, LABELS.c.needs_apply,
                       LABELS.c.prediction_id.in_(ids[start:start + IN_CHUNK]))
                .values(applied_label=LABELS.c.label, needs_apply=False)
            )
    return len(todo)


def _pending_with_predictions(conn: Connection, ctx: ModelContext,
                              scope: list[str] | None = None) -> pd.DataFrame | None:
    """Stored labels waiting to be counted (new ones whose prediction came late, corrections)
    whose prediction is stored, joined with it (TODO_COLUMNS); None if there are none. With
    `scope`, only those of these prediction ids.

    Two steps, not one join: the waiting labels by their partial index (`ix_labels_waiting`,
    usually few rows), then their predictions by id, newest weeks first. PostgreSQL planned the
    join as a walk over all of the model's predictions whenever its statistics were missing or
    stale (fresh weekly partitions, autovacuum behind): a cost that grew with the history."""
    query = (select(LABELS.c.prediction_id, LABELS.c.label, LABELS.c.applied_label, LABELS.c.label_ts)
             .where(LABELS.c.model_id == ctx.model_id, LABELS.c.needs_apply))
    waiting: list[tuple]
    if scope is None:
        waiting = [tuple(row) for row in conn.execute(query)]
    else:
        # few waiting (the usual case): read them all and keep the scope's, cheaper than one
        # index probe per id of the scope; many (labels whose prediction never comes): probe
        waiting = [tuple(row) for row in conn.execute(query.limit(len(scope) + 1))]
        if len(waiting) > len(scope):
            waiting = select_in(conn, LABELS, key_column="prediction_id", keys=scope,
                                columns=["label", "applied_label", "label_ts"],
                                equal={"model_id": ctx.model_id, "needs_apply": True})
        else:
            wanted = set(scope)
            waiting = [row for row in waiting if row[0] in wanted]
    if not waiting:
        return None
    labels = pd.DataFrame(waiting, columns=["prediction_id", "label", "applied_label", "label_ts"])
    joined = stored_predictions(conn, ctx, labels)
    if joined.empty:
        return None
    replaced = dict(zip(labels["prediction_id"], labels["applied_label"], strict=True))
    joined["applied_label"] = pd.Series([replaced[pid] for pid in joined["prediction_id"]], dtype=object,
                                        index=joined.index)
    return joined

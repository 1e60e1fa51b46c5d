"""A batch of files' deferred aggregation (`Pending`): prediction counts, prediction hooks and
label application summed once at the end of the batch, in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import pandas as pd
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.ingest import hooks
from monitor.ingest.labels import apply_labels_with
from monitor.ingest.recent import RecentPredictions, compact
from monitor.store.bulk import add_counts
from monitor.store.models import PredictionCount

# a mapped class's __table__ is declared as FromClause; here it is a Table
PREDICTION_COUNTS = cast(Table, PredictionCount.__table__)


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
    label_ids: list[pd.Series] = field(default_factory=list)  # labels stored, new or corrected (load_labels)
    # a sweep's committed predictions, for its label files' join (`monitor.ingest.recent`);
    # `written`: what this batch stored, handed to it once the batch has committed
    recent: RecentPredictions | None = None
    written: list[pd.DataFrame] = field(default_factory=list)

    def child(self) -> Pending:
        """A Pending for a part of this batch under a savepoint (`extend`ed into this one
        when the part goes in), sharing the sweep's recent predictions."""
        return Pending(recent=self.recent)

    def prediction_ids(self) -> list[str]:
        """The ids of the predictions stored (accepted) so far."""
        return [str(v) for frames in self.predictions.values() for f in frames for v in f["prediction_id"]]

    def stored_label_ids(self) -> list[str]:
        """The ids of the labels stored (new or corrected) so far by `load_labels`."""
        return [str(v) for ids in self.label_ids for v in ids]

    def add_predictions(self, rows: pd.DataFrame) -> None:
        key = tuple(zip(rows.columns, map(str, rows.dtypes), strict=True))
        self.predictions.setdefault(key, []).append(rows)
        self.rows += len(rows)
        if self.recent is not None:
            self.written.append(compact(rows))

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
        self.label_ids.extend(other.label_ids)
        self.written.extend(other.written)

    def flush(self, conn: Connection, ctx: ModelContext, *, scoped: bool = False) -> None:
        """Counts and hooks of everything pending, in the caller's transaction. `scoped`: only
        the waiting labels of the ids stored here are looked at (`apply_labels_with`'s scope),
        for callers whose labels all came through `load_labels` (a batch of files does not
        record its label ids and applies every waiting label)."""
        scope = list(dict.fromkeys(self.prediction_ids() + self.stored_label_ids())) if scoped else None
        for frames in self.predictions.values():
            count_predictions(conn, ctx, frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))
        if self.labels:
            direct = (pd.concat(self.direct, ignore_index=True) if len(self.direct) > 1
                      else self.direct[0] if self.direct else None)
            apply_labels_with(conn, ctx, direct, scope)
        self.predictions, self.direct, self.labels, self.rows, self.label_ids = {}, [], False, 0, []


def count_predictions(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> None:
    """Prediction counts and the prediction hooks of accepted rows."""
    counts = rows.groupby(["bucket_start", "slice_id", "predicted"], as_index=False).size()
    add_counts(conn, PREDICTION_COUNTS, pd.DataFrame({
        "model_id": ctx.model_id, "bucket_start": counts["bucket_start"], "slice_id": counts["slice_id"],
        "pred_class": counts["predicted"], "n": counts["size"],
    }), key_columns=["model_id", "bucket_start", "slice_id", "pred_class"])
    for hook in hooks.prediction_hooks():
        hook(conn, ctx, rows)

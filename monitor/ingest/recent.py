"""The predictions a sweep stored and committed, kept in memory for its label files.

A tick reads a model's prediction files, then its label files. The labels of predictions it
has just stored (a backfill, or an hour of data whose labels came with it) are joined here,
in memory, instead of being looked up by id in the database: that lookup was the largest
single cost of a backfill's labels (2.3 s of a million-row backfill on SQLite). Ids not
found here are looked up in the database as before.

What is kept is exactly what the database holds: a batch's rows are added only once its
transaction has committed (`monitor.ingest.ledger.ingest_files`), a file whose savepoint
rolled back never reaches the batch's list, and a stored prediction is never updated. The
one way a kept row can differ is a prediction deleted since by retention (`monitor
retention`, whose age is weeks or more); its label is then counted as though it had come
just before the deletion, like any label that came in time.

Memory is bounded: past `MAX_ROWS` rows, the oldest batches are forgotten (their labels are
looked up in the database)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

COLUMNS = ["prediction_id", "bucket_start", "slice_id", "predicted", "ts"]
# about 60 MB: the ids as Arrow text, three int64 columns and the predicted class
MAX_ROWS = 2_000_000


class RecentPredictions:
    """Committed predictions of one model, by id (the columns a label's join needs)."""

    def __init__(self, max_rows: int | None = None) -> None:
        self.max_rows = MAX_ROWS if max_rows is None else max_rows
        self._parts: list[pd.DataFrame] = []
        self._rows = 0
        self._table: pd.DataFrame | None = None  # the parts concatenated, first id kept
        self._index: pd.Index | None = None

    def __len__(self) -> int:
        return self._rows

    def add(self, frames: Iterable[pd.DataFrame]) -> None:
        """Keep the rows of `frames` (accepted predictions, committed)."""
        for frame in frames:
            if len(frame):
                self._parts.append(frame[COLUMNS].reset_index(drop=True))
                self._rows += len(frame)
        while self._rows > self.max_rows and self._parts:
            self._rows -= len(self._parts.pop(0))
        self._table = self._index = None

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
        """(position of each of `ids` in the returned table, -1 where not kept; the table)."""
        if not self._rows:
            return np.full(len(ids), -1, dtype=np.int64), pd.DataFrame(columns=COLUMNS)
        if self._table is None or self._index is None:
            table = self._parts[0] if len(self._parts) == 1 else pd.concat(self._parts, ignore_index=True)
            index = pd.Index(table["prediction_id"])
            if not index.is_unique:  # a stored id is unique; kept safe should a caller add one twice
                first = ~index.duplicated(keep="first")
                table, index = table.loc[first].reset_index(drop=True), index[first]
            self._table, self._index = table, index
        return self._index.get_indexer(pd.Index(ids, dtype=self._index.dtype)), self._table

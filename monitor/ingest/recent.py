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

Memory is bounded by rows and by bytes: past `MAX_ROWS` rows or `MAX_BYTES` of kept columns,
the oldest rows are forgotten (their labels are looked up in the database). The byte bound is
what holds when ids are long: a 200-character id (the longest the store takes) makes a row
some 250 bytes, and two million of them would be 500 MB."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

COLUMNS = ["prediction_id", "bucket_start", "slice_id", "predicted", "ts"]
# some 45 bytes a row with short ids (an id and the class as Arrow text, three integers):
# about 90 MB at MAX_ROWS; MAX_BYTES bounds rows with long ids
MAX_ROWS = 2_000_000
MAX_BYTES = 128 << 20
TEXT = pd.ArrowDtype(pa.string())


def compact(rows: pd.DataFrame) -> pd.DataFrame:
    """The columns kept of accepted prediction rows, copied into arrays of their own (a
    column selected from the batch's frame would keep the whole frame's blocks alive, features
    and scores included) and the text as Arrow, not a Python object per row."""
    return pd.DataFrame({
        "prediction_id": _text(rows["prediction_id"]),
        "bucket_start": rows["bucket_start"].to_numpy(dtype=np.int64, copy=True),
        "slice_id": rows["slice_id"].to_numpy(dtype=np.int64, copy=True),
        "predicted": _classes(rows["predicted"]),
        "ts": rows["ts"].to_numpy(dtype=np.int64, copy=True),
    })


def _text(values: pd.Series) -> pd.Series:
    """Arrow text of a column of str."""
    return pd.Series(_arrow_text(values.to_numpy(dtype=object)), dtype=TEXT)


def _arrow_text(values: np.ndarray) -> pa.Array:
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # not every value a str
        return pa.array([str(v) for v in values], type=pa.string())


def _classes(values: pd.Series) -> pd.Series:
    """`_text` of a column of a few distinct values, built from their dictionary."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    array = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)),
                                           pa.array([str(v) for v in uniques], type=pa.string()))
    return pd.Series(array.cast(pa.string()), dtype=TEXT)


def nbytes(frame: pd.DataFrame) -> int:
    """Bytes of a `compact` frame's columns (Arrow buffers and numpy arrays)."""
    total = 0
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.ArrowDtype):
            total += pa.array(values).nbytes
        else:
            total += values.to_numpy().nbytes
    return total


def _copied(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` in buffers of its own: a slice of a frame keeps its whole buffers alive."""
    out: dict[str, Any] = {}
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.ArrowDtype):
            array = pa.array(values)
            chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
            out[column] = pd.Series(pa.concat_arrays(chunks), dtype=values.dtype)  # (never empty here)
        else:
            out[column] = values.to_numpy(copy=True)
    return pd.DataFrame(out)


class RecentPredictions:
    """Committed predictions of one model, by id (the columns a label's join needs)."""

    def __init__(self, max_rows: int | None = None, max_bytes: int | None = None) -> None:
        self.max_rows = MAX_ROWS if max_rows is None else max_rows
        self.max_bytes = MAX_BYTES if max_bytes is None else max_bytes
        self._parts: list[pd.DataFrame] = []
        self._sizes: list[int] = []  # bytes of each part
        self._rows = 0
        self.bytes = 0
        self._table: pd.DataFrame | None = None  # the parts concatenated
        self._keys: pa.ChunkedArray | None = None  # the ids of `_table`

    def __len__(self) -> int:
        return self._rows

    def add(self, frames: Iterable[pd.DataFrame]) -> None:
        """Keep the rows of `frames` (`compact` frames of accepted predictions, committed)."""
        before = self._rows
        for frame in frames:
            if len(frame):
                size = nbytes(frame)
                self._parts.append(frame)
                self._sizes.append(size)
                self._rows += len(frame)
                self.bytes += size
        if self._rows == before:
            return  # a batch of labels: the join keeps its table and keys
        while self._parts and (self._rows > self.max_rows or self.bytes > self.max_bytes):  # oldest first
            first, size = self._parts[0], self._sizes[0]
            over_bytes = self.bytes - self.max_bytes
            excess = max(self._rows - self.max_rows,
                         math.ceil(over_bytes * len(first) / size) if over_bytes > 0 and size else 0)
            if len(first) <= excess:
                self._parts.pop(0)
                self._sizes.pop(0)
                self._rows -= len(first)
                self.bytes -= size
            else:
                kept = _copied(first.iloc[excess:])
                self._parts[0], self._sizes[0] = kept, nbytes(kept)
                self._rows -= excess
                self.bytes += self._sizes[0] - size
        self._table = self._keys = None

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
        """(position of each of `ids` in the returned table, -1 where not kept; the table)."""
        if not self._rows:
            return np.full(len(ids), -1, dtype=np.int64), pd.DataFrame(columns=COLUMNS)
        if self._table is None or self._keys is None:
            self._table = self._parts[0] if len(self._parts) == 1 else pd.concat(self._parts, ignore_index=True)
            self._parts, self._sizes = [self._table], [self.bytes]  # one copy in memory
            ids_of = pa.array(self._table["prediction_id"])  # the table's own buffers, not a copy
            # (a chunked array inside pa.chunked_array goes value by value: its chunks are passed)
            self._keys = pa.chunked_array(ids_of.chunks if isinstance(ids_of, pa.ChunkedArray) else [ids_of],
                                          type=pa.string())
        # Arrow's hash join, the batch's ids hashed (not the kept ones, a million on every call):
        # for each kept id, its place among `ids`. An id twice among `ids` is found once; the
        # other is looked up by the caller, which finds the same stored row.
        places = pc.index_in(self._keys, value_set=_arrow_text(np.asarray(ids, dtype=object)))
        found = places.is_valid()
        at = np.full(len(ids), -1, dtype=np.int64)
        at[places.filter(found).to_numpy()] = np.flatnonzero(found.to_numpy(zero_copy_only=False))
        return at, self._table

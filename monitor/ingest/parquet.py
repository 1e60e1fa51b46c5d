"""Parquet files in record batches (`monitor.ingest.readers.read_parquet`).

A batch of plain columns (text, numbers, times, booleans, dictionaries of text) goes to
pandas as it is: the usual file pays for nothing below. A column of another type is converted
first, and the rows it cannot give one value for are rejected by themselves, naming the field,
as a JSON-lines row would be (docs/design.md principle 8):

- binary columns (and text columns whose bytes are not UTF-8, written by a writer that does
  not check them) are read as text when their bytes are UTF-8, one C cast for the column; only
  a column with a bad value is decoded value by value, and the rows holding one are rejected;
- struct, list, map and union columns hold no single value: every row with a value there is
  rejected (a null there is a missing value), as the HTTP API rejects nested JSON;
- ids, classes, versions and segment values that are floats must be finite.

Only columns the model uses are judged: the first column, read only to count rows, is not.

A file whose selected columns repeat a name cannot say which one holds the field: it raises
`UnreadableFile`, naming the column.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from monitor.config import Limits
from monitor.ingest.chunks import NOT_FINITE_REASON, RAW_CHARS, Chunk, UnreadableFile, rejects_frame

_Reject = tuple[np.ndarray, str, list[str]]  # (rows rejected, field, their reasons)


def parquet_chunks(path: Path, string_columns: Sequence[str], keep: Callable[[str], bool],
                   limits: Limits, chunk_rows: int) -> Iterator[Chunk]:
    """The file's records in chunks of `chunk_rows`; `_row` counts rows from 1."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    if len(names) > limits.max_fields:
        raise UnreadableFile(f"{path}: {len(names):,} columns (limit {limits.max_fields:,}: limits.max_fields)")
    columns = [name for i, name in enumerate(names) if keep(name) or i == 0]  # never none: rows count
    repeated = [name for name, count in Counter(columns).items() if count > 1]
    if repeated:
        raise UnreadableFile(f"{path}: column {repeated[0]!r} appears {Counter(names)[repeated[0]]} times "
                             "(column names must be unique)")
    offset = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
        yield _chunk(batch, string_columns, keep, offset)
        offset += batch.num_rows


def _chunk(batch: pa.RecordBatch, string_columns: Sequence[str], keep: Callable[[str], bool],
           offset: int) -> Chunk:
    odd = [i for i, column in enumerate(batch.columns) if not _plain(column.type) or not _utf8(column)]
    rejects: list[_Reject] = []
    if odd:
        arrays = list(batch.columns)
        for i in odd:
            name = batch.schema.names[i]
            # the first column, read only to count rows when the model does not use it, is no reason
            arrays[i] = _convert(arrays[i], name, rejects) if keep(name) else pa.nulls(len(arrays[i]))
        frame = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names).to_pandas()
    else:
        frame = batch.to_pandas()
    for column in string_columns:
        if column in frame.columns:
            frame[column] = _as_string(frame[column], column, rejects)
    rows = np.arange(offset + 1, offset + len(frame) + 1)
    if not rejects:
        frame["_row"] = rows
        return Chunk(frame)
    return _without_rejects(batch, frame, rows, rejects)


def _plain(kind: pa.DataType) -> bool:
    """A type pandas takes as one value per row (text still to be checked: `_utf8`)."""
    if pa.types.is_dictionary(kind):
        return _plain(kind.value_type) and not pa.types.is_dictionary(kind.value_type)
    return not (_binary(kind) or pa.types.is_nested(kind))


def _utf8(column: pa.Array) -> bool:
    """False for a text column holding bytes that are not UTF-8 (Arrow checks them when a
    writer builds the column, not when it reads a file: pandas would hold them as they are);
    one C pass over the column's bytes."""
    if not _text_like(column.type):
        return True
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _binary(kind: pa.DataType) -> bool:
    return (pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
            or pa.types.is_binary_view(kind))


def _text_like(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _text_like(kind.value_type)
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _nested_kind(kind: pa.DataType) -> str:
    for name in ("struct", "map", "union"):
        if getattr(pa.types, f"is_{name}")(kind):
            return name
    return "list"


def _convert(array: pa.Array, field: str, rejects: list[_Reject]) -> pa.Array:
    """A column that is not `_plain` (or text pandas refused) as one pandas can take: text
    where its bytes are UTF-8, null where the row is rejected (noted in `rejects`)."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_nested(array.type):
        present = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        if present.any():
            reason = f"nested value (a Parquet {_nested_kind(array.type)}) where a single value is expected"
            rejects.append((present, field, [reason] * int(present.sum())))
        return pa.nulls(len(array))
    try:
        return pc.cast(pc.cast(array, pa.binary()), pa.string())
    except pa.ArrowInvalid:  # a value that is not UTF-8: decoded one by one
        pass
    texts: list[str | None] = []
    bad: list[bool] = []
    reasons: list[str] = []
    for value in pc.cast(array, pa.binary()).to_pylist():
        try:
            texts.append(None if value is None else value.decode("utf-8"))
            bad.append(False)
        except UnicodeDecodeError as error:
            texts.append(None)
            bad.append(True)
            reasons.append(f"not valid UTF-8 (byte 0x{value[error.start]:02x} at position "
                           f"{error.start + 1} of the value)")
    rejects.append((np.asarray(bad, dtype=bool), field, reasons))
    return pa.array(texts, pa.string())


def _as_string(values: pd.Series, field: str, rejects: list[_Reject]) -> pd.Series:
    """Values as strings, missing kept missing; integral floats lose the '.0'; an infinite
    float is rejected (noted in `rejects`), not stored as the text 'inf'."""
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(numbers)
        if infinite.any():
            rejects.append((infinite, field, [NOT_FINITE_REASON] * int(infinite.sum())))
            values = values.where(~infinite)
        as_int = values.dropna()
        if (as_int == as_int.round()).all() and (as_int.abs() < 2**53).all():
            return values.astype("Int64").astype("string")
    return values.astype("string")


def _without_rejects(batch: pa.RecordBatch, frame: pd.DataFrame, rows: np.ndarray,
                     rejects: list[_Reject]) -> Chunk:
    """The chunk of a batch some of whose rows are rejected: each row for the first column
    that rejected it, its raw text the row as the file holds it."""
    bad = np.zeros(len(frame), dtype=bool)
    picked: list[tuple[int, str, str]] = []  # (position, field, reason)
    for mask, field, reasons in rejects:
        found = np.flatnonzero(mask)
        for position, reason in zip(found, reasons, strict=True):
            if not bad[position]:
                picked.append((int(position), field, reason))
        bad[found] = True
    picked.sort()
    positions = [position for position, _, _ in picked]
    frame = frame.loc[~bad].reset_index(drop=True)
    frame["_row"] = rows[~bad]
    return Chunk(frame, rejects_frame([int(rows[p]) for p in positions], [r for _, _, r in picked],
                                      _raw_rows(batch, positions), [f for _, f, _ in picked]))


def _raw_rows(batch: pa.RecordBatch, positions: list[int]) -> list[str]:
    """The rows at `positions` as JSON text (bytes that are not UTF-8 shown escaped)."""
    taken = batch.take(pa.array(positions, pa.int64()))
    columns = {name: _python(column) for name, column in zip(taken.schema.names, taken.columns)}
    return [json.dumps({name: values[k] for name, values in columns.items()}, default=str)[:RAW_CHARS]
            for k in range(len(positions))]


def _python(column: pa.Array) -> list[Any]:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if _binary(column.type) or _text_like(column.type):
        return [None if v is None else v.decode("utf-8", "backslashreplace")
                for v in pc.cast(column, pa.binary()).to_pylist()]
    try:
        return column.to_pylist()
    except (pa.ArrowException, UnicodeDecodeError):  # e.g. a struct holding bytes that are not UTF-8
        return ["(unreadable)"] * len(column)

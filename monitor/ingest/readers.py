"""Readers for prediction and label files: CSV, JSON lines, Parquet, gzip (CONTRACT §1).

A reader yields DataFrames of raw records with a `_row` column (the 1-based data row number
in the file, for error messages). Identifier, class and segment columns are read as strings
so that `007` stays `007`; everything else keeps the type the format gives it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".parquet")
CHUNK_ROWS = 250_000


class UnreadableFile(Exception):
    """The file cannot be parsed at all (it is marked failed; other files go on)."""


def file_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise UnreadableFile(
        f"{path}: unsupported file type (use {', '.join(SUFFIXES)})"
    )


def is_supported(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def read_chunks(path: Path, string_columns: Sequence[str], chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Yield the file's records in chunks, each with `_row`. Raises UnreadableFile."""
    fmt = file_format(path)
    offset = 0
    try:
        for chunk in _raw_chunks(path, fmt, string_columns, chunk_rows):
            chunk = chunk.reset_index(drop=True)
            chunk["_row"] = range(offset + 1, offset + len(chunk) + 1)
            offset += len(chunk)
            yield chunk
    except UnreadableFile:
        raise
    except (ValueError, OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnreadableFile(f"{path}: cannot be parsed ({fmt}): {first}") from error
    except Exception as error:  # pyarrow raises its own types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnreadableFile(f"{path}: cannot be parsed ({fmt}): {first}") from error


def _raw_chunks(path: Path, fmt: str, string_columns: Sequence[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    if fmt == "csv":
        header = pd.read_csv(path, nrows=0)
        dtypes = {c: "string" for c in string_columns if c in header.columns}
        reader = pd.read_csv(
            path, dtype=dtypes, keep_default_na=False, na_values=[""], chunksize=chunk_rows
        )
        yield from reader
    elif fmt == "jsonl":
        reader = pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows)
        for chunk in reader:
            for column in string_columns:
                if column in chunk.columns:
                    chunk[column] = _as_string(chunk[column])
            yield chunk
    else:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            chunk = batch.to_pandas()
            for column in string_columns:
                if column in chunk.columns:
                    chunk[column] = _as_string(chunk[column])
            yield chunk


def _as_string(values: pd.Series) -> pd.Series:
    """Values as strings, missing kept missing; integral floats lose the '.0'."""
    if pd.api.types.is_float_dtype(values):
        as_int = values.dropna()
        if (as_int == as_int.round()).all():
            return values.astype("Int64").astype("string")
    return values.astype("string")


def read_all(path: Path, string_columns: Sequence[str]) -> pd.DataFrame:
    chunks = list(read_chunks(path, string_columns))
    if not chunks:
        return pd.DataFrame()
    return pd.concat(chunks, ignore_index=True)

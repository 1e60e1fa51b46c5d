"""Readers for prediction and label files: CSV, JSON lines, Parquet, gzip (docs/contract.md §1).

A reader yields `Chunk`s: a DataFrame of raw records with a `_row` column (the row number in
the file, for error messages) and the rows it could not parse, as rejects (`REJECT_COLUMNS`).
One malformed row never fails a file (docs/design.md principle 8): the reader rejects that row by
itself, with its row number, and the rest goes in. Only a file that cannot be read at all
(no header, an unsupported type, a broken gzip or Parquet file) raises `UnreadableFile`.

Row numbers: CSV counts data records (the header and empty lines are not rows, a quoted field
may span lines), JSON lines count lines (row = line number; `monitor.ingest.jsonlines`). A
CSV reject also names its line in the file.

Identifier, class and segment columns are read as text, exactly: `007` stays `007`, and a
JSON number id keeps every digit (`2**60 + 1` is never routed through a float). Columns the
model does not use are dropped while reading (all but the first, so rows are still counted),
so a record with a million keys costs nothing.
A text file is read up to its last newline while it may still be growing (`complete_only`):
a half-written last line waits for the next tick instead of going in truncated.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from monitor.config import Limits
from monitor.ingest.chunks import (
    BOM,
    CHUNK_ROWS,
    NUL_REASON,
    Chunk,
    ReadState,
    UnreadableFile,
    decode_row,
    first_line,
    raw_text,
    rejects_frame,
)
from monitor.ingest.jsonlines import JsonLinesReader
from monitor.ingest.validate import REJECT_COLUMNS
from monitor.registry import INPUT_FORMATS

SUFFIXES = tuple(suffix for entry in INPUT_FORMATS.entries() for suffix in entry.options["suffixes"])
BLOCK_BYTES = 16 << 20  # text is parsed in blocks of about this many bytes of whole lines
MAX_RECORD_LINES = 1_000  # a quoted CSV field may span lines, but not more than these
def file_format(path: Path) -> str:
    """The registered input format (monitor.registry.INPUT_FORMATS) of the file's suffix."""
    name = path.name.lower()
    for entry in INPUT_FORMATS.entries():
        if name.endswith(tuple(entry.options["suffixes"])):
            return entry.name
    raise UnreadableFile(
        f"{path}: unsupported file type (use {', '.join(SUFFIXES)})"
    )


def is_supported(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def read_chunks(path: Path, string_columns: Sequence[str], *, keep: Callable[[str], bool] | None = None,
                limits: Limits | None = None, complete_only: bool = False, state: ReadState | None = None,
                chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Yield the file's records in chunks. Raises UnreadableFile for a file that cannot be
    read at all; a bad row is a reject of its chunk. `keep(column)` says which columns to
    keep (default: all); `complete_only` leaves an unterminated last line of a plain text file
    unread (noted in `state.tail_held`)."""
    fmt = file_format(path)
    limits = limits or Limits()
    state = state if state is not None else ReadState()
    keep = keep or (lambda column: True)
    read = INPUT_FORMATS.load(fmt)
    try:
        yield from read(path, string_columns, keep, limits, complete_only=complete_only, state=state,
                        chunk_rows=chunk_rows)
    except UnreadableFile:
        raise
    except (ValueError, OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise UnreadableFile(f"{path}: cannot be parsed ({fmt}): {first_line(error)}") from error
    except Exception as error:  # pyarrow raises its own types
        raise UnreadableFile(f"{path}: cannot be parsed ({fmt}): {first_line(error)}") from error


def read_csv(path: Path, string_columns: Sequence[str], keep: Callable[[str], bool], limits: Limits, *,
             complete_only: bool, state: ReadState, chunk_rows: int) -> Iterator[Chunk]:
    with _open_text(path) as handle:
        blocks = _line_blocks(handle, complete_only and not _compressed(path), state)
        yield from CsvReader(path, string_columns, keep, limits).chunks(blocks)


def read_jsonl(path: Path, string_columns: Sequence[str], keep: Callable[[str], bool], limits: Limits, *,
               complete_only: bool, state: ReadState, chunk_rows: int) -> Iterator[Chunk]:
    with _open_text(path) as handle:
        blocks = _line_blocks(handle, complete_only and not _compressed(path), state)
        yield from JsonLinesReader(path, string_columns, keep, limits).chunks(blocks)


def read_parquet(path: Path, string_columns: Sequence[str], keep: Callable[[str], bool], limits: Limits, *,
                 complete_only: bool, state: ReadState, chunk_rows: int) -> Iterator[Chunk]:
    yield from _parquet_chunks(path, string_columns, keep, limits, chunk_rows)


def _compressed(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_text(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if _compressed(path) else path.open("rb")  # type: ignore[return-value]


def _line_blocks(handle: IO[bytes], complete_only: bool, state: ReadState) -> Iterator[bytes]:
    """The file's bytes in blocks that end at a line end (the last block may not, unless
    `complete_only`, which holds back an unterminated tail and notes it in `state`)."""
    rest = b""
    while True:
        data = handle.read(BLOCK_BYTES)
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1:]
        yield data[: cut + 1]
    if rest:
        if complete_only:
            state.tail_held = True
        else:
            yield rest


class CsvReader:
    """CSV in blocks: pandas' C parser reads a block as it is; a block it refuses (a row with
    extra fields, an unclosed quote, a byte that is not UTF-8) is split into records here,
    the bad records are rejected one by one and pandas reads the good ones, so every column
    gets exactly the types a clean file would give it."""

    def __init__(self, path: Path, string_columns: Sequence[str], keep: Callable[[str], bool],
                 limits: Limits) -> None:
        self.path, self.string_columns, self.keep, self.limits = path, list(string_columns), keep, limits
        self.header: bytes | None = None
        self.columns: list[str] = []
        self.rows = 0  # records numbered so far
        self.lines = 0  # physical lines before the current block

    def chunks(self, blocks: Iterator[bytes]) -> Iterator[Chunk]:
        for block in blocks:
            if self.header is None:
                block = self._take_header(block)
                if self.header is None:
                    continue
            if block.strip():
                yield self._block(block)
            self.lines += block.count(b"\n")

    def _take_header(self, block: bytes) -> bytes:
        block = block.removeprefix(BOM)
        lines = block.split(b"\n")
        for index, line in enumerate(lines):
            if line.strip(b"\r"):
                if index == len(lines) - 1 and not block.endswith(b"\n"):
                    self.header = line  # a header without a newline: nothing follows
                    self._parse_header(line)
                    return b""
                self.header = line
                self._parse_header(line)
                self.lines = index + 1
                return b"\n".join(lines[index + 1:])
        return b""

    def _parse_header(self, line: bytes) -> None:
        text, problem = decode_row(line)
        if text is None:
            raise UnreadableFile(f"{self.path}: header {problem}")
        try:
            columns = next(csv.reader([text.rstrip("\r")]))
        except csv.Error as error:
            raise UnreadableFile(f"{self.path}: header cannot be parsed: {error}") from None
        if len(columns) > self.limits.max_fields:
            raise UnreadableFile(f"{self.path}: header has {len(columns):,} columns "
                                 f"(limit {self.limits.max_fields:,}: limits.max_fields)")
        self.columns = columns

    def _read(self, data: bytes) -> pd.DataFrame:
        assert self.header is not None
        kept = [c for c in self.columns if self.keep(c)]
        dtypes = {c: "string" for c in self.string_columns if c in kept}
        # the first column is always kept: with no column at all pandas would count no rows,
        # and rows without a single column the model uses must be rejected, not vanish
        first = self.columns[0] if self.columns else None
        return pd.read_csv(io.BytesIO(self.header + b"\n" + data), dtype=dtypes, keep_default_na=False,
                           na_values=[""], usecols=lambda c: self.keep(c) or c == first, encoding="utf-8")

    def _block(self, block: bytes) -> Chunk:
        if b"\x00" in block:  # no database stores a NUL in text: such rows go one by one
            return self._careful(block)
        try:
            frame = self._read(block)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, csv.Error):
            return self._careful(block)
        frame["_row"] = np.arange(self.rows + 1, self.rows + len(frame) + 1)
        self.rows += len(frame)
        return Chunk(frame)

    def _careful(self, block: bytes) -> Chunk:
        """Record by record: reject what cannot be parsed, let pandas read the rest."""
        good: list[bytes] = []
        good_rows: list[int] = []
        bad_rows: list[int] = []
        reasons: list[str] = []
        raws: list[str] = []
        for raw, line_offset in _csv_records(block, self.limits.max_record_bytes):
            self.rows += 1
            problem = self._check(raw)
            if problem is None:
                good.append(raw)
                good_rows.append(self.rows)
            else:
                bad_rows.append(self.rows)
                reasons.append(f"{problem} (line {self.lines + line_offset + 1} of the file)")
                raws.append(raw_text(raw))
        try:
            frame = self._read(b"\n".join(good) + b"\n") if good else self._empty()
            assert len(frame) == len(good)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, AssertionError):
            # pandas still refuses (or counts otherwise): one record at a time, slowly
            frame, kept = self._one_by_one(good)
            for index, (row, raw) in enumerate(zip(good_rows, good)):
                if index not in kept:
                    bad_rows.append(row)
                    reasons.append("cannot be parsed as a CSV row")
                    raws.append(raw_text(raw))
            good_rows = [row for index, row in enumerate(good_rows) if index in kept]
        frame["_row"] = np.asarray(good_rows, dtype=np.int64)
        return Chunk(frame.reset_index(drop=True), rejects_frame(bad_rows, reasons, raws))

    def _empty(self) -> pd.DataFrame:
        return pd.DataFrame(columns=[c for i, c in enumerate(self.columns) if self.keep(c) or i == 0])

    def _one_by_one(self, good: list[bytes]) -> tuple[pd.DataFrame, set[int]]:
        """The records pandas reads alone (one row each), and their indices in `good`."""
        readable = []
        for index, raw in enumerate(good):
            try:
                if len(self._read(raw + b"\n")) == 1:
                    readable.append(index)
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
                continue
        frame = self._read(b"\n".join(good[i] for i in readable) + b"\n") if readable else self._empty()
        return frame, set(readable)

    def _check(self, raw: bytes) -> str | None:
        if len(raw) > self.limits.max_record_bytes:
            return f"row of {len(raw):,} bytes (limit {self.limits.max_record_bytes:,}: limits.max_record_bytes)"
        text, problem = decode_row(raw)
        if text is None:
            return problem
        if "\x00" in text:
            return NUL_REASON
        try:
            parsed = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as error:
            return f"cannot be parsed as CSV: {error}"
        if len(parsed) != 1:
            return "unclosed quote" if text.count('"') % 2 else "cannot be parsed as one CSV row"
        n_fields = len(parsed[0])
        if n_fields > len(self.columns):
            return f"row has {n_fields:,} fields, the header has {len(self.columns):,}"
        if text.count('"') % 2:
            return "unclosed quote"
        return None


def _csv_records(block: bytes, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Split a block into CSV records (bytes without the final newline, line offset): a line
    with an odd number of quotes opens a quoted field that the following lines may close; when
    none does within MAX_RECORD_LINES lines or `max_bytes`, the line is a record by itself
    (rejected as an unclosed quote) and the next line starts afresh. Empty lines are no
    records, as for pandas."""
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip(b"\r"):
            index += 1
            continue
        if line.count(b'"') % 2 == 0:
            yield line.rstrip(b"\r"), index
            index += 1
            continue
        quotes, size, end = line.count(b'"'), len(line), index + 1
        while end < len(lines) and end - index <= MAX_RECORD_LINES and size <= max_bytes:
            quotes += lines[end].count(b'"')
            size += len(lines[end]) + 1
            end += 1
            if quotes % 2 == 0:
                break
        if quotes % 2 == 0:
            yield b"\n".join(lines[index:end]).rstrip(b"\r"), index
            index = end
        else:
            yield line.rstrip(b"\r"), index
            index += 1


def _parquet_chunks(path: Path, string_columns: Sequence[str], keep: Callable[[str], bool],
                    limits: Limits, chunk_rows: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    if len(names) > limits.max_fields:
        raise UnreadableFile(f"{path}: {len(names):,} columns (limit {limits.max_fields:,}: limits.max_fields)")
    columns = [name for i, name in enumerate(names) if keep(name) or i == 0]  # never none: rows count
    offset = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
        chunk = batch.to_pandas()
        for column in string_columns:
            if column in chunk.columns:
                chunk[column] = _as_string(chunk[column])
        chunk["_row"] = np.arange(offset + 1, offset + len(chunk) + 1)
        offset += len(chunk)
        yield Chunk(chunk)


def _as_string(values: pd.Series) -> pd.Series:
    """Values as strings, missing kept missing; integral floats lose the '.0'."""
    if pd.api.types.is_float_dtype(values):
        as_int = values.dropna()
        if (as_int == as_int.round()).all() and (as_int.abs() < 2**53).all():
            return values.astype("Int64").astype("string")
    return values.astype("string")


def read_all(path: Path, string_columns: Sequence[str], **options: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects) of a whole file."""
    frames, rejects = [], []
    for chunk in read_chunks(path, string_columns, **options):  # type: ignore[arg-type]
        frames.append(chunk.frame)
        if len(chunk.rejects):
            rejects.append(chunk.rejects)
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return records, (pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(columns=REJECT_COLUMNS))

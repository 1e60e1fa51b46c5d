"""Readers for prediction and label files: CSV, JSON lines, Parquet, gzip (docs/contract.md §1).

A reader yields `Chunk`s: a DataFrame of raw records with a `_row` column (the row number in
the file, for error messages) and the rows it could not parse, as rejects (`REJECT_COLUMNS`).
One malformed row never fails a file (docs/design.md principle 8): the reader rejects that row by
itself, with its row number, and the rest goes in. Only a file that cannot be read at all
(no header, an unsupported type, a broken gzip or Parquet file) raises `UnreadableFile`.

Row numbers: CSV counts data records (the header and empty lines are not rows, a quoted field
may span lines; `monitor.ingest.csvtext`), JSON lines count lines (row = line number;
`monitor.ingest.jsonlines`). A CSV reject also names its line in the file.

A text file is read in blocks of whole lines, and a line longer than limits.max_record_bytes
is never held: the reader skips to its newline and rejects it as one record, keeping its first
bytes as the raw text, so a small gzip file holding a line of gigabytes costs a few blocks of
memory. A CSV row may end with empty fields past the header's (`a,b,c,`, a common export
style): they are dropped; a row with a field there that is not empty is rejected.

Identifier, class and segment columns are read as text, exactly: `007` stays `007`, and a
JSON number id keeps every digit (`2**60 + 1` is never routed through a float). Columns the
model does not use are dropped while reading (all but the first, so rows are still counted),
so a record with a million keys costs nothing.
A text file is read up to its last newline while it may still be growing (`complete_only`):
a half-written last line waits for the next tick instead of going in truncated.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import pandas as pd

from monitor.config import Limits
from monitor.ingest.chunks import (
    CHUNK_ROWS,
    RAW_CHARS,
    Chunk,
    LongLine,
    ReadState,
    UnreadableFile,
    first_line,
)
from monitor.ingest.csvtext import CsvReader
from monitor.ingest.jsonlines import JsonLinesReader
from monitor.ingest.parquet import parquet_chunks
from monitor.ingest.validate import REJECT_COLUMNS
from monitor.registry import INPUT_FORMATS

SUFFIXES = tuple(suffix for entry in INPUT_FORMATS.entries() for suffix in entry.options["suffixes"])
BLOCK_BYTES = 16 << 20  # text is parsed in blocks of about this many bytes of whole lines


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
        blocks = _line_blocks(handle, complete_only and not _compressed(path), state, limits.max_record_bytes)
        yield from CsvReader(path, string_columns, keep, limits).chunks(blocks)


def read_jsonl(path: Path, string_columns: Sequence[str], keep: Callable[[str], bool], limits: Limits, *,
               complete_only: bool, state: ReadState, chunk_rows: int) -> Iterator[Chunk]:
    with _open_text(path) as handle:
        blocks = _line_blocks(handle, complete_only and not _compressed(path), state, limits.max_record_bytes)
        yield from JsonLinesReader(path, string_columns, keep, limits).chunks(blocks)


def read_parquet(path: Path, string_columns: Sequence[str], keep: Callable[[str], bool], limits: Limits, *,
                 complete_only: bool, state: ReadState, chunk_rows: int) -> Iterator[Chunk]:
    yield from parquet_chunks(path, string_columns, keep, limits, chunk_rows)


def _compressed(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_text(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if _compressed(path) else path.open("rb")  # type: ignore[return-value]


def _line_blocks(handle: IO[bytes], complete_only: bool, state: ReadState,
                 max_line_bytes: int) -> Iterator[bytes | LongLine]:
    """The file's bytes in blocks that end at a line end (the last block may not, unless
    `complete_only`, which holds back an unterminated tail and notes it in `state`). A line
    longer than `max_line_bytes` is not kept: it is read on to its newline and a `LongLine` (its
    size and first bytes) stands in its place, so memory stays within a few blocks whatever the
    file holds (a gzip file of a few MB can hold a line of gigabytes). A file whose first block
    has no LF but a CR (Excel's "CSV (Macintosh)") has its CRs read as LFs; otherwise it would
    be one unterminated line, held back for ever."""
    rest = b""  # the start of a line that the next read ends, at most `max_line_bytes`
    skipped: LongLine | None = None  # a long line whose newline is still ahead
    cr_only: bool | None = None  # lines end with a lone CR (classic Mac exports): decided once
    while data := handle.read(BLOCK_BYTES):
        if cr_only is None:
            cr_only = b"\n" not in data and b"\r" in data
        if cr_only:  # one byte for one: offsets and sizes stay those of the file
            data = data.replace(b"\r", b"\n")
        if skipped is not None:
            newline = data.find(b"\n")
            if newline < 0:
                skipped = LongLine(skipped.size + len(data), skipped.head)
                continue
            yield LongLine(skipped.size + newline, skipped.head)
            skipped, data = None, data[newline + 1:]
        data = rest + data
        stop = data.rfind(b"\n") + 1  # whole lines end here
        start = 0
        while (long_at := _long_line_at(data, start, stop, max_line_bytes)) >= 0:
            if long_at > start:
                yield data[start:long_at]
            newline = data.find(b"\n", long_at)
            yield LongLine(newline - long_at, data[long_at:long_at + RAW_CHARS])
            start = newline + 1
        if stop > start:
            yield data if start == 0 and stop == len(data) else data[start:stop]
        rest = data[stop:]
        if len(rest) > max_line_bytes:
            skipped, rest = LongLine(len(rest), rest[:RAW_CHARS]), b""
    tail: bytes | LongLine | None = skipped if skipped is not None else (rest or None)
    if tail is not None:
        if complete_only:
            state.tail_held = True
        else:
            yield tail


def _long_line_at(data: bytes, start: int, stop: int, max_line_bytes: int) -> int:
    """Where the first line of `data[start:stop]` (whole lines) longer than `max_line_bytes`
    starts, or -1. Each step finds the last newline within reach of a line's start, so the
    search costs about two passes over the bytes, not one call per line."""
    while stop - start > max_line_bytes:
        newline = data.rfind(b"\n", start, start + max_line_bytes + 1)
        if newline < 0:
            return start
        start = newline + 1
    return -1


def read_all(path: Path, string_columns: Sequence[str], **options: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects) of a whole file."""
    frames, rejects = [], []
    for chunk in read_chunks(path, string_columns, **options):  # type: ignore[arg-type]
        frames.append(chunk.frame)
        if len(chunk.rejects):
            rejects.append(chunk.rejects)
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return records, (pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(columns=REJECT_COLUMNS))

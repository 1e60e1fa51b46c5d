"""CSV in blocks (`monitor.ingest.readers.read_csv`): pandas' C parser reads a block of whole
records as it is, and a block it refuses, or that holds a record that must be looked at alone,
is split into records here: the bad ones are rejected one by one and pandas reads the good ones,
so every column gets exactly the types a clean file would give it. Both paths give a record the
same fate:

- A row with more fields than the header is rejected ("row has 5 fields, the header has 4"),
  unless every field past the header's last is empty and the row has at most
  limits.max_fields fields (one empty field more is always allowed): a delimiter at the end of
  every row (`a,b,c,`) is a common export style, and such a row is read as if it were not
  there. pandas never takes a column for the index (`index_col=False`), so a longer first row
  cannot shift the columns of a block.
- A quoted field may span lines, but a record of more than MAX_RECORD_LINES lines or of more
  than limits.max_record_bytes bytes is not one: its first line is rejected by itself
  ("unclosed quote") and the next line starts a record again, so a stray `"` cannot swallow the
  rows after it. A record cut by the end of a block is completed from the next block.
- A line longer than limits.max_record_bytes reaches the reader as a `LongLine` (its bytes were
  never kept): a rejected record.
- A header whose first column has no name (`,id,ts`) still counts its rows: they are rejected
  for the fields they miss, as with any header without the model's columns.

Quotes are read as pandas reads them (`monitor.ingest.csvrecords`, which also tells records
apart for the record-by-record read).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.config import Limits
from monitor.ingest.chunks import (
    BOM,
    NUL_REASON,
    Chunk,
    LongLine,
    UnreadableFile,
    decode_row,
    raw_text,
    rejects_frame,
)
from monitor.ingest.csvrecords import (
    MAX_RECORD_LINES,
    csv_records,
    ends_inside,
    fields_of,
    open_record,
    record_spans,
    well_placed,
    without_empty_fields,
)

EXTRA = "\x00extra"  # the name pandas gives the field after the header's last (no header has it)
_CONTENT = re.compile(rb"[^\r\n]")  # a line holding more than a line end is not blank
_ONLY_COMMAS_AND_NEWLINES = bytes(b for b in range(256) if b not in b",\n")


class CsvReader:
    """One CSV file's records in chunks, from blocks of whole lines (see the module's docstring)."""

    def __init__(self, path: Path, string_columns: Sequence[str], keep: Callable[[str], bool],
                 limits: Limits) -> None:
        self.path, self.string_columns, self.keep, self.limits = path, list(string_columns), keep, limits
        # the csv module refuses a field of more than 128 kB, which pandas reads: a record that
        # pandas reads must pass `_check` as well (the limit is the whole process's; only raised)
        csv.field_size_limit(max(csv.field_size_limit(), limits.max_record_bytes))
        self.header: bytes | None = None
        self.columns: list[str] = []  # as the header spells them
        self.names: list[str] = []  # as pandas names them: "Unnamed: 0" for "", "a.1" for a second "a"
        self.kept: list[int] = []  # positions of the kept columns; the first is always kept, so
        # a row without a single column the model uses is still counted (and rejected)
        self.kept_names: set[str] = set()
        self.narrow = False  # only the kept columns are parsed (see `_parse_header`)
        self.dtypes: dict[str, str] = {}
        self.rows = 0  # records numbered so far
        self.lines = 0  # physical lines before the current block

    def chunks(self, blocks: Iterator[bytes | LongLine]) -> Iterator[Chunk]:
        carry = b""  # the start of a quoted record that the next block completes
        for block in blocks:
            if isinstance(block, LongLine):
                if self.header is None:
                    raise UnreadableFile(f"{self.path}: header {block.reason(self.limits.max_record_bytes)}")
                if carry:
                    yield from self._records(carry, last=True)
                    carry = b""
                yield self._long_line(block)
                continue
            if self.header is None:
                block = self._take_header(block)
                if self.header is None:
                    continue
            carry = yield from self._records(carry + block, last=False)
        if carry:
            yield from self._records(carry, last=True)

    def _records(self, block: bytes, last: bool) -> Generator[Chunk, None, bytes]:
        """The chunk of a block's records, if it holds any. Returns the start of a quoted
        record that the block ends inside (pandas refuses the block), to be completed by the
        next block (none when `last`)."""
        newlines = block.count(b"\n")
        frame, carry = self._fast(block, newlines), b""
        if frame is None and not last:
            block, carry = open_record(block, self.limits.max_record_bytes)
            if carry:
                newlines = block.count(b"\n")
                frame = self._fast(block, newlines)
        if _CONTENT.search(block):
            if frame is None:
                yield self._careful(block)
            else:
                frame["_row"] = np.arange(self.rows + 1, self.rows + len(frame) + 1)
                self.rows += len(frame)
                yield Chunk(frame)
        self.lines += newlines
        return carry

    def _take_header(self, block: bytes) -> bytes:
        """Parse the first line that is not blank as the header; what follows it."""
        block = block.removeprefix(BOM)
        found = _CONTENT.search(block)
        if found is None:
            self.lines += block.count(b"\n")
            return b""
        start = block.rfind(b"\n", 0, found.start()) + 1
        end = block.find(b"\n", start)
        self.header = block[start:] if end < 0 else block[start:end]  # without a newline, nothing follows
        self._parse_header(self.header)
        if end < 0:
            return b""
        self.lines += block.count(b"\n", 0, end) + 1
        return block[end + 1:]

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
        self.names = _pandas_names(columns)
        self.kept = [i for i, column in enumerate(columns) if i == 0 or self.keep(column)]
        self.kept_names = {self.names[i] for i in self.kept}
        self.dtypes = {c: "string" for c in self.string_columns if c in self.kept_names}
        # pandas reads only the kept columns when they are at most half: then a block without
        # quotes is first checked for a line with more fields than the header (about a sixth of
        # pandas' time); with more kept columns, reading every column costs less than that
        self.narrow = len(self.kept) * 2 <= len(columns)

    def _fast(self, block: bytes, newlines: int) -> pd.DataFrame | None:
        """The block read by pandas in one go; None when pandas refuses it or a record must be
        looked at alone: a NUL (no database stores one in text), a row longer than the header
        with a field that is not empty, a quoted record of more than MAX_RECORD_LINES lines or
        limits.max_record_bytes (pandas would take those in)."""
        if not _CONTENT.search(block) or b"\x00" in block:
            return None
        try:
            return self._read_block(block, newlines)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, csv.Error):
            return None

    def _read_block(self, block: bytes, newlines: int) -> pd.DataFrame | None:
        quoted = b'"' in block
        if self.narrow and not quoted and (
                b"," * len(self.columns) not in block.translate(None, _ONLY_COMMAS_AND_NEWLINES)):
            frame = self._read_kept(block)  # no line has more fields than the header
        else:
            if self._first_row_longer(block):  # pandas would drop its last fields, with a warning
                return None
            frame = self._read_every(block)
            if frame[EXTRA].count():  # a field past the header's last, not empty
                return None
            self._drop_unkept(frame)
        if quoted and len(frame) < newlines + (not block.endswith(b"\n")) and (
                not self._records_fit(block, len(frame))):
            return None
        return frame

    def _read_every(self, data: bytes) -> pd.DataFrame:
        """Every column, and EXTRA: the field after the header's last (of a longer row). Rows
        with two fields more than the header raise (pandas checks every row but the first)."""
        return pd.read_csv(io.BytesIO(data), header=None, names=[*self.names, EXTRA], index_col=False,
                           dtype=self.dtypes, keep_default_na=False, na_values=[""], encoding="utf-8")

    def _read_kept(self, data: bytes) -> pd.DataFrame:
        """The kept columns of records no longer than the header (pandas would drop more fields
        without a word; the header's line sets how many fields a row has)."""
        assert self.header is not None
        return pd.read_csv(io.BytesIO(self.header + b"\n" + data), header=0, names=self.names,
                           usecols=self.kept_names.__contains__, index_col=False, dtype=self.dtypes,
                           keep_default_na=False, na_values=[""], encoding="utf-8")

    def _read_records(self, data: bytes) -> pd.DataFrame:
        """Records `_check` accepted (none longer than the header)."""
        if self.narrow:
            return self._read_kept(data)
        frame = self._read_every(data)
        self._drop_unkept(frame)
        return frame

    def _drop_unkept(self, frame: pd.DataFrame) -> None:
        """Drop EXTRA and the columns the model does not use, in place (a copy of the kept
        columns would cost more than reading a small file)."""
        for name in [EXTRA, *(name for name in self.names if name not in self.kept_names)]:
            del frame[name]

    def _first_row_longer(self, block: bytes) -> bool:
        """Whether the block's first record has two fields or more past the header's last, or
        may have: a quoted field of it runs past limits.max_record_bytes (or MAX_RECORD_LINES),
        or it is not UTF-8. pandas checks the field count of every row but the first."""
        found = _CONTENT.search(block)
        if found is None:
            return False
        start = block.rfind(b"\n", 0, found.start()) + 1
        end = block.find(b"\n", start)
        line = block[start:] if end < 0 else block[start:end]
        if b'"' not in line:
            return line.count(b",") > len(self.columns)
        if not ends_inside(line, inside=False):
            fields = fields_of(line.rstrip(b"\r"))
            return fields is None or len(fields) > len(self.columns) + 1
        stop = start + self.limits.max_record_bytes + 1
        lines = block[start:stop].split(b"\n")
        first, last, _ = next(record_spans(lines, self.limits.max_record_bytes))
        if (last == len(lines) - 1 and stop < len(block)) or (
                last == first and ends_inside(lines[first], inside=False)):
            return True  # the record runs on past what is looked at
        fields = fields_of(b"\n".join(lines[first:last + 1]).rstrip(b"\r"))
        return fields is None or len(fields) > len(self.columns) + 1

    def _records_fit(self, block: bytes, rows: int) -> bool:
        """Whether the block's records are as many as pandas read and each within
        MAX_RECORD_LINES lines and limits.max_record_bytes. Told apart by quote parity (a
        newline ends a record after an even number of quotes) when every quote is where a
        well-formed file has one, so that pandas reads the same records; else as
        `csv_records` tells them apart, line by line."""
        data = np.frombuffer(block, dtype=np.uint8)
        quotes = np.flatnonzero(data == ord('"'))
        if not block.endswith(b"\n") and len(quotes) % 2:
            return False  # the last record never closes its quote
        if not well_placed(data, quotes):
            lines = block.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            return sum(1 for _ in record_spans(lines, self.limits.max_record_bytes)) == rows
        newlines = np.flatnonzero(data == ord("\n"))
        end_lines = np.flatnonzero((np.searchsorted(quotes, newlines) & 1) == 0)
        ends = newlines[end_lines]
        if not block.endswith(b"\n"):
            ends = np.append(ends, len(block))
            end_lines = np.append(end_lines, len(newlines))
        if len(ends) == 0:
            return False
        starts = np.concatenate(([0], ends[:-1] + 1))
        sizes = ends - starts
        blank = sizes == 0
        single = np.flatnonzero(sizes == 1)
        blank[single] = data[starts[single]] == ord("\r")
        spans = np.diff(end_lines, prepend=-1)
        return (int(np.count_nonzero(~blank)) == rows and int(sizes.max()) <= self.limits.max_record_bytes
                and int(spans.max()) <= MAX_RECORD_LINES)

    def _long_line(self, line: LongLine) -> Chunk:
        self.rows += 1
        self.lines += 1
        reason = f"{line.reason(self.limits.max_record_bytes)} (line {self.lines} of the file)"
        frame = self._empty()
        frame["_row"] = np.empty(0, dtype=np.int64)
        return Chunk(frame, rejects_frame([self.rows], [reason], [raw_text(line.head)]))

    def _careful(self, block: bytes) -> Chunk:
        """Record by record: reject what cannot be parsed, let pandas read the rest."""
        good: list[bytes] = []
        good_rows: list[int] = []
        bad_rows: list[int] = []
        reasons: list[str] = []
        raws: list[str] = []
        for raw, line_offset in csv_records(block, self.limits.max_record_bytes):
            self.rows += 1
            problem, record = self._check(raw)
            if problem is None:
                good.append(record)
                good_rows.append(self.rows)
            else:
                bad_rows.append(self.rows)
                reasons.append(f"{problem} (line {self.lines + line_offset + 1} of the file)")
                raws.append(raw_text(raw))
        try:
            frame = self._read_records(b"\n".join(good) + b"\n") if good else self._empty()
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
        frame = frame.reset_index(drop=True)
        frame["_row"] = np.asarray(good_rows, dtype=np.int64)
        return Chunk(frame, rejects_frame(bad_rows, reasons, raws))

    def _empty(self) -> pd.DataFrame:
        return pd.DataFrame(columns=[self.names[i] for i in self.kept])

    def _one_by_one(self, good: list[bytes]) -> tuple[pd.DataFrame, set[int]]:
        """The records pandas reads alone (one row each), and their indices in `good`."""
        readable = []
        for index, raw in enumerate(good):
            try:
                if len(self._read_records(raw + b"\n")) == 1:
                    readable.append(index)
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
                continue
        frame = self._read_records(b"\n".join(good[i] for i in readable) + b"\n") if readable else self._empty()
        return frame, set(readable)

    def _check(self, raw: bytes) -> tuple[str | None, bytes]:
        """(None, the record without its empty fields past the header's last) or (why it is
        rejected, the record)."""
        if len(raw) > self.limits.max_record_bytes:
            return f"row of {len(raw):,} bytes (limit {self.limits.max_record_bytes:,}: limits.max_record_bytes)", raw
        text, problem = decode_row(raw)
        if text is None:
            return problem, raw
        if "\x00" in text:
            return NUL_REASON, raw
        try:
            parsed = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as error:
            return f"cannot be parsed as CSV: {error}", raw
        if ends_inside(raw, inside=False):  # csv takes the end of the text for the closing quote
            return "unclosed quote", raw
        if len(parsed) != 1:
            return "cannot be parsed as one CSV row", raw
        fields, width = parsed[0], len(self.columns)
        if len(fields) > width:
            trimmed = None
            if not any(fields[width:]) and len(fields) <= max(self.limits.max_fields, width + 1):
                trimmed = without_empty_fields(raw, len(fields) - width)
            if trimmed is None or fields_of(trimmed) != fields[:width]:
                return f"row has {len(fields):,} fields, the header has {width:,}", raw
            raw = trimmed
        return None, raw


def _pandas_names(columns: list[str]) -> list[str]:
    """The header's names as pandas gives them to a header line holding `columns`: as they
    are when none is empty or repeated (pandas' own reading of the line costs a millisecond)."""
    if all(columns) and len(set(columns)) == len(columns):
        return list(columns)
    line = io.StringIO()
    csv.writer(line).writerow(columns)
    return [str(name) for name in pd.read_csv(io.StringIO(line.getvalue()), nrows=0, index_col=False).columns]

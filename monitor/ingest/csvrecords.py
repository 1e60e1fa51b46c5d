"""How CSV text splits into records, as pandas (and Python's csv module) read quotes: a quote
opens a quoted field only at the start of a field, `""` inside one is a quote, after the
closing quote the field runs on to the next delimiter, and a quote inside an unquoted field is
a character like any other. A quoted field may span lines, but a record not more than
MAX_RECORD_LINES lines or the caller's byte limit: past those, the line holding the opening
quote is a record by itself and the next line starts afresh (`record_spans`).
Pure functions over bytes, for `monitor.ingest.csvtext`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from itertools import accumulate

import numpy as np

MAX_RECORD_LINES = 1_000  # a quoted CSV field may span lines, but a record not more than these
_BEFORE_OPENING = np.frombuffer(b',\n"', dtype=np.uint8)  # what may precede a field's opening quote
_AFTER_CLOSING = np.frombuffer(b',\n\r"', dtype=np.uint8)  # what may follow its closing quote


def ends_inside(line: bytes, inside: bool) -> bool:
    """Whether a line ends inside a quoted field, read from inside one or from the start of a
    record (see the module's docstring for the rules)."""
    position = 0
    if not inside:
        if not line.startswith(b'"'):
            opening = line.find(b',"')
            if opening < 0:
                return False
            position = opening + 1
        position += 1  # past the opening quote
    while True:
        quote = line.find(b'"', position)
        if quote < 0:
            return True
        if line.startswith(b'"', quote + 1):  # "" is a quote
            position = quote + 2
            continue
        opening = line.find(b',"', quote + 1)  # the field runs on to the next delimiter
        if opening < 0:
            return False
        position = opening + 2


def record_spans(lines: list[bytes], max_bytes: int) -> Iterator[tuple[int, int, bool]]:
    """(first line, last line, cut) of each record: a line that ends inside a quoted field
    runs on to the line that closes it; when none does within MAX_RECORD_LINES lines or
    `max_bytes`, the line is a record by itself (rejected as an unclosed quote) and the next
    line starts afresh; `cut` says that no line closes it because the lines ran out first.
    Blank lines are no records. Linear in the lines, whatever their quotes."""
    closing: list[int] = []  # for each line, the first line from it on that closes a field
    ends: list[int] = []  # bytes up to the end of each line
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip(b"\r"):
            index += 1
            continue
        if b'"' not in line or not ends_inside(line, inside=False):
            yield index, index, False
            index += 1
            continue
        if not closing:
            closing, ends = _closing_lines(lines), list(accumulate(len(each) + 1 for each in lines))
        close = closing[index + 1] if index + 1 < len(lines) else len(lines)
        last = min(close, len(lines) - 1)
        fits = last - index < MAX_RECORD_LINES and ends[last] - ends[index] + len(line) <= max_bytes
        if close < len(lines) and fits:
            yield index, close, False
            index = close + 1
        else:
            yield index, index, close == len(lines) and fits
            index += 1


def _closing_lines(lines: list[bytes]) -> list[int]:
    """For each line, the first line from it on that, read from inside a quoted field, ends
    outside one (len(lines): none)."""
    closing = [len(lines)] * len(lines)
    following = len(lines)
    for index in range(len(lines) - 1, -1, -1):
        if b'"' in lines[index] and not ends_inside(lines[index], inside=True):
            following = index
        closing[index] = following
    return closing


def csv_records(block: bytes, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Split a block into CSV records (bytes without the final newline, line offset), as
    `record_spans` tells them apart. Empty lines are no records, as for pandas."""
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for first, last, _ in record_spans(lines, max_bytes):
        yield b"\n".join(lines[first:last + 1]).rstrip(b"\r"), first


def open_record(block: bytes, max_bytes: int) -> tuple[bytes, bytes]:
    """(the block's whole records, the start of a quoted record that the block ends inside
    and the next block may close: its field runs to the block's end within MAX_RECORD_LINES
    lines and `max_bytes`). Only for a block pandas refused: it walks the records as
    `csv_records` does."""
    if not block.endswith(b"\n") or b'"' not in block:
        return block, b""
    lines = block[:-1].split(b"\n")
    for first, _, cut in record_spans(lines, max_bytes):
        if cut:
            offset = sum(map(len, lines[:first])) + first
            return block[:offset], block[offset:]
    return block, b""


def well_placed(data: np.ndarray, quotes: np.ndarray) -> bool:
    """Whether quote parity reads the quotes as pandas does: each quote that parity takes for
    an opening one starts a field (or follows a quote: `""`), each closing one ends a field
    (or precedes a quote). A quote inside an unquoted field (`12"`) fails this."""
    opening, closing = quotes[0::2], quotes[1::2]
    before = data[opening[opening > 0] - 1]
    after = data[closing[closing < len(data) - 1] + 1]
    return bool(np.isin(before, _BEFORE_OPENING).all() and np.isin(after, _AFTER_CLOSING).all())


def fields_of(record: bytes) -> list[str] | None:
    """The fields of one CSV record; None when it is not UTF-8 or not one record."""
    try:
        rows = list(csv.reader(io.StringIO(record.decode("utf-8"), newline="")))
    except (csv.Error, UnicodeDecodeError):
        return None
    return rows[0] if len(rows) == 1 else None


def without_empty_fields(record: bytes, count: int) -> bytes | None:
    """The record without its last `count` fields, each empty (`` or `""`); None if it does not
    end so."""
    for _ in range(count):
        record = record.removesuffix(b'""')
        if not record.endswith(b","):
            return None
        record = record[:-1]
    return record

"""JSON lines: a line that is not a JSON object, is not UTF-8 or is too large is rejected by
itself; row = line number. A block of plain lines is parsed with orjson, any other block
line by line with Python's json (exact integers). `as_text`
turns a JSON value into the exact text of an id, class or segment value, for files and for
request bodies alike (`monitor.api.bodies`).

A kept field holding an object or array is rejected with the row, naming the field, as the
HTTP API rejects it (`monitor.ingest.records.check_record`); so is an infinite number
(`Infinity`, or `1e400`, beyond a double) where an id, class, version or segment value is
expected (NaN stays a missing value). Each record keeps its line (column `_raw`): a row
rejected later (a missing field, an unknown class) shows the line as written, not only the
fields kept."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson
import pandas as pd

from monitor.config import Limits
from monitor.ingest.chunks import (
    BOM,
    CHUNK_ROWS,
    NOT_FINITE_REASON,
    NUL_REASON,
    RAW_CHARS,
    ROW_FIELD,
    SURROGATE_REASON,
    Chunk,
    LongLine,
    decode_row,
    first_line,
    raw_text,
    rejects_frame,
)
from monitor.ingest.validate import RAW_COLUMN

NESTED_REASON = "nested JSON (object or array) where a single value is expected"  # as the HTTP API's


class Problem(NamedTuple):
    """Why a JSON record is rejected, and the field at fault (`ROW_FIELD`: the whole row)."""

    reason: str
    field: str = ROW_FIELD


class JsonLinesReader:
    """JSON lines: a line that is not a JSON object, is not UTF-8 or is too large is rejected
    by itself; row = line number (see the module's docstring)."""

    def __init__(self, path: Path, string_columns: Sequence[str], keep: Callable[[str], bool],
                 limits: Limits) -> None:
        self.path, self.keep, self.limits = path, keep, limits
        self.string_columns = set(string_columns)
        self.line = 0

    def chunks(self, blocks: Iterator[bytes | LongLine]) -> Iterator[Chunk]:
        for block in blocks:
            if isinstance(block, LongLine):  # a line too long to keep: rejected unread
                self.line += 1
                frame = pd.DataFrame({"_row": np.empty(0, dtype=np.int64)})
                yield Chunk(frame, rejects_frame([self.line], [block.reason(self.limits.max_record_bytes)],
                                                 [raw_text(block.head)]))
                continue
            if self.line == 0:
                block = block.removeprefix(BOM)
            lines = block.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            for start in range(0, len(lines), CHUNK_ROWS):
                yield self._lines(lines[start:start + CHUNK_ROWS])

    def _lines(self, lines: list[bytes]) -> Chunk:
        fast = self._plain_lines(lines)
        if fast is not None:
            return fast
        records: list[dict] = []
        rows: list[int] = []
        texts: list[bytes] = []
        bad_rows: list[int] = []
        problems: list[Problem] = []
        raws: list[str] = []
        for raw in lines:
            self.line += 1
            if not raw.strip():
                continue
            record = self._record(raw)
            if isinstance(record, Problem):
                bad_rows.append(self.line)
                problems.append(record)
                raws.append(raw_text(raw))
            else:
                records.append(record)
                rows.append(self.line)
                texts.append(raw)
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        frame[RAW_COLUMN] = _objects(texts)
        frame["_row"] = np.asarray(rows, dtype=np.int64)
        return Chunk(frame, rejects_frame(bad_rows, [p.reason for p in problems], raws,
                                          [p.field for p in problems]))

    def _plain_lines(self, lines: list[bytes]) -> Chunk | None:
        """`_lines` of the usual block (every line a small JSON object of plain values, UTF-8,
        no escaped code point, no NaN) in one pass: orjson over the lines,
        one DataFrame of the whole records, then only the kept columns; text columns that are
        not all text are converted as `project` does. None when the block is anything else
        (the line-by-line path then rejects what must be rejected); the frame equals the one
        line by line would give (tests/throughput/test_jsonl_fast.py)."""
        if not lines or not all(map(bytes.strip, lines)):
            return None
        if max(map(len, lines)) > self.limits.max_record_bytes:
            return None
        if b"\\u" in b"\n".join(lines):  # an escaped code point (NUL, a lone surrogate)
            return None
        try:  # orjson: about 4x json's speed; it refuses what json would read differently (NaN,
            # Infinity, non-UTF-8, numbers beyond a double), and turns an integer beyond 64
            # bits into a float, which `_beyond_int64` sends to the exact path
            records = list(map(orjson.loads, lines))
        except (orjson.JSONDecodeError, RecursionError):
            return None
        if not all(type(r) is dict for r in records) or max(map(len, records)) > self.limits.max_fields:
            return None
        frame = pd.DataFrame.from_records(records)
        frame = frame[[c for c in frame.columns if self.keep(c)]]
        converted: list[str] = []
        for column in frame.columns:
            values = frame[column]
            if _beyond_int64(values):
                return None
            if values.dtype == object and not set(map(type, values.to_numpy())) <= _PLAIN_TYPES:
                return None  # nested values: rejected line by line
            if column in self.string_columns:
                if values.dtype == object or not pd.api.types.is_string_dtype(values):
                    converted.append(column)  # not all text: as `project` makes it
            elif values.dtype.kind == "u":
                return None
        if converted:  # the values `project` gives, the dtypes pandas infers from them
            texts = pd.DataFrame.from_records(
                [{c: as_text(r[c]) for c in converted if c in r} for r in records], columns=converted)
            frame = frame.assign(**{c: texts[c] for c in converted})
        first = self.line + 1
        self.line += len(lines)
        frame[RAW_COLUMN] = _objects(lines)
        frame["_row"] = np.arange(first, first + len(lines), dtype=np.int64)
        return Chunk(frame, rejects_frame([], [], []))

    def _record(self, raw: bytes) -> dict | Problem:
        if len(raw) > self.limits.max_record_bytes:
            return Problem(f"line of {len(raw):,} bytes (limit {self.limits.max_record_bytes:,}: "
                           "limits.max_record_bytes)")
        text, problem = decode_row(raw)
        if text is None:
            return Problem(problem or "not valid UTF-8")
        return parse_record(text, self.string_columns, self.keep, self.limits)


_PLAIN_TYPES = {str, type(None), float, int, bool}


def _objects(values: list[bytes]) -> pd.Series:
    """The lines as an object column (no dtype inference over them)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return pd.Series(array, dtype=object, copy=False)


def _beyond_int64(values: pd.Series) -> bool:
    """An int beyond int64, or a float as large: orjson reads an integer beyond 64 bits as a
    float, so such a float may have been an integer in the text."""
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            return bool((np.abs(values.to_numpy()) >= 2.0**63).any())
    if values.dtype != object:
        return False
    return any(type(v) in (int, float) and abs(v) >= 2**63 for v in values.to_numpy())


def parse_record(text: str, string_columns: set[str], keep: Callable[[str], bool],
                 limits: Limits) -> dict | Problem:
    """One JSON object -> the record with the kept keys, or why it is rejected."""
    if "\\u0000" in text:
        return Problem(NUL_REASON)
    try:
        value = json.loads(text)
    except RecursionError:
        return Problem("JSON nested too deeply")
    except ValueError as error:
        return Problem(f"not valid JSON: {first_line(error)}")
    if not isinstance(value, dict):
        return Problem(f"record is {kind_of(value)}, not a JSON object")  # the HTTP API's words
    if "\\u" in text.lower() and _has_surrogate(value):
        return Problem(SURROGATE_REASON)
    return project(value, string_columns, keep, limits)


def kind_of(value: object) -> str:
    """What a decoded JSON value is, in JSON's words ("an array", "null", ...): for files, HTTP
    bodies and stream messages alike."""
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _has_surrogate(value: object) -> bool:
    """A lone UTF-16 surrogate (`"\\ud800"`) decodes into a Python str that no UTF-8
    database or Arrow column can hold."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def project(value: dict, string_columns: set[str], keep: Callable[[str], bool],
            limits: Limits) -> dict | Problem:
    """A decoded record with only its kept keys, text columns as exact text; or why it is
    rejected: too many fields, a kept field nested, an infinite number as text."""
    if len(value) > limits.max_fields:
        return Problem(f"record has {len(value):,} fields (limit {limits.max_fields:,}: limits.max_fields)")
    record: dict[str, object] = {}
    for key, item in value.items():
        if not keep(key):
            continue
        if isinstance(item, (dict, list)):
            return Problem(NESTED_REASON, key)
        if key in string_columns:
            if type(item) is float and math.isinf(item):
                return Problem(NOT_FINITE_REASON, key)
            record[key] = as_text(item)
        else:
            record[key] = _scalar(item)
    return record


def as_text(value: object) -> str | None:
    """A JSON value as the text of an id, class, version or segment value, as a CSV file would
    give it: integers exact, integral numbers without '.0', other numbers as written (a float
    that kept its JSON text in `.text`) or as repr; null and NaN stay missing."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return getattr(value, "text", None) or repr(value)
    return json.dumps(value, default=str)[:RAW_CHARS]


def _scalar(value: object) -> object:
    """A plain JSON value (never nested: `project` rejects those) as a cell holds it."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return float(value)  # a number column; too large for int64
    return value

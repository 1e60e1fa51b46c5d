"""JSON lines: a line that is not a JSON object, is not UTF-8 or is too large is rejected by
itself; row = line number. A block of plain lines is parsed with orjson, any other block
line by line with Python's json (exact integers). `as_text`
turns a JSON value into the exact text of an id, class or segment value, for files and for
request bodies alike (`monitor.api.bodies`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from monitor.config import Limits
from monitor.ingest.chunks import (
    BOM,
    CHUNK_ROWS,
    NUL_REASON,
    RAW_CHARS,
    SURROGATE_REASON,
    Chunk,
    decode_row,
    first_line,
    raw_text,
    rejects_frame,
)


class JsonLinesReader:
    """JSON lines: a line that is not a JSON object, is not UTF-8 or is too large is rejected
    by itself; row = line number (see the module's docstring)."""

    def __init__(self, path: Path, string_columns: Sequence[str], keep: Callable[[str], bool],
                 limits: Limits) -> None:
        self.path, self.keep, self.limits = path, keep, limits
        self.string_columns = set(string_columns)
        self.line = 0

    def chunks(self, blocks: Iterator[bytes]) -> Iterator[Chunk]:
        for block in blocks:
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
        bad_rows: list[int] = []
        reasons: list[str] = []
        raws: list[str] = []
        for raw in lines:
            self.line += 1
            if not raw.strip():
                continue
            record, problem = self._record(raw)
            if record is None:
                bad_rows.append(self.line)
                reasons.append(problem or "not a JSON object")
                raws.append(raw_text(raw))
            else:
                records.append(record)
                rows.append(self.line)
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        frame["_row"] = np.asarray(rows, dtype=np.int64)
        return Chunk(frame, rejects_frame(bad_rows, reasons, raws))

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
            if column in self.string_columns:
                if values.dtype == object or not pd.api.types.is_string_dtype(values):
                    converted.append(column)  # not all text: as `project` makes it
            elif values.dtype == object and not set(map(type, values.to_numpy())) <= _PLAIN_TYPES:
                return None  # nested values: as text, line by line
            elif values.dtype.kind == "u":
                return None
        if converted:  # the values `project` gives, the dtypes pandas infers from them
            texts = pd.DataFrame.from_records(
                [{c: as_text(r[c]) for c in converted if c in r} for r in records], columns=converted)
            frame = frame.assign(**{c: texts[c] for c in converted})
        first = self.line + 1
        self.line += len(lines)
        frame["_row"] = np.arange(first, first + len(lines), dtype=np.int64)
        return Chunk(frame, rejects_frame([], [], []))

    def _record(self, raw: bytes) -> tuple[dict | None, str | None]:
        if len(raw) > self.limits.max_record_bytes:
            return None, f"line of {len(raw):,} bytes (limit {self.limits.max_record_bytes:,}: limits.max_record_bytes)"
        text, problem = decode_row(raw)
        if text is None:
            return None, problem
        return parse_record(text, self.string_columns, self.keep, self.limits)


_PLAIN_TYPES = {str, type(None), float, int, bool}


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
                 limits: Limits) -> tuple[dict | None, str | None]:
    """One JSON object -> (record with the kept keys, None) or (None, reason)."""
    if "\\u0000" in text:
        return None, NUL_REASON
    try:
        value = json.loads(text)
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as error:
        return None, f"not valid JSON: {first_line(error)}"
    if not isinstance(value, dict):
        return None, f"not a JSON object (a JSON {type(value).__name__})"
    if "\\u" in text.lower() and _has_surrogate(value):
        return None, SURROGATE_REASON
    return project(value, string_columns, keep, limits)


def _has_surrogate(value: object) -> bool:
    """A lone UTF-16 surrogate (`"\\ud800"`) decodes into a Python str that no UTF-8
    database or Arrow column can hold."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def project(value: dict, string_columns: set[str], keep: Callable[[str], bool],
            limits: Limits) -> tuple[dict | None, str | None]:
    """A decoded record with only its kept keys, text columns as exact text; or a reason."""
    if len(value) > limits.max_fields:
        return None, f"record has {len(value):,} fields (limit {limits.max_fields:,}: limits.max_fields)"
    record = {}
    for key, item in value.items():
        if not keep(key):
            continue
        record[key] = as_text(item) if key in string_columns else _scalar(item)
    return record, None


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
    """Nested values (objects, arrays) become their JSON text: a cell holds one value."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)[:RAW_CHARS]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return float(value)  # a number column; too large for int64
    return value

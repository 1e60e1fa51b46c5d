"""Request bodies of the write API -> records, exactly as the file readers would give them.

`parse_body` reads a JSON array (or one object) or JSON lines with Python's json, numbering
records from 1 (by line for JSON lines); a line that does not parse is a reject of its own.
`records_frame` keeps only the columns files keep (`monitor.ingest.ledger.input_columns`),
turns ids, classes, versions and segment values into exact text before any DataFrame exists
(a JSON number id of 2**60 + 1 never passes through a float), and rejects by itself a record
that is not an object, is wider than `[limits] max_fields`, nests where one value is expected,
or holds text no database can store (NUL, a lone surrogate).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from monitor.api.errors import ApiError
from monitor.context import ModelContext
from monitor.ingest.jsonlines import as_text

JSON_ARRAY_TYPES = frozenset({"application/json"})
JSON_LINES_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                              "application/x-jsonl", "application/jsonlines", "application/x-jsonlines"})
MAX_FIELDS = 1000  # fields of one record; `[limits] max_fields` of the config when it has one
MAX_RECORDS = 100_000  # records of one request: larger backfills go in batches (413 beyond)
RAW_CHARS = 2000  # how much of a rejected record is stored for `monitor rejects`
Reject = tuple[int, str, str, str]  # (record number, field, reason, raw text)


class _Number(float):
    """A JSON number written with a fraction or exponent, keeping its text for id fields."""

    __slots__ = ("text",)
    text: str


class _TooWide:
    """Stands for a JSON object with more than `max_fields` keys (never built as a dict)."""

    def __init__(self, size: int) -> None:
        self.size = size


def _decoder(max_fields: int) -> json.JSONDecoder:
    def number(text: str) -> _Number:
        value = _Number(text)
        value.text = text
        return value

    def integer(text: str) -> int | str:
        # past Python's 4300-digit conversion limit an integer stays text (an id keeps it,
        # a timestamp is rejected as out of range) instead of failing the whole body
        return int(text) if len(text) < 4300 else text

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any] | _TooWide:
        return _TooWide(len(items)) if len(items) > max_fields else dict(items)

    return json.JSONDecoder(parse_float=number, parse_int=integer, parse_constant=number, object_pairs_hook=pairs)


def _loads(decoder: json.JSONDecoder, text: str) -> Any:
    """json.loads; every failure (syntax, nesting deeper than the parser's recursion limit)
    is a ValueError with a short reason."""
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parse_body(body: bytes, mimetype: str, *, max_fields: int = MAX_FIELDS,
               max_records: int = MAX_RECORDS) -> tuple[list[tuple[int, Any]], list[Reject]]:
    """The records of a body as (row, value), and the rows that could not be parsed as
    (row, field, reason, raw). A JSON array numbers its elements from 1; JSON lines (or an
    application/json body that is not an array) number each record by its line. Raises
    ApiError(400) for a body that is not UTF-8 or not JSON, 413 beyond `max_records`."""
    try:
        text = body.decode("utf-8-sig")  # a leading BOM is fine
    except UnicodeDecodeError:
        raise ApiError(400, "body is not UTF-8") from None
    stripped = text.strip()
    if not stripped:
        raise ApiError(400, "empty body: send a JSON array of records or JSON lines")
    decoder = _decoder(max_fields)
    if mimetype in JSON_ARRAY_TYPES and stripped.startswith("["):
        try:
            records = _loads(decoder, stripped)
        except ValueError as error:
            raise ApiError(400, f"body is {error}") from None
        if len(records) > max_records:
            raise ApiError(413, f"{len(records)} records is more than {max_records} in one request: send smaller batches")
        return _some_object(list(enumerate(records, start=1)), [])
    if mimetype in JSON_ARRAY_TYPES:
        try:  # one object (perhaps pretty-printed), or a single value that is not a record
            return _some_object([(1, _loads(decoder, stripped))], [])
        except ValueError:
            pass  # reported per line below
    lines = text.split("\n")  # not splitlines(): U+2028 and friends are valid inside JSON strings
    if sum(1 for line in lines if line.strip()) > max_records:
        raise ApiError(413, f"more than {max_records} records in one request: send smaller batches")
    records, rejects = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append((number, _loads(decoder, line)))
        except ValueError as error:
            rejects.append((number, "", f"line {number} is {error}", _clip(line)))
    return _some_object(records, rejects)


def _some_object(records: list[tuple[int, Any]], rejects: list[Reject]
                 ) -> tuple[list[tuple[int, Any]], list[Reject]]:
    """A body without a single JSON object is the wrong shape (a CSV, a bare value, [1, 2]):
    400 with the first problem, instead of one reject per line."""
    if (not records and not rejects) or any(isinstance(value, (dict, _TooWide)) for _, value in records):
        return records, rejects  # [] is a valid, empty batch
    first = rejects[0][2] if rejects else f"record 1 is {_kind(records[0][1])}"
    raise ApiError(400, f"body holds no JSON object ({first}): send an array of records or JSON lines")


def _clip(text: str) -> str:
    # stored as text: PostgreSQL refuses NUL, and a lone surrogate cannot be encoded
    return text[:RAW_CHARS].replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def _raw(value: Any) -> str:
    """A short JSON text of a rejected record; nested values are elided, never serialised."""
    if isinstance(value, _TooWide):
        return f"{{... {value.size} fields}}"
    if isinstance(value, dict):
        value = {key: _scalar_or_elided(v) for key, v in list(value.items())[:50]}
    else:
        value = _scalar_or_elided(value)
    return json.dumps(value, default=str)[:RAW_CHARS]


def _scalar_or_elided(value: Any) -> Any:
    if isinstance(value, (dict, _TooWide)):
        return "{...}"
    if isinstance(value, list):
        return "[...]"
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number")


def _bad_text(value: str) -> str | None:
    """Why a string cannot be stored as text, or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (not valid Unicode)"
    return None


def _plain(value: Any) -> Any:
    """A timestamp, score or feature value pandas can hold: floats unwrapped, integers beyond
    int64 as text (an object column of huge ints breaks pandas' string accessors)."""
    if isinstance(value, _Number):
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)
    return value


def _check_record(number: int, record: Any, strings: set[str], keep: Callable[[str], bool],
                  max_fields: int) -> dict[str, Any] | Reject:
    """The record's kept fields, or a reject."""
    if isinstance(record, _TooWide):
        return (number, "", f"record has {record.size} fields, more than the limit of {max_fields}", _raw(record))
    if not isinstance(record, dict):
        return (number, "", f"record is {_kind(record)}, not a JSON object", _raw(record))
    kept: dict[str, Any] = {}
    for column, value in record.items():
        if not keep(column):
            continue
        if isinstance(value, (dict, list, _TooWide)):
            return (number, column, "nested JSON (object or array) where a single value is expected", _raw(record))
        if isinstance(value, str) and (problem := _bad_text(value)) is not None:
            return (number, column, problem, _raw(record))
        kept[column] = as_text(value) if column in strings else _plain(value)
    return kept


def records_frame(records: list[tuple[int, Any]], ctx: ModelContext, kind: str, *,
                  max_fields: int = MAX_FIELDS) -> tuple[pd.DataFrame, list[Reject]]:
    """Parsed records -> (the raw frame ingest expects, with `_row`; the records rejected before
    it). Only the columns files keep (`input_columns`) become columns, so no body can make a
    frame of a million columns; ids, classes, versions and segment values are exact text,
    missing stays missing."""
    from monitor.ingest.ledger import input_columns

    string_columns, keep = input_columns(ctx, kind)
    strings = set(string_columns)
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    rejects: list[Reject] = []
    columns: dict[str, None] = {}  # in order of first appearance
    for number, record in records:
        kept = _check_record(number, record, strings, keep, max_fields)
        if isinstance(kept, tuple):
            rejects.append(kept)
            continue
        rows.append(kept)
        numbers.append(number)
        columns.update(dict.fromkeys(kept))
    frame = pd.DataFrame({c: pd.Series([row.get(c) for row in rows], dtype=object if c in strings else None)
                          for c in columns})
    frame["_row"] = np.asarray(numbers, dtype=np.int64)
    return frame, rejects

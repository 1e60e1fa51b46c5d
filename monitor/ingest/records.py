"""Records of a JSON document -> the raw frame ingest expects, for every JSON source (the
HTTP write API's bodies, stream messages).

`json_decoder` (with `loads`) parses JSON with Python's json, keeping the text of numbers
written with a fraction or exponent and refusing to build objects wider than `max_fields`.
`records_frame` keeps only the columns files keep (`monitor.ingest.ledger.input_columns`),
turns ids, classes, versions and segment values into exact text before any DataFrame exists
(a JSON number id of 2**60 + 1 never passes through a float), and rejects by itself a record
that is not an object, is wider than `[limits] max_fields`, nests where one value is expected,
or holds text no database can store (NUL, a lone surrogate). Moved here from
`monitor.api.bodies` (which re-exports them) so that stream consumers share them without
importing the API.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from monitor.context import ModelContext
from monitor.ingest.chunks import NOT_FINITE_REASON
from monitor.ingest.jsonlines import NESTED_REASON, as_text, kind_of

MAX_FIELDS = 1000  # fields of one record; `[limits] max_fields` of the config when it has one
RAW_CHARS = 2000  # how much of a rejected record is stored for `monitor rejects`
Reject = tuple[int, str, str, str]  # (record number, field, reason, raw text)


class _Number(float):
    """A JSON number written with a fraction or exponent, keeping its text for id fields."""

    __slots__ = ("text",)
    text: str


class TooWide:
    """Stands for a JSON object with more than `max_fields` keys (never built as a dict)."""

    def __init__(self, size: int) -> None:
        self.size = size


def json_decoder(max_fields: int) -> json.JSONDecoder:
    def number(text: str) -> _Number:
        value = _Number(text)
        value.text = text
        return value

    def integer(text: str) -> int | str:
        # past Python's 4300-digit conversion limit an integer stays text (an id keeps it,
        # a timestamp is rejected as out of range) instead of failing the whole body
        return int(text) if len(text) < 4300 else text

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any] | TooWide:
        return TooWide(len(items)) if len(items) > max_fields else dict(items)

    return json.JSONDecoder(parse_float=number, parse_int=integer, parse_constant=number, object_pairs_hook=pairs)


def loads(decoder: json.JSONDecoder, text: str) -> Any:
    """json.loads; every failure (syntax, nesting deeper than the parser's recursion limit)
    is a ValueError with a short reason."""
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def clip(text: str) -> str:
    # stored as text: PostgreSQL refuses NUL, and a lone surrogate cannot be encoded
    return text[:RAW_CHARS].replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def _raw(value: Any) -> str:
    """A short JSON text of a rejected record; nested values are elided, never serialised."""
    if isinstance(value, TooWide):
        return f"{{... {value.size} fields}}"
    if isinstance(value, dict):
        value = {key: _scalar_or_elided(v) for key, v in list(value.items())[:50]}
    else:
        value = _scalar_or_elided(value)
    return json.dumps(value, default=str)[:RAW_CHARS]


def _scalar_or_elided(value: Any) -> Any:
    if isinstance(value, (dict, TooWide)):
        return "{...}"
    if isinstance(value, list):
        return "[...]"
    return value


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


def check_record(number: int, record: Any, strings: set[str], keep: Callable[[str], bool],
                  max_fields: int) -> dict[str, Any] | Reject:
    """The record's kept fields, or a reject."""
    if isinstance(record, TooWide):
        return (number, "", f"record has {record.size} fields, more than the limit of {max_fields}", _raw(record))
    if not isinstance(record, dict):
        return (number, "", f"record is {kind_of(record)}, not a JSON object", _raw(record))
    kept: dict[str, Any] = {}
    for column, value in record.items():
        if not keep(column):
            continue
        if isinstance(value, (dict, list, TooWide)):
            return (number, column, NESTED_REASON, _raw(record))
        if column in strings and isinstance(value, float) and math.isinf(value):  # 1e400, as files reject it
            return (number, column, NOT_FINITE_REASON, _raw(record))
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
        kept = check_record(number, record, strings, keep, max_fields)
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

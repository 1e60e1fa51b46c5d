"""Request bodies of the write API -> records, exactly as the file readers would give them.

`parse_body` reads a JSON array (or one object) or JSON lines with Python's json, numbering
records from 1 (by line for JSON lines); a line that does not parse is a reject of its own.
`records_frame` (in `monitor.ingest.records`, shared with the stream consumers, re-exported
here) keeps only the columns files keep, turns ids, classes, versions and segment values into
exact text before any DataFrame exists, and rejects by itself a record that is not an object,
is too wide, nests where one value is expected, or holds text no database can store.
"""

from __future__ import annotations

from typing import Any

from monitor.api.errors import ApiError
from monitor.ingest.records import MAX_FIELDS, RAW_CHARS, Reject, records_frame
from monitor.ingest.records import TooWide as _TooWide
from monitor.ingest.records import clip as _clip
from monitor.ingest.records import json_decoder as _decoder
from monitor.ingest.records import kind_of as _kind
from monitor.ingest.records import loads as _loads

JSON_ARRAY_TYPES = frozenset({"application/json"})
JSON_LINES_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                              "application/x-jsonl", "application/jsonlines", "application/x-jsonlines"})
MAX_RECORDS = 100_000  # records of one request: larger backfills go in batches (413 beyond)
# the record parsing (`monitor.ingest.records`) is shared with the stream consumers
__all__ = ["JSON_ARRAY_TYPES", "JSON_LINES_TYPES", "MAX_FIELDS", "MAX_RECORDS", "RAW_CHARS", "Reject",
           "parse_body", "records_frame"]


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

"""The JSON API under /api/v1 (CONTRACT §4): reads through the domain services, writes through
`monitor.ingest.pipeline.ingest_frame` (the same rules as files).

Reads: `GET /models`, `GET /models/<m>/metrics|drift|fairness` (query parameters as the CLI
options: window, step, from, to, class, segment; drift also feature, fairness also attribute
and metric), `GET /alerts?model=&state=`. Every answer is a JSON list of records.
Writes: `POST /models/<m>/predictions|labels` with Content-Type application/json (a JSON
array of objects, or one object) or JSON lines (application/x-ndjson, application/jsonl, ...);
any other type is 415. The answer is
`{"accepted", "rejected", "skipped", "waiting", "rejects": [{"row", "field", "reason"}]}`, the
four counts adding up to the records sent; rows are numbered from 1 in array order, by line
for JSON lines. A record that is not an object, has more than `[limits] max_fields` fields,
nests where a value is expected, or holds NUL or a lone surrogate is rejected by itself, as is
a JSON line that does not parse. Errors are `{"error": message}` with 400 (a body that is not
UTF-8 or JSON, a bad parameter), 404 (unknown model), 413 (too large), 415 (not JSON),
503 (database unavailable or unmigrated).

This module is over the ~400-line guide because the body parsing lives here; it is the part
to move into its own module (`monitor/api/bodies.py`) next.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from flask import Blueprint, Response, current_app, request
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from monitor.api.health import database_failure
from monitor.api.security import json_error
from monitor.config import ConfigError, ModelConfig, MonitorConfig
from monitor.context import ModelContext, load_context
from monitor.locking import ingest_lock
from monitor.output import to_records
from monitor.store.models import MonitoredModel
from monitor.store.windows import WindowSpec, max_window_ends
from monitor.timeutil import parse_duration, parse_time

log = logging.getLogger("monitor.api")
blueprint = Blueprint("monitor_api", __name__, url_prefix="/api/v1")
MAX_REJECTS_SHOWN = 1000  # the answer stays small; every reject is stored for `monitor rejects`
WRITE_ATTEMPTS = 5
ALERT_STATES = ("pending", "firing", "resolved", "all")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@blueprint.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return json_error(error.status, error.message)


@blueprint.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    """JSON for every failure; no traceback or SQL goes to the client (it is logged)."""
    if isinstance(error, RequestEntityTooLarge):
        return json_error(413, f"request body larger than {current_app.config.get('MAX_CONTENT_LENGTH')} bytes")
    if isinstance(error, HTTPException):
        return json_error(error.code or 500, error.description or error.name)
    reason = database_failure(error)  # down, refusing connections or unmigrated
    if reason is not None:
        log.warning("database error: %s", str(error).strip().splitlines()[0] if str(error).strip() else reason)
        return json_error(503, reason)
    log.exception("API request failed")
    return json_error(500, f"internal error ({type(error).__name__})")


def write_engine() -> Engine:
    from monitor.api import engine_for

    return engine_for(current_app, write=True)


def state() -> tuple[MonitorConfig, Engine]:
    """The config and this process's read engine (see `monitor.api.engine_for`)."""
    from monitor.api import engine_for

    config: MonitorConfig = current_app.extensions["monitor_api"]["config"]
    return config, engine_for(current_app)


def _model_config(config: MonitorConfig, name: str) -> ModelConfig:
    try:
        return config.model(name)
    except ConfigError:
        raise ApiError(404, f"unknown model {name!r}") from None


def read_context(conn: Connection, model: ModelConfig) -> ModelContext:
    """The model's context without writing in a read: `load_context` inserts the model row
    on first sight, so that (rare) case runs in its own short write transaction; `conn`'s
    transaction is ended before and begins again after."""
    found = conn.execute(select(MonitoredModel.id).where(MonitoredModel.name == model.name)).first()
    if found is None:
        # End the read first: on SQLite a second transaction would wait for this one's lock.
        conn.rollback()
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with write_engine().begin() as write:
                    load_context(write, model)
                break
            except IntegrityError:  # another worker inserted it at the same moment
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
    return load_context(conn, model)  # the row exists now: a pure read


def _duration(name: str, default: str) -> int:
    raw = request.args.get(name, default)
    try:
        return parse_duration(raw)
    except ValueError as error:
        raise ApiError(400, f"{name}: {error}") from None


def _time(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except (ValueError, OverflowError):  # 1e400 overflows, a year 99999 is out of bounds
        raise ApiError(400, f"{name}: invalid time {raw[:100]!r}: use ISO 8601 "
                            "(2024-01-31T12:00:00Z) or epoch seconds") from None


def _list(name: str) -> list[str] | None:
    raw = request.args.get(name)
    if not raw:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()] or None


def _spec(config: MonitorConfig, model: ModelConfig) -> WindowSpec:
    """The window of the query (window, step, from, to), bounded by the model's
    `[limits] max_window_ends` (the global one, or the default before configs had limits)."""
    window, step = _duration("window", "7d"), _duration("step", "1d")
    start, end = _time("from"), _time("to")
    if start is not None and end is not None and end < start:
        raise ApiError(400, "to is before from: give from <= to")
    limit = max_window_ends(model if getattr(model, "limits", None) is not None else config)
    try:
        return WindowSpec(window, step, start, end, max_ends=limit)
    except ValueError as error:  # WindowLimitError included: too long, out of range
        raise ApiError(400, str(error)) from None


def json_response(payload: Any, status: int = 200) -> Response:
    """JSON keeping the record's column order (Flask's jsonify sorts keys); strict JSON
    (no NaN: `to_records` turns missing values into null)."""
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body, status=status, mimetype="application/json")


def _records(frame: pd.DataFrame) -> Response:
    return json_response(to_records(frame))


def _read(model: str, compute: Callable[[Connection, ModelContext, WindowSpec], pd.DataFrame]) -> Response:
    """Run `compute` on the model's context and the query's window; the user's mistakes
    (unknown class/segment/feature/metric, a window over the limits) are 400 with the reason."""
    config, engine = state()
    model_config = _model_config(config, model)
    spec = _spec(config, model_config)
    with engine.connect() as conn:
        ctx = read_context(conn, model_config)
        try:
            frame = compute(conn, ctx, spec)
        except ValueError as error:  # WindowLimitError too
            raise ApiError(400, str(error)) from None
        finally:
            conn.rollback()
    return _records(frame)


@blueprint.get("/models")
def list_models() -> Response:
    config, engine = state()
    out = []
    with engine.connect() as conn:
        for model in config.models:
            ctx = read_context(conn, model)
            out.append({"name": model.name, "classes": ctx.classes,
                        "minority_classes": ctx.minority_classes, "segments": ctx.segments,
                        "features": ctx.features, "bucket": model.bucket})
        conn.rollback()
    return json_response(out)


@blueprint.get("/models/<model>/metrics")
def metrics(model: str) -> Response:
    from monitor.metrics.service import metrics_frame

    classes, segment = _list("class"), request.args.get("segment") or None
    return _read(model, lambda conn, ctx, spec: metrics_frame(conn, ctx, spec, classes=classes, segment=segment))


@blueprint.get("/models/<model>/drift")
def drift(model: str) -> Response:
    from monitor.drift.service import drift_frame

    segment, features = request.args.get("segment") or None, _list("feature")
    return _read(model, lambda conn, ctx, spec: drift_frame(conn, ctx, spec, segment=segment, features=features))


@blueprint.get("/models/<model>/fairness")
def fairness(model: str) -> Response:
    from monitor.fairness.service import fairness_frame

    classes, metric = _list("class"), _list("metric")
    attribute = _list("attribute") or _list("segment")
    return _read(model, lambda conn, ctx, spec: fairness_frame(conn, ctx, spec, classes=classes,
                                                               attribute=attribute, metric=metric))


@blueprint.get("/alerts")
def alerts() -> Response:
    from monitor.alerts.service import alerts_frame

    config, engine = state()
    model = request.args.get("model") or None
    if model is not None:
        _model_config(config, model)
    alert_state = request.args.get("state", "all")
    if alert_state not in ALERT_STATES:
        raise ApiError(400, f"state must be one of {', '.join(ALERT_STATES)}")
    with engine.connect() as conn:
        frame = alerts_frame(conn, model=model, state=alert_state)
        conn.rollback()
    return _records(frame)


# Write bodies: one hostile record is rejected by itself with a reason; only a body that is
# not JSON at all (or is too large) is refused whole. Records are parsed with Python's json, and
# the fields the monitor reads become plain values before any DataFrame exists, so an id such
# as 12345678901234567891 stays that exact text instead of passing through float64.
JSON_ARRAY_TYPES = frozenset({"application/json"})
JSON_LINES_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                              "application/x-jsonl", "application/jsonlines", "application/x-jsonlines"})
MAX_FIELDS = 1000  # fields of one record; `[limits] max_fields` of the config when it has one
MAX_RECORDS = 100_000  # records of one request: larger backfills go in batches (413 beyond)
RAW_CHARS = 2000  # how much of a rejected record is stored for `monitor rejects`


class _Number(float):
    """A JSON number written with a fraction or exponent, keeping its text for id fields."""

    __slots__ = ("text",)


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
               max_records: int = MAX_RECORDS) -> tuple[list[tuple[int, Any]], list[tuple[int, str, str, str]]]:
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


def _some_object(records: list[tuple[int, Any]], rejects: list[tuple[int, str, str, str]]
                 ) -> tuple[list[tuple[int, Any]], list[tuple[int, str, str, str]]]:
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


def _as_text(value: Any) -> str | None:
    """An id, class, version or segment value as the text a file would give: integers exact,
    integral numbers without '.0', other numbers as written; null and NaN stay missing."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return None
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return getattr(value, "text", None) or repr(value)


def _plain(value: Any) -> Any:
    """A timestamp, score or feature value pandas can hold: floats unwrapped, integers beyond
    int64 as text (an object column of huge ints breaks pandas' string accessors)."""
    if isinstance(value, _Number):
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)
    return value


def _check_record(number: int, record: Any, strings: set[str], keep: Callable[[str], bool],
                  max_fields: int) -> tuple[dict[str, Any] | None, tuple[int, str, str, str] | None]:
    """(the record's kept fields, None) or (None, a reject)."""
    if isinstance(record, _TooWide):
        return None, (number, "", f"record has {record.size} fields, more than the limit of {max_fields}", _raw(record))
    if not isinstance(record, dict):
        return None, (number, "", f"record is {_kind(record)}, not a JSON object", _raw(record))
    kept: dict[str, Any] = {}
    for column, value in record.items():
        if not keep(column):
            continue
        if isinstance(value, (dict, list, _TooWide)):
            return None, (number, column, "nested JSON (object or array) where a single value is expected", _raw(record))
        if isinstance(value, str) and (problem := _bad_text(value)) is not None:
            return None, (number, column, problem, _raw(record))
        kept[column] = _as_text(value) if column in strings else _plain(value)
    return kept, None


def records_frame(records: list[tuple[int, Any]], ctx: ModelContext, kind: str, *,
                  max_fields: int = MAX_FIELDS) -> tuple[pd.DataFrame, list[tuple[int, str, str, str]]]:
    """Parsed records -> (the raw frame ingest expects, with `_row`; the records rejected before
    it). Only the columns files keep (`input_columns`) become columns, so no body can make a
    frame of a million columns; ids, classes, versions and segment values are exact text,
    missing stays missing."""
    from monitor.ingest.ledger import input_columns

    string_columns, keep = input_columns(ctx, kind)
    strings = set(string_columns)
    rows, numbers, rejects = [], [], []
    columns: dict[str, None] = {}  # in order of first appearance
    for number, record in records:
        kept, reject = _check_record(number, record, strings, keep, max_fields)
        if reject is not None:
            rejects.append(reject)
            continue
        rows.append(kept)
        numbers.append(number)
        columns.update(dict.fromkeys(kept))
    frame = pd.DataFrame({c: pd.Series([row.get(c) for row in rows], dtype=object if c in strings else None)
                          for c in columns})
    frame["_row"] = np.asarray(numbers, dtype=np.int64)
    return frame, rejects


def _read_body() -> bytes:
    """The request body, refusing (413) a chunked one longer than MAX_CONTENT_LENGTH: for a body
    without Content-Length, werkzeug stops reading at the limit without saying so."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    body = request.get_data(cache=False)
    if limit is not None and request.content_length is None and len(body) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return body


RETRY_SQLSTATES = ("40001", "40P01", "23505")  # serialization failure, deadlock, unique violation


def _retryable(error: Exception) -> bool:
    """Concurrent writers on PostgreSQL: a deadlock, a serialization failure or two inserts of
    the same new key roll the transaction back whole, so running it again is safe. Errors
    may come wrapped by SQLAlchemy or straight from the driver (raw-cursor bulk paths)."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(error, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in RETRY_SQLSTATES


def _limit(config: MonitorConfig, model: ModelConfig, name: str, default: int) -> int:
    """`[limits] <name>` of the model (or the global table), else `default`: read with getattr
    so that configs from before the `[limits]` table work too."""
    for source in (model, config):
        value = getattr(getattr(source, "limits", None), name, None)
        if value:
            return int(value)
    return default


def _content_type() -> str:
    """The body's media type; 415 unless JSON or JSON lines in UTF-8."""
    mimetype = request.mimetype or ""
    if mimetype not in JSON_ARRAY_TYPES | JSON_LINES_TYPES:
        shown = repr(mimetype[:100]) if mimetype else "none"
        raise ApiError(415, f"Content-Type {shown} is not JSON: send application/json (an array of records) "
                            "or application/x-ndjson (JSON lines)")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiError(415, f"charset {charset[:40]!r}: send UTF-8")
    return mimetype


def _write(model: str, kind: str) -> Response:
    from monitor.ingest.ledger import store_rejects
    from monitor.ingest.pipeline import ingest_frame
    from monitor.ingest.validate import REJECT_COLUMNS

    config, _ = state()
    engine = write_engine()
    model_config = _model_config(config, model)
    mimetype = _content_type()
    max_fields = _limit(config, model_config, "max_fields", MAX_FIELDS)
    records, unparsed = parse_body(_read_body(), mimetype, max_fields=max_fields)
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                ctx = load_context(conn, model_config)
                frame, refused = records_frame(records, ctx, kind, max_fields=max_fields)
                early = pd.DataFrame(sorted(unparsed + refused), columns=REJECT_COLUMNS)
                ingest_lock(conn, ctx.model_id)  # writers of one model queue, never deadlock
                result = ingest_frame(conn, ctx, kind, frame, source="api")
                store_rejects(conn, ctx, kind, "api", None, early)
            break
        except Exception as error:
            if attempt == WRITE_ATTEMPTS or not _retryable(error):
                raise
            log.info("retrying a %s POST after %s", kind, type(getattr(error, "orig", error)).__name__)
            time.sleep(random.uniform(0.05, 0.2) * attempt)  # jitter: retries do not collide again
    reasons = sorted([{"row": int(row), "field": field, "reason": reason} for row, field, reason, _ in early.itertuples(index=False)]
                     + result.reasons, key=lambda r: r["row"])
    return json_response({
        "accepted": int(result.accepted), "rejected": int(result.rejected) + len(early),
        "skipped": int(result.skipped), "waiting": int(result.waiting),
        "rejects": reasons[:MAX_REJECTS_SHOWN], "rejects_truncated": len(reasons) > MAX_REJECTS_SHOWN,
    })


@blueprint.post("/models/<model>/predictions")
def post_predictions(model: str) -> Response:
    return _write(model, "predictions")


@blueprint.post("/models/<model>/labels")
def post_labels(model: str) -> Response:
    return _write(model, "labels")

"""The JSON API under /api/v1 (docs/contract.md §4): reads through the read layer (`monitor.read`: a
model never ingested reads as empty, nothing is written), writes through
`monitor.ingest.pipeline.ingest_frame` (the same rules as files).

Reads: `GET /models`, `GET /models/<m>/metrics|drift|fairness|label-shift` (query parameters as the CLI
options: window, step, from, to, class, segment; drift also feature, fairness also attribute
and metric), `GET /models/<m>/slices?class=&depth=&window=&to=`, `GET /alerts?model=&state=`, `GET /incidents?model=&state=`. Every answer is a JSON list of records.
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

Bodies are parsed into records by `monitor.api.bodies`.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from flask import Blueprint, Response, current_app, request
from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from monitor.api.bodies import (
    JSON_ARRAY_TYPES,
    JSON_LINES_TYPES,
    MAX_FIELDS,
    parse_body,
    records_frame,
)
from monitor.api.errors import ApiError
from monitor.api.health import database_failure
from monitor.api.security import json_error
from monitor.config import ConfigError, ModelConfig, MonitorConfig
from monitor.context import ModelContext, load_context
from monitor.ingest.inbox import Drainer
from monitor.ingest.pipeline import IngestResult
from monitor.ingest.validate import REJECT_COLUMNS
from monitor.ingest.writers import note_writes
from monitor.locking import ingest_lock
from monitor.output import to_records
from monitor.read import alerts as alert_reads
from monitor.read import quality
from monitor.read.context import model_context, option_names
from monitor.read.windows import query_spec
from monitor.store.windows import WindowSpec
from monitor.timeutil import parse_duration, parse_time, to_iso

log = logging.getLogger("monitor.api")
blueprint = Blueprint("monitor_api", __name__, url_prefix="/api/v1")
MAX_REJECTS_SHOWN = 1000  # the answer stays small; every reject is stored for `monitor rejects`
WRITE_ATTEMPTS = 5
ALERT_STATES = ("pending", "firing", "resolved", "all")
_DRAINER_LOCK = threading.Lock()
# API workers aggregate a model's inbox once its oldest row has waited this long (seconds);
# sooner, it is the scheduler's drainer's (monitor run, every half second), which no request
# threads slow down: a drain inside a busy worker slows its requests and itself (one GIL)
API_DRAIN_AFTER = 3.0
# backpressure: when a model's inbox holds rows older than this (seconds), a write also
# aggregates one batch of HELP_ROWS before it answers (if no one else is aggregating it)
HELP_AFTER = 5.0
HELP_ROWS = 5_000


_NO_REJECTS = pd.DataFrame(columns=REJECT_COLUMNS)  # never changed: an answer without rejects


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
    from monitor.api.engines import engine_for

    return engine_for(current_app, write=True)


def state() -> tuple[MonitorConfig, Engine]:
    """The config and this process's read engine (see `monitor.api.engines.engine_for`)."""
    from monitor.api.engines import engine_for

    config: MonitorConfig = current_app.extensions["monitor_api"]["config"]
    return config, engine_for(current_app)


def _model_config(config: MonitorConfig, name: str) -> ModelConfig:
    try:
        return config.model(name)
    except ConfigError:
        raise ApiError(404, f"unknown model {name!r}") from None


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


def _classes(ctx: ModelContext) -> list[str] | None:
    """`?class=`: comma-separated or repeated; a known class name with a comma stays whole."""
    return option_names(request.args.getlist("class"), ctx.classes)


def _spec(model: ModelConfig) -> WindowSpec:
    """The window of the query (window, step, from, to), bounded by the model's
    `[limits] max_window_ends`."""
    window, step = _duration("window", "7d"), _duration("step", "1d")
    start, end = _time("from"), _time("to")
    if start is not None and end is not None and end < start:
        raise ApiError(400, "to is before from: give from <= to")
    try:
        return query_spec(model, window, step, start, end)
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
    spec = _spec(model_config)
    with engine.connect() as conn:
        ctx = model_context(conn, model_config)
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
            ctx = model_context(conn, model)
            out.append({"name": model.name, "classes": ctx.classes,
                        "minority_classes": ctx.minority_classes, "segments": ctx.segments,
                        "features": ctx.features, "bucket": model.bucket})
        conn.rollback()
    return json_response(out)


@blueprint.get("/models/<model>/metrics")
def metrics(model: str) -> Response:
    segment = request.args.get("segment") or None
    return _read(model, lambda conn, ctx, spec: quality.metrics(conn, ctx, spec, classes=_classes(ctx), segment=segment))


@blueprint.get("/models/<model>/drift")
def drift(model: str) -> Response:
    segment, features = request.args.get("segment") or None, _list("feature")
    return _read(model, lambda conn, ctx, spec: quality.drift(conn, ctx, spec, segment=segment, features=features))


@blueprint.get("/models/<model>/fairness")
def fairness(model: str) -> Response:
    metric = _list("metric")
    attribute = _list("attribute") or _list("segment")
    return _read(model, lambda conn, ctx, spec: quality.fairness(conn, ctx, spec, classes=_classes(ctx),
                                                                 attribute=attribute, metric=metric))


@blueprint.get("/models/<model>/label-shift")
def label_shift(model: str) -> Response:
    """`label_shift` records: prevalence and precision from the predicted-class mix (BBSE)
    beside CBPE's, with the warning where they disagree; parameters as metrics."""
    segment = request.args.get("segment") or None
    return _read(model, lambda conn, ctx, spec: quality.label_shift(conn, ctx, spec, segment=segment,
                                                                    classes=_classes(ctx)))


@blueprint.get("/models/<model>/slices")
def slices(model: str) -> Response:
    """`slices` records of one window: `to` (default: the newest complete window, on a UTC
    day), `window`, `class` (required), `depth` (1..3, default 2)."""
    from monitor.read.windows import default_spec

    cls, depth = request.args.get("class"), request.args.get("depth", "2")
    if not cls:
        raise ApiError(400, "class: required (the class whose recall is searched)")
    if depth not in ("1", "2", "3"):
        raise ApiError(400, f"depth: must be 1, 2 or 3, got {depth[:20]!r}")

    def compute(conn: Connection, ctx: ModelContext, spec: WindowSpec) -> pd.DataFrame:
        found = default_spec(conn, ctx, window=spec.window, step=86400, span_days=0, end=spec.end)
        return quality.slices(conn, ctx, cls=cls, end=found.end if found else None, window=spec.window,
                              depth=int(depth))

    return _read(model, compute)


def _listing(states: tuple[str, ...], read: Callable[..., pd.DataFrame]) -> Response:
    """Records of every model (or `?model=`) in `?state=` (one of `states`, default all)."""
    config, engine = state()
    model = request.args.get("model") or None
    if model is not None:
        _model_config(config, model)
    wanted = request.args.get("state", "all")
    if wanted not in states:
        raise ApiError(400, f"state must be one of {', '.join(states)}")
    with engine.connect() as conn:
        frame = read(conn, model=model, state=wanted)
        conn.rollback()
    return _records(frame)


@blueprint.get("/alerts")
def alerts() -> Response:
    return _listing(ALERT_STATES, alert_reads.alerts)


@blueprint.get("/incidents")
def incidents() -> Response:
    """Incident records, newest first (`model`, `state` open | resolved | all)."""
    from monitor.read import incidents as incident_reads

    return _listing(incident_reads.STATES, incident_reads.incidents)


# Write bodies: one hostile record is rejected by itself with a reason; only a body that is
# not JSON at all (or is too large) is refused whole. Records are parsed with Python's json, and
# the fields the monitor reads become plain values before any DataFrame exists, so an id such
# as 12345678901234567891 stays that exact text instead of passing through float64.
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
    the same new key roll the transaction back whole, so running it again is safe. So is a
    write on a connection the server had closed (the write engine does not ping before each
    checkout): even if its rows were stored, the inbox counts each prediction id once. Errors
    may come wrapped by SQLAlchemy or straight from the driver (raw-cursor bulk paths)."""
    if isinstance(error, IntegrityError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True  # a connection the server closed (restart, idle timeout): the pool gives a new one
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


def _wait() -> bool:
    """`?wait=true`: aggregate before answering (the counts of a direct write)."""
    raw = request.args.get("wait", "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ApiError(400, f"wait: must be true or false, got {raw[:20]!r}")


def drainer(app: Any = None) -> Drainer:
    """This app's inbox drainer (one per app and process; its thread starts on the first nudge)."""
    from monitor.api.engines import engine_for

    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    state_ = app.extensions["monitor_api"]
    with _DRAINER_LOCK:
        if state_.get("drainer") is None:
            state_["drainer"] = Drainer(lambda: engine_for(app, write=True), state_["config"], min_age=API_DRAIN_AFTER)
    return state_["drainer"]  # type: ignore[no-any-return]


def stop_background(app: Any) -> None:
    """Stop the app's inbox drainer thread (tests, shutdown; queued rows stay queued) and
    close the health check's and the writes' engines."""
    state_ = app.extensions.get("monitor_api", {})
    if state_.get("drainer") is not None:
        state_["drainer"].stop()
    for key in ("health_engine", "write_engine"):
        if state_.get(key) is not None:
            state_[key].dispose()


def _validated(ctx: ModelContext, kind: str, frame: pd.DataFrame, received: int) -> tuple[IngestResult, pd.DataFrame]:
    """Validate a body for the inbox: (the result with the rejects, the good rows to queue).
    Labels are queued as validated, their `label_timestamp` defaulting to the receive time."""
    from monitor.ingest.validate import validate_labels, validate_predictions

    if frame.empty:
        return IngestResult(), frame
    if kind == "predictions":
        checked = validate_predictions(frame, ctx)
        good = frame.loc[frame["_row"].isin(checked.rows["_row"])]
    else:
        checked = validate_labels(frame, ctx, received // 1_000_000)
        names = ctx.config.labels
        good = pd.DataFrame({names.id: checked.rows["prediction_id"], names.label: checked.rows["label"],
                             names.timestamp: checked.rows["label_ts"], "_row": checked.rows["_row"]})
    result = IngestResult(read=len(frame), accepted=len(good), rejected=len(checked.rejects), rejects=checked.rejects)
    return result, good


def _write(model: str, kind: str) -> Response:
    """A POST body: parsed and validated here; the good rows are queued in the inbox (one
    statement) and aggregated by the drainer within about a second, or, with `?wait=true`,
    aggregated here under the model's lock after the rows queued before them."""
    from monitor.ingest.inbox import drain_locked, enqueue, enqueue_records, now_micros, status
    from monitor.ingest.ledger import store_rejects
    from monitor.ingest.pipeline import ingest_frame
    from monitor.ingest.quick import plain_records

    config, _ = state()
    engine = write_engine()
    model_config = _model_config(config, model)
    mimetype = _content_type()
    wait = _wait()
    max_fields = _limit(config, model_config, "max_fields", MAX_FIELDS)
    records, unparsed = parse_body(_read_body(), mimetype, max_fields=max_fields)
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            received = now_micros()
            checked = wait or bool(unparsed)  # no plain path for these
            if not checked and engine.dialect.name == "postgresql":
                fast = _queue_plain(engine, model_config, kind, records, received, max_fields)
                if isinstance(fast, tuple):
                    queued, progress = fast
                    result = IngestResult(read=queued, accepted=queued, rejects=_NO_REJECTS)
                    early = _NO_REJECTS
                    break
                checked = fast is _NOT_PLAIN
            with engine.begin() as conn:
                ctx = load_context(conn, model_config)
                plain = None if checked else plain_records(
                    records, ctx, kind, received=received // 1_000_000, max_fields=max_fields)
                if plain is not None:  # the usual body: every record plainly valid, no frame
                    result = IngestResult(read=len(plain), accepted=len(plain), rejects=_NO_REJECTS)
                    early = _NO_REJECTS
                    queued = enqueue_records(conn, ctx, kind, plain, received_at=received)
                    progress = status(conn, ctx.model_id, counts=False)
                    break
                frame, refused = records_frame(records, ctx, kind, max_fields=max_fields)
                early = pd.DataFrame(sorted(unparsed + refused), columns=REJECT_COLUMNS)
                if wait:
                    ingest_lock(conn, ctx.model_id)  # writers of one model queue, never deadlock
                    note_writes(conn, ctx.model_id, None)  # stream consumers check against these rows
                    drain_locked(conn, ctx)  # rows sent before these go first
                    result, queued = ingest_frame(conn, ctx, kind, frame, source="api"), 0
                else:
                    result, good = _validated(ctx, kind, frame, received)
                    queued = enqueue(conn, ctx, kind, good, received_at=received)
                    store_rejects(conn, ctx, kind, "api", None, result.rejects)
                store_rejects(conn, ctx, kind, "api", None, early)
                progress = status(conn, ctx.model_id, counts=False)
            break
        except Exception as error:
            if attempt == WRITE_ATTEMPTS or not _retryable(error):
                raise
            log.info("retrying a %s POST after %s", kind, type(getattr(error, "orig", error)).__name__)
            time.sleep(random.uniform(0.05, 0.2) * attempt)  # jitter: retries do not collide again
    if queued:
        drainer().nudge()
        if progress.oldest_received_at is not None and received - progress.oldest_received_at > HELP_AFTER * 1e6:
            _help_drain(engine, model_config)
    reasons = sorted([{"row": int(row), "field": field, "reason": reason} for row, field, reason, _ in early.itertuples(index=False)]
                     + result.reasons, key=lambda r: r["row"]) if len(early) or result.rejected else []
    return json_response({
        "accepted": int(result.accepted), "rejected": int(result.rejected) + len(early),
        "skipped": int(result.skipped), "waiting": int(result.waiting),
        "rejects": reasons[:MAX_REJECTS_SHOWN], "rejects_truncated": len(reasons) > MAX_REJECTS_SHOWN,
        "queued": int(queued), "aggregated_through": to_iso(progress.aggregated_through),
    })


_NOT_PLAIN = object()


def _queue_plain(engine: Engine, model_config: ModelConfig, kind: str, records: list, received: int,
                 max_fields: int) -> tuple[int, Any] | object | None:
    """The usual POST on PostgreSQL (every record plainly valid): one query (the model and its
    oldest queued row) and one COPY into the inbox, in autocommit: the COPY is atomic by itself,
    and no BEGIN or COMMIT round trip is paid. (rows queued, the inbox status after them);
    `_NOT_PLAIN` when a record needs the full validation; None when the model is not stored
    yet (the transaction of the general path stores it)."""
    from monitor.ingest.inbox import context_and_oldest, enqueue_records, queued_status
    from monitor.ingest.quick import plain_records

    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        found = context_and_oldest(conn, model_config)
        if found is None:
            return None
        ctx, oldest = found
        plain = plain_records(records, ctx, kind, received=received // 1_000_000, max_fields=max_fields)
        if plain is None:
            return _NOT_PLAIN
        queued = enqueue_records(conn, ctx, kind, plain, received_at=received)
    return queued, queued_status(oldest, received)


def _help_drain(engine: Engine, model_config: ModelConfig) -> None:
    """Aggregate one batch of the model's inbox in this request (aggregation is behind: the
    drainers' threads lose the CPU to the writes). The write is already stored: a failure here
    is only logged."""
    from monitor.ingest.inbox import drain_model

    try:
        drain_model(engine, model_config, limit=HELP_ROWS)
    except Exception:  # noqa: BLE001 - the drainers retry these rows
        log.warning("aggregating the inbox of %s in a request failed", model_config.name, exc_info=True)


@blueprint.get("/models/<model>/ingest")
def ingest_status(model: str) -> Response:
    """How far the aggregation of HTTP writes has got (`ingest_status`, one object)."""
    from monitor.ingest.inbox import status

    config, engine = state()
    model_config = _model_config(config, model)
    with engine.connect() as conn:
        ctx = model_context(conn, model_config)
        found = status(conn, ctx.model_id)
        conn.rollback()
    oldest = None if found.oldest_received_at is None else to_iso(found.oldest_received_at // 1_000_000)
    return json_response({"model": model, "queued_predictions": found.queued_predictions,
                          "queued_labels": found.queued_labels, "oldest_queued_at": oldest,
                          "aggregated_through": to_iso(found.aggregated_through)})


@blueprint.post("/models/<model>/predictions")
def post_predictions(model: str) -> Response:
    return _write(model, "predictions")


@blueprint.post("/models/<model>/labels")
def post_labels(model: str) -> Response:
    return _write(model, "labels")

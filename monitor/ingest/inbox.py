"""The write inbox: HTTP writes are validated and stored raw, then aggregated in micro-batches.

A POST validates its records (rejects are answered and stored at once, as before), stores the
good ones as raw JSON rows in `inbox` with one statement (`enqueue`: COPY on PostgreSQL,
executemany on SQLite) and answers. `drain_model` aggregates a model's inbox in arrival order,
up to `BATCH_ROWS` rows per transaction, through the same pipeline as files and the old direct
path (`load_predictions`, `load_labels`: exactly once by prediction id, conflicts rejected,
corrections applied) and deletes the rows it aggregated in that same transaction, so a crash
at any point either leaves a row in the inbox or has aggregated it, never both or neither.

Several processes may drain at once (gunicorn workers, the scheduler): a model's batch is
taken under the model's ingest lock (`monitor.locking.ingest_lock`'s key; PostgreSQL
`pg_try_advisory_xact_lock`, so a drainer skips a model another one is busy with; SQLite
write transactions are exclusive anyway). `Drainer` is the background thread that drains
every second (half a second in `monitor run`) after its last pass ended, or soon after a
nudge from a write; on PostgreSQL it also vacuums the inbox (`vacuum_inbox`).

How far aggregation has got (`aggregated_through`): every record received before that second
is aggregated. It is the receive time of a model's oldest row still in the inbox, or now when
the inbox holds none of the model's rows.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from monitor.config import ModelConfig, MonitorConfig
from monitor.context import ModelContext, context_from_row, load_context
from monitor.ingest.pipeline import IngestResult, Pending, load_labels, load_predictions
from monitor.ingest.rejects import store_rejects
from monitor.ingest.writers import note_writes
from monitor.locking import INGEST_LOCK_SPACE, ingest_lock
from monitor.store.base import Base
from monitor.store.bulk import array_literal, driver_errors, fetch_one
from monitor.store.models import MonitoredModel

log = logging.getLogger("monitor.inbox")
BATCH_ROWS = 20_000  # rows aggregated per transaction (bounded memory, short locks)
DELETE_CHUNK = 2_000
# PostgreSQL: a drainer thread vacuums the inbox after this many rows left it (see vacuum_inbox;
# every 50,000 let single POSTs wait 0.3-0.4 s at 2,000/s while the larger vacuum ran)
VACUUM_AFTER_ROWS = 10_000
KINDS = ("predictions", "labels")


class InboxRecord(Base):
    """One accepted raw record waiting for aggregation (migration 0009)."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_model_id", "model_id", "id"),)

    # 64-bit on PostgreSQL (the sequence turns over quickly); SQLite's rowid alias is INTEGER
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[int] = mapped_column(BigInteger)  # epoch microseconds of the POST
    row_number: Mapped[int] = mapped_column(Integer)  # the record's row in its body, from 1
    record: Mapped[str] = mapped_column(Text)  # the kept fields as JSON (missing ones left out)


INBOX = cast(Table, InboxRecord.__table__)


def now_micros() -> int:
    return time.time_ns() // 1000


# -- writing ----------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def enqueue(conn: Connection, ctx: ModelContext, kind: str, frame: pd.DataFrame, *, received_at: int) -> int:
    """Store the raw records of `frame` (valid ones, with `_row`) in the inbox, in one
    statement of the caller's transaction (COPY on PostgreSQL, executemany elsewhere).
    Returns the number of rows queued."""
    return enqueue_records(conn, ctx, kind, frame_records(frame), received_at=received_at)


def frame_records(frame: pd.DataFrame) -> list[tuple[int, dict[str, Any]]]:
    """(body row, record) of each row of a frame with `_row`: plain JSON values, missing ones
    (None, NaN) left out."""
    if frame.empty:
        return []
    columns = [c for c in frame.columns if c != "_row"]
    records = []
    for number, *values in zip(frame["_row"].tolist(), *(frame[c].tolist() for c in columns), strict=True):
        records.append((int(number), {c: v for c, v in zip(columns, map(_json_value, values), strict=True)
                                      if v is not None}))
    return records


def enqueue_records(conn: Connection, ctx: ModelContext, kind: str, records: list[tuple[int, dict[str, Any]]],
                    *, received_at: int) -> int:
    """`enqueue` of (body row, record) pairs whose values are plain JSON values, none missing
    (`monitor.ingest.quick.plain_records` gives them without building a frame)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: use predictions or labels")
    if not records:
        return 0
    texts = [record_json(record) for _, record in records]
    if conn.dialect.name == "postgresql":
        names = "model_id, kind, received_at, row_number, record"
        statement = f"COPY inbox ({names}) FROM STDIN"
        # one block of COPY text built here: psycopg's write_row formats row by row in Python,
        # and JSON text holds no raw tab, newline or carriage return, only backslashes to double
        head = b"%d\t%s\t%d\t" % (ctx.model_id, kind.encode(), received_at)
        block = b"".join(b"%s%d\t%s\n" % (head, number, text.replace(b"\\", b"\\\\"))
                         for (number, _), text in zip(records, texts, strict=True))
        driver = conn.connection.driver_connection  # the session's psycopg connection, same transaction
        assert driver is not None
        with driver_errors(conn, statement), driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(block)
    else:
        conn.execute(INBOX.insert(), [
            {"model_id": ctx.model_id, "kind": kind, "received_at": received_at, "row_number": number,
             "record": text.decode("utf-8")} for (number, _), text in zip(records, texts, strict=True)])
    return len(records)


def _float(value: Any) -> float:
    """orjson's fallback for a parsed JSON number (`records._Number`, a float subclass)."""
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def record_json(record: dict[str, Any]) -> bytes:
    """A queued record as compact UTF-8 JSON: orjson (a sixth of json's time), or Python's
    json where orjson would write something json reads back differently: it refuses integers
    beyond 64 bits, and writes NaN and infinities as null (records hold no None: a null is a
    nested None or one of those)."""
    try:
        text = orjson.dumps(record, default=_float)
    except orjson.JSONEncodeError:
        text = None
    if text is None or b"null" in text:
        return _DUMPS(record).encode("utf-8")
    return text


# -- how far aggregation has got -----------------------------------------------------------------
@dataclass
class InboxStatus:
    queued_predictions: int
    queued_labels: int
    oldest_received_at: int | None  # epoch microseconds of the oldest queued row
    aggregated_through: int  # epoch seconds: every record received before it is aggregated


def status(conn: Connection, model_id: int, *, now: int | None = None, counts: bool = True) -> InboxStatus:
    """The model's queue: rows per kind (unless `counts` is False: 0), the oldest one's receive
    time, `aggregated_through`."""
    per_kind: dict[str, int] = {}
    if counts:
        per_kind = {kind: n for kind, n in conn.execute(
            select(INBOX.c.kind, func.count()).where(INBOX.c.model_id == model_id).group_by(INBOX.c.kind))}
    oldest = conn.execute(select(INBOX.c.received_at).where(INBOX.c.model_id == model_id)
                          .order_by(INBOX.c.id).limit(1)).scalar()
    through = oldest // 1_000_000 if oldest is not None else (now if now is not None else now_micros() // 1_000_000)
    return InboxStatus(int(per_kind.get("predictions", 0)), int(per_kind.get("labels", 0)),
                       None if oldest is None else int(oldest), int(through))


# built once: building this select and its cache key took more of a POST's CPU than running
# it (a statement built per call gets a new cache key); run by `fetch_one`
_CONTEXT_AND_OLDEST = select(
    MonitoredModel.id, MonitoredModel.classes, MonitoredModel.minority_classes,
    select(INBOX.c.received_at).where(INBOX.c.model_id == MonitoredModel.id)
    .order_by(INBOX.c.id).limit(1).scalar_subquery(),
).where(MonitoredModel.name == bindparam("name"))


def context_and_oldest(conn: Connection, model: ModelConfig) -> tuple[ModelContext, int | None] | None:
    """The model's context and the receive time (epoch microseconds) of its oldest queued row,
    in one query (a POST's only read before it queues); None when the model is not stored yet."""
    row = fetch_one(conn, _CONTEXT_AND_OLDEST, {"name": model.name})
    if row is None:
        return None
    return context_from_row(model, row[0], row[1], row[2]), (None if row[3] is None else int(row[3]))


def queued_status(oldest: int | None, received_at: int) -> InboxStatus:
    """`status(counts=False)` right after rows received at `received_at` were queued, from the
    oldest row queued before them (`context_and_oldest`)."""
    first = received_at if oldest is None else min(oldest, received_at)
    return InboxStatus(0, 0, first, first // 1_000_000)


def queue_depths(conn: Connection) -> dict[tuple[str, str], tuple[int, int]]:
    """(model name, kind) -> (rows queued, oldest receive time in epoch microseconds)."""
    rows = conn.execute(
        select(MonitoredModel.name, INBOX.c.kind, func.count(), func.min(INBOX.c.received_at))
        .join(MonitoredModel, MonitoredModel.id == INBOX.c.model_id)
        .group_by(MonitoredModel.name, INBOX.c.kind)).all()
    return {(name, kind): (int(n), int(oldest)) for name, kind, n, oldest in rows}


# -- aggregating ---------------------------------------------------------------------------------
@dataclass
class Drained:
    """What one drain of a model did."""

    rows: int = 0
    predictions: IngestResult | None = None
    labels: IngestResult | None = None


def try_model_lock(conn: Connection, model_id: int) -> bool:
    """The model's ingest lock if free, until the end of the transaction (PostgreSQL); SQLite
    write transactions are exclusive already."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:space, :model)"),
                             {"space": INGEST_LOCK_SPACE, "model": int(model_id)}).scalar_one())


def _frame(rows: list[tuple], records: list[dict]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows (id, kind, received_at, row_number, record) and their parsed records -> the raw frame
    with `_row` in arrival order (so "the later row wins" ties follow arrival), and each row's
    body row number."""
    frame = pd.DataFrame.from_records(records)
    frame["_row"] = np.arange(1, len(rows) + 1, dtype=np.int64)
    return frame, np.asarray([row[3] for row in rows], dtype=np.int64)


def _score_columns(record: dict, prefix: str) -> tuple[str, ...]:
    """The score fields a record carries: rows without a score column must reach the hooks
    without it (as a file without one does), not with NaN scores that count as missing."""
    return tuple(sorted(key for key in record if key.startswith(prefix)))


def _body_rows(rejects: pd.DataFrame, body_rows: np.ndarray) -> pd.DataFrame:
    if rejects.empty:
        return rejects
    positions = rejects["row_number"].to_numpy(dtype=np.int64) - 1
    return rejects.assign(row_number=body_rows[positions])


def aggregate_rows(conn: Connection, ctx: ModelContext, rows: list[tuple]) -> Drained:
    """Aggregate inbox rows (predictions first, then labels, each in arrival order) and delete
    them, in the caller's transaction (which holds the model's lock)."""
    drained = Drained(rows=len(rows))
    note_writes(conn, ctx.model_id, None)  # raw rows stored under the lock: stream consumers check
    pending = Pending()
    accepted_predictions = 0
    prefix = ctx.config.predictions.score_prefix
    for kind in KINDS:
        groups: dict[tuple[str, ...], tuple[list[tuple], list[dict]]] = {}
        for row in rows:
            if row[1] == kind:
                record = json.loads(row[4])
                group = groups.setdefault(_score_columns(record, prefix) if kind == "predictions" else (), ([], []))
                group[0].append(row)
                group[1].append(record)
        for picked, records in groups.values():  # same score columns, in order of first arrival
            frame, body_rows = _frame(picked, records)
            load = load_predictions if kind == "predictions" else load_labels
            result = load(conn, ctx, frame, as_of=None, pending=pending)
            store_rejects(conn, ctx, kind, "api", None, _body_rows(result.rejects, body_rows))
            if getattr(drained, kind) is None:
                setattr(drained, kind, result)
            else:
                getattr(drained, kind).add(result)
            if kind == "predictions":
                accepted_predictions += result.accepted
    # counts and hooks in one pass; labels that came before these predictions (in earlier
    # batches) are counted now: only the waiting labels of the ids stored here are looked at
    pending.labels = pending.labels or accepted_predictions > 0
    pending.flush(conn, ctx, scoped=True)
    _delete(conn, [int(row[0]) for row in rows])
    return drained


def _delete(conn: Connection, ids: list[int]) -> None:
    """Delete inbox rows by id: one array parameter on PostgreSQL (an IN list of thousands of
    placeholders costs more to build and parse than to run), chunks of an IN list elsewhere."""
    if conn.dialect.name == "postgresql":
        # the ids as one array literal: psycopg would dump a list element by element in Python
        conn.execute(text("DELETE FROM inbox WHERE id = ANY(CAST(:ids AS BIGINT[]))"),
                     {"ids": array_literal([int(i) for i in ids])})
        return
    for start in range(0, len(ids), DELETE_CHUNK):
        conn.execute(delete(INBOX).where(INBOX.c.id.in_(ids[start:start + DELETE_CHUNK])))


def _claim(conn: Connection, model_id: int, limit: int, upto: int | None = None) -> list[tuple]:
    query = (select(INBOX.c.id, INBOX.c.kind, INBOX.c.received_at, INBOX.c.row_number, INBOX.c.record)
             .where(INBOX.c.model_id == model_id).order_by(INBOX.c.id).limit(limit))
    if upto is not None:
        query = query.where(INBOX.c.id <= upto)
    return [tuple(row) for row in conn.execute(query).all()]


def drain_locked(conn: Connection, ctx: ModelContext, *, limit: int | None = None) -> int:
    """Aggregate every queued row of the model in the caller's transaction, which must hold
    the model's lock (`ingest_lock`): the `?wait=true` write runs it before its own rows, so
    that it never overtakes records sent before it (rows queued after it started are left to
    the drainers, so a busy inbox cannot keep it waiting). Returns the rows aggregated."""
    total = 0
    upto = conn.execute(select(func.max(INBOX.c.id)).where(INBOX.c.model_id == ctx.model_id)).scalar()
    while upto is not None:
        rows = _claim(conn, ctx.model_id, limit or BATCH_ROWS, upto)
        if not rows:
            return total
        aggregate_rows(conn, ctx, rows)
        total += len(rows)
    return total


def drain_model(engine: Engine, model: ModelConfig, *, limit: int = BATCH_ROWS, wait: bool = False
                ) -> Drained | None:
    """One batch of the model's inbox in its own transaction; None when nothing is queued or
    another process holds the model's lock (with `wait`, queue for the lock instead)."""
    with engine.begin() as conn:
        ctx = load_context(conn, model)
        if wait:
            ingest_lock(conn, ctx.model_id)
        elif not try_model_lock(conn, ctx.model_id):
            return None
        rows = _claim(conn, ctx.model_id, limit)
        if not rows:
            return None
        try:
            with conn.begin_nested():
                drained = aggregate_rows(conn, ctx, rows)
        except DBAPIError:
            raise  # the database's trouble (or a serialization failure): the rows stay, retried later
        except Exception:  # noqa: BLE001 - a row the pipeline cannot take must not block the queue
            log.exception("inbox of model %s: a batch of %d rows failed; aggregating it by request",
                          model.name, len(rows))
            drained = _by_request(conn, ctx, rows)
    return drained


def _by_request(conn: Connection, ctx: ModelContext, rows: list[tuple]) -> Drained:
    """The slow path after a failed batch: each request (kind, receive time) on its own; a
    request that still fails is stored as rejects with the error and leaves the inbox."""
    groups: dict[tuple[str, int], list[tuple]] = {}
    for row in rows:
        groups.setdefault((row[1], int(row[2])), []).append(row)
    for (kind, _), group in groups.items():
        try:
            with conn.begin_nested():
                aggregate_rows(conn, ctx, group)
        except DBAPIError:
            raise
        except Exception as error:  # noqa: BLE001 - recorded as rejects, with the error
            reason = f"could not be aggregated ({type(error).__name__}: {str(error)[:200]})"
            store_rejects(conn, ctx, kind, "api", None, pd.DataFrame({
                "row_number": [row[3] for row in group], "field": "", "reason": reason,
                "raw": [row[4][:2000] for row in group]}))
            _delete(conn, [int(row[0]) for row in group])
    return Drained(rows=len(rows))


def drain_one(engine: Engine, model: ModelConfig, *, wait: bool = False) -> int:
    """Aggregate one model's inbox until empty (the tick, before it evaluates the model)."""
    total = 0
    while (drained := drain_model(engine, model, wait=wait)) is not None:
        total += drained.rows
    return total


def queued_models(engine: Engine, *, min_age: float = 0.0) -> list[str]:
    """Names of the models with rows in the inbox (whose oldest row is `min_age` s old or more)."""
    before = now_micros() - int(min_age * 1_000_000)
    with engine.connect() as conn:
        names = conn.execute(
            select(MonitoredModel.name).join(INBOX, INBOX.c.model_id == MonitoredModel.id)
            .group_by(MonitoredModel.name).having(func.min(INBOX.c.received_at) <= before)).scalars().all()
        conn.rollback()
    return list(names)


def drain(engine: Engine, config: MonitorConfig, *, wait: bool = False, min_age: float = 0.0,
          until_empty: bool = True) -> int:
    """Aggregate the inbox of every configured model until empty (or, without `wait`, until
    another process is busy with it); `min_age`: only models whose oldest row waited that long.
    `until_empty=False` (the drainer threads): a model's next batch only while its batches are
    full (a backlog), so rows that keep arriving wait for the next pass and are aggregated
    together, instead of many small batches that each pay the pipeline's fixed cost.
    Returns the rows aggregated here."""
    total = 0
    configured = {model.name: model for model in config.models}
    for name in queued_models(engine, min_age=min_age):
        model = configured.get(name)
        if model is None:
            continue  # not in this process's config: left for one that knows the model
        limit = BATCH_ROWS
        while (drained := drain_model(engine, model, wait=wait, limit=limit)) is not None:
            total += drained.rows
            log.debug("inbox of model %s: %d rows aggregated", name, drained.rows)
            if not until_empty and drained.rows < limit:
                break
    return total


def vacuum_inbox(engine: Engine) -> None:
    """PostgreSQL: VACUUM the inbox, a queue whose every row is deleted soon after it came.

    Each deleted row leaves a dead tuple in the table and in its index until a vacuum: at
    3,000 predictions/s plus as many labels, 345,000 of them in 50 s beside some 20,000 live
    rows, and the queries that look for the oldest queued row or claim a batch read past them,
    ever slower. Autovacuum, where the server runs it, comes at most once a minute and by
    default only after 20% of a table changed. So the drainer threads vacuum it themselves
    every `VACUUM_AFTER_ROWS` rows: a plain VACUUM, which neither blocks nor waits for the
    writers (SKIP_LOCKED: a vacuum already running is left to finish alone), without the
    truncation of empty trailing pages (that step takes an exclusive lock on the table, which
    would hold up the POSTs queueing into it): the freed space is reused by the next rows, so
    the table stays at the size of its largest backlog. Elsewhere nothing (SQLite reuses the
    freed pages at once). A failure is logged: the next pass tries again."""
    if engine.dialect.name != "postgresql":
        return
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(f'VACUUM (SKIP_LOCKED, TRUNCATE FALSE) "{INBOX.name}"')
    except Exception:  # noqa: BLE001 - housekeeping: the drain itself has succeeded
        log.warning("vacuuming the inbox failed; trying again later", exc_info=True)


class Drainer:
    """A background thread that drains the inbox every `interval` seconds, and soon after
    `nudge()` (at most every `gap` seconds). Started by the first nudge in a process (so it
    survives a fork: gunicorn workers each start their own); it ends after `idle_exit` seconds
    with an empty inbox and starts again at the next nudge. With `min_age`, it drains only
    models whose oldest row waited that long: API workers leave the inbox to the scheduler's
    drainer (its own process, so no request threads share its interpreter lock) and step in
    when no scheduler keeps up."""

    def __init__(self, engine: Callable[[], Engine], config: MonitorConfig, *, interval: float = 1.0,
                 gap: float = 0.2, idle_exit: float = 30.0, min_age: float = 0.0) -> None:
        self.engine, self.config = engine, config
        self.interval, self.gap, self.idle_exit, self.min_age = interval, gap, idle_exit, min_age
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """Rows were queued: drain soon (starting the thread if it is not running)."""
        if self._pid != os.getpid():
            self._reset()  # a forked child: the parent's thread does not exist here
        with self._lock:
            self._wake.set()
            if self._stop.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="monitor-inbox", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        idle_since = time.monotonic()
        since_vacuum = 0
        while not self._stop.is_set():
            # `interval` between the end of a pass and the next: under load the rows that keep
            # arriving meanwhile make larger batches, so a pass costs less per row (a pass that
            # started as soon as the last ended kept the batches small and fell behind)
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                drained = drain(self.engine(), self.config, min_age=self.min_age, until_empty=False)
                queued = bool(queued_models(self.engine()))
            except Exception:  # noqa: BLE001 - the database may be down: keep trying
                log.exception("draining the inbox failed; retrying")
                drained, queued = 0, True
            since_vacuum += drained
            if since_vacuum >= VACUUM_AFTER_ROWS:
                vacuum_inbox(self.engine())
                since_vacuum = 0
            if drained or queued:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.idle_exit:
                with self._lock:
                    if not self._wake.is_set():
                        self._thread = None
                        return
            self._stop.wait(self.gap)

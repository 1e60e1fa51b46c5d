"""The consumer loop of `monitor consume`: fetch a batch, ingest it in one transaction,
commit, then settle its messages.

A batch is up to `[models.stream] batch_size` messages, or what arrived in `max_wait` seconds.
Each message holds one JSON record or an array of them, with the fields and validation of the
HTTP write API (`monitor.ingest.records`); its subject says whether they are predictions or
labels. In one transaction: the predictions of the batch, then its labels (`ingest_frame`,
exactly the rules of files and POSTs) and the rejects are stored without the model's lock;
then, under its `ingest_lock` until the commit, their counts, hooks and label join, and the
consumer's row of `stream_consumers` (the two phases: `monitor.ingest.writers`). Only after
the commit are the messages acknowledged, so a process killed at any point loses nothing:
what it did not commit is delivered again, and what it committed but did not acknowledge is
delivered again and skipped by the prediction id (an identical prediction or label already
stored is `skipped`, never counted twice).

A record that fails validation is stored in `rejected_rows` (source "stream", `row_number` =
the message's stream sequence) and the rest flows; a message that is not JSON at all (or not a
record or an array of them) is stored there the same way and terminated, never retried. With
`dead_letter_subject`, every reject is also published there after the commit (at least once).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd
from sqlalchemy import Engine, Table, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from monitor.config import ModelConfig
from monitor.context import ModelContext, load_context
from monitor.ingest.pipeline import Pending, ingest_frame
from monitor.ingest.records import (
    MAX_FIELDS,
    Reject,
    TooWide,
    clip,
    json_decoder,
    kind_of,
    loads,
    records_frame,
)
from monitor.ingest.rejects import store_rejects
from monitor.ingest.validate import REJECT_COLUMNS
from monitor.ingest.writers import Overlap, id_hashes, note_writes, overlaps, recheck, writes_seen
from monitor.locking import ingest_lock
from monitor.stream.models import StreamConsumer
from monitor.stream.source import KINDS, Delivery, Source

log = logging.getLogger("monitor.stream")
SOURCE = "stream"  # rejected_rows.source
ATTEMPTS = 5  # of one batch's transaction on deadlocks / serialization failures
RETRY_SQLSTATES = ("40001", "40P01", "23505")
FAILURES = 5  # batches failing in a row before the consumer gives up (exit 1)
IDLE_LAG_EVERY = 5.0  # seconds between lag updates while the stream is quiet
TABLE = cast(Table, StreamConsumer.__table__)  # declared as FromClause; a mapped class's is a Table


@dataclass
class BatchResult:
    """What one batch did (also the running totals of a consumer)."""

    messages: int = 0
    redelivered: int = 0
    predictions: int = 0  # accepted
    labels: int = 0  # accepted (new or corrected)
    skipped: int = 0  # already stored: redeliveries and exact duplicates
    rejected: int = 0  # records and whole messages refused
    poison: int = 0  # messages refused whole (terminated)
    pending: int | None = None
    lag_seconds: float | None = None  # commit time minus the publish time of the oldest message
    seconds: float = 0.0
    lock_seconds: float = 0.0  # of `seconds`, waiting for the model's ingest lock (contention)
    dead_letters: list[dict[str, Any]] = field(default_factory=list, repr=False)
    terminate: set[int] = field(default_factory=set, repr=False)  # sequences of the poison messages

    def add(self, other: BatchResult) -> None:
        for name in ("messages", "redelivered", "predictions", "labels", "skipped", "rejected", "poison"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.pending, self.lag_seconds = other.pending, other.lag_seconds
        self.seconds += other.seconds
        self.lock_seconds += other.lock_seconds

    def line(self) -> str:
        lag = "-" if self.lag_seconds is None else f"{self.lag_seconds:.1f}s"
        return (f"{self.messages} messages ({self.redelivered} redelivered): {self.predictions} predictions, "
                f"{self.labels} labels accepted, {self.skipped} skipped, {self.rejected} rejected; "
                f"pending {self.pending if self.pending is not None else '-'}, lag {lag}, {self.seconds:.2f}s "
                f"({self.lock_seconds:.2f}s waiting for the model's lock)")


@dataclass
class _Parsed:
    records: dict[str, list[tuple[int, Any]]]
    refused: dict[str, list[Reject]]  # whole messages, by kind
    poison: list[Delivery]
    unknown: list[Delivery]  # on a subject that is neither (never with a stream of our own)


def parse_deliveries(deliveries: Sequence[Delivery], max_fields: int = MAX_FIELDS) -> _Parsed:
    """The records of each message numbered by its stream sequence; messages that hold no
    record (not UTF-8, not JSON, a bare value) as rejects of their own."""
    decoder = json_decoder(max_fields)
    parsed = _Parsed({kind: [] for kind in KINDS}, {kind: [] for kind in KINDS}, [], [])
    for delivery in deliveries:
        if delivery.kind not in KINDS:
            parsed.unknown.append(delivery)
            continue
        problem, text = None, ""
        try:
            text = delivery.data.decode("utf-8-sig")
            value = loads(decoder, text) if text.strip() else None
            if not text.strip():
                problem = "message is empty: send a JSON record or an array of records"
            elif isinstance(value, list):
                parsed.records[delivery.kind] += [(delivery.sequence, item) for item in value]
            elif isinstance(value, (dict, TooWide)):
                parsed.records[delivery.kind].append((delivery.sequence, value))
            else:
                problem = f"message holds {kind_of(value)}, not a JSON record or an array of records"
        except UnicodeDecodeError:
            problem, text = "message is not UTF-8", delivery.data[:2000].decode("utf-8", "replace")
        except ValueError as error:
            problem = f"message is {error}"
        if problem is not None:
            parsed.refused[delivery.kind].append((delivery.sequence, "", problem, clip(text)))
            parsed.poison.append(delivery)
    return parsed


def _retryable(error: Exception) -> bool:
    if isinstance(error, (IntegrityError, Overlap)):
        return True
    code = getattr(error, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in RETRY_SQLSTATES


def ingest_batch(engine: Engine, model: ModelConfig, deliveries: Sequence[Delivery], *, stream: str,
                 consumer: str, source_type: str = "jetstream") -> BatchResult:
    """Ingest one batch in one transaction (retried whole on deadlocks); returns what it did,
    with the dead letters to publish. Nothing is acknowledged here."""
    started = time.monotonic()
    max_fields = model.limits.max_fields if model.limits else MAX_FIELDS
    parsed = parse_deliveries(deliveries, max_fields)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                result = _ingest(conn, model, deliveries, parsed, stream=stream, consumer=consumer,
                                 source_type=source_type)
            break
        except Exception as error:
            if attempt == ATTEMPTS or not _retryable(error):
                raise
            log.info("retrying a batch after %s", type(getattr(error, "orig", error)).__name__)
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    result.seconds = time.monotonic() - started
    return result


def _ingest(conn: Connection, model: ModelConfig, deliveries: Sequence[Delivery], parsed: _Parsed, *,
            stream: str, consumer: str, source_type: str) -> BatchResult:
    """Phase one without the model's lock (rows validated and stored), phase two under it
    (counts, hooks, the label join); see `monitor.ingest.writers`."""
    ctx = load_context(conn, model)
    max_fields = model.limits.max_fields if model.limits else MAX_FIELDS
    frames = {kind: records_frame(parsed.records[kind], ctx, kind, max_fields=max_fields) for kind in KINDS}
    seen = writes_seen(conn, ctx.model_id)  # before the lookups of stored ids
    pending = Pending()
    result = BatchResult(messages=len(deliveries), redelivered=sum(d.redelivered for d in deliveries),
                         poison=len(parsed.poison) + len(parsed.unknown), rejected=len(parsed.unknown))
    for delivery in parsed.unknown:
        log.warning("message %d on subject %s is neither predictions nor labels: terminated",
                    delivery.sequence, delivery.subject)
    for kind in KINDS:  # predictions first: a label in the same batch finds its prediction
        frame, refused = frames[kind]
        early = pd.DataFrame(sorted(parsed.refused[kind] + refused), columns=REJECT_COLUMNS)
        outcome = ingest_frame(conn, ctx, kind, frame, source=SOURCE, pending=pending) if len(frame) else None
        store_rejects(conn, ctx, kind, SOURCE, None, early)
        accepted = outcome.accepted if outcome is not None else 0
        result.predictions += accepted if kind == "predictions" else 0
        result.labels += accepted if kind == "labels" else 0
        result.skipped += outcome.skipped if outcome is not None else 0
        result.rejected += len(early) + (outcome.rejected if outcome is not None else 0)
        for rejects in (early, outcome.rejects if outcome is not None else early.iloc[:0]):
            result.dead_letters += [_dead_letter(ctx, kind, row) for row in rejects.itertuples(index=False)]
    waiting = time.monotonic()
    ingest_lock(conn, ctx.model_id)  # phase two: writers of one model queue here, until the commit
    result.lock_seconds = time.monotonic() - waiting
    predictions, labels = pending.prediction_ids(), pending.stored_label_ids()
    hashes = id_hashes(predictions, labels)
    if len(hashes):
        overlap = overlaps(conn, ctx.model_id, seen, hashes)
        if overlap is None:  # a writer that did not list its ids: look in the tables
            overlap = recheck(conn, ctx.model_id, predictions, labels)
        if overlap:
            raise Overlap(f"another writer stored some of these {len(hashes)} ids meanwhile")
        note_writes(conn, ctx.model_id, hashes)
    # labels that came before these predictions (in earlier batches, or committed by another
    # writer while this one ran) are counted now, not at the scheduler's next tick; only the
    # waiting labels of the ids stored here are looked at (whichever of two overlapping
    # writers commits second sees the other's rows: see monitor.ingest.writers)
    pending.labels = pending.labels or result.predictions > 0
    pending.flush(conn, ctx, scoped=True)
    result.terminate = {d.sequence for d in (*parsed.poison, *parsed.unknown)}
    now = time.time()
    result.pending = deliveries[-1].pending if deliveries else None
    result.lag_seconds = max(0.0, now - min(d.published for d in deliveries)) if deliveries else None
    _record(conn, ctx, result, stream=stream, consumer=consumer, source_type=source_type, now=now)
    return result


def _dead_letter(ctx: ModelContext, kind: str, row: Any) -> dict[str, Any]:
    return {"model": ctx.name, "kind": kind, "sequence": int(row.row_number), "field": row.field,
            "reason": row.reason, "raw": row.raw}


def _row_id(conn: Connection, model_id: int, stream: str, consumer: str, source_type: str, now: int) -> int:
    """The consumer's row, made on first use (two processes making it at once: one insert
    fails on the unique index and its transaction is retried)."""
    found = conn.execute(select(TABLE.c.id).where(TABLE.c.model_id == model_id, TABLE.c.stream == stream,
                                                  TABLE.c.consumer == consumer)).scalar()
    if found is not None:
        return int(found)
    zeros = dict.fromkeys(("pending", "ack_pending", "batches", "messages", "redelivered", "predictions", "labels",
                           "skipped", "rejected"), 0)
    return int(conn.execute(insert(TABLE).values(model_id=model_id, source=source_type, stream=stream,
                                                 consumer=consumer, updated_at=now, **zeros)
                            .returning(TABLE.c.id)).scalar_one())


def _record(conn: Connection, ctx: ModelContext, result: BatchResult, *, stream: str, consumer: str,
            source_type: str, now: float) -> None:
    row = _row_id(conn, ctx.model_id, stream, consumer, source_type, int(now))
    c = TABLE.c
    values: dict[str, Any] = {
        "batches": c.batches + 1, "messages": c.messages + result.messages,
        "redelivered": c.redelivered + result.redelivered, "predictions": c.predictions + result.predictions,
        "labels": c.labels + result.labels, "skipped": c.skipped + result.skipped,
        "rejected": c.rejected + result.rejected, "lag_seconds": result.lag_seconds,
        "last_batch_at": int(now), "updated_at": int(now),
    }
    if result.pending is not None:
        values["pending"] = result.pending
    conn.execute(update(TABLE).where(c.id == row).values(**values))


def record_lag(engine: Engine, model: ModelConfig, *, stream: str, consumer: str, pending: int, ack_pending: int,
               source_type: str = "jetstream") -> None:
    """The broker's view of the backlog, while no batch comes (a short transaction of its own)."""
    with engine.begin() as conn:
        ctx = load_context(conn, model)
        now = int(time.time())
        row = _row_id(conn, ctx.model_id, stream, consumer, source_type, now)
        values: dict[str, Any] = {"pending": pending, "ack_pending": ack_pending, "updated_at": now}
        if pending == 0 and ack_pending == 0:
            values["lag_seconds"] = 0.0  # caught up
        conn.execute(update(TABLE).where(TABLE.c.id == row).values(**values))


def settle(source: Source, deliveries: Sequence[Delivery], result: BatchResult, dead_letter_subject: str | None) -> None:
    """After the commit: dead letters out, poison terminated, the rest acknowledged."""
    if dead_letter_subject:
        for letter in result.dead_letters:
            source.publish(dead_letter_subject, json.dumps(letter, default=str).encode("utf-8"))
    source.term([d for d in deliveries if d.sequence in result.terminate])
    source.ack([d for d in deliveries if d.sequence not in result.terminate])


@dataclass
class RunOptions:
    max_batches: int | None = None  # stop after this many batches
    until_idle: float | None = None  # stop when no message came for this many seconds
    stop: threading.Event = field(default_factory=threading.Event)  # set by SIGTERM/SIGINT
    on_batch: Callable[[BatchResult], None] | None = None


def run(source: Source, engine: Engine, model: ModelConfig, options: RunOptions) -> BatchResult:
    """Consume until stopped (`options.stop`), idle or done; returns the totals. The batch in
    hand when the stop comes is finished, committed and acknowledged first."""
    assert model.stream is not None
    settings = model.stream
    totals = BatchResult()
    batches = failures = 0
    quiet_since = last_lag = time.monotonic()
    try:
        source.open()
        while not options.stop.is_set():
            deliveries = source.fetch(settings.batch_size, settings.max_wait)
            if not deliveries:
                now = time.monotonic()
                if now - last_lag >= IDLE_LAG_EVERY or options.until_idle is not None:
                    lag = source.lag()
                    record_lag(engine, model, stream=source.name, consumer=source.consumer,
                               pending=lag.pending, ack_pending=lag.ack_pending)
                    last_lag = now
                if options.until_idle is not None and now - quiet_since >= options.until_idle:
                    break
                continue
            try:
                result = ingest_batch(engine, model, deliveries, stream=source.name, consumer=source.consumer)
            except Exception:
                failures += 1
                log.exception("a batch of %d messages failed (%d in a row); delivering it again later",
                              len(deliveries), failures)
                source.nak(deliveries, delay=min(30.0, 2.0 * failures))
                if failures >= FAILURES:
                    raise
                continue
            failures = 0
            settle(source, deliveries, result, settings.dead_letter_subject)
            totals.add(result)
            batches += 1
            quiet_since = last_lag = time.monotonic()
            if options.on_batch is not None:
                options.on_batch(result)
            if options.max_batches is not None and batches >= options.max_batches:
                break
    finally:
        source.close()
    return totals

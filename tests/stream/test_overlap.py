"""Stream batches of one model overlap (issue 17: no lock over the whole batch), on PostgreSQL.

A consumer stores a batch's rows before it takes the model's ingest lock and takes the lock
only for the counts (`monitor.ingest.writers`). These tests hold the lock in a connection of
their own so that batches stop at the lock with their rows stored, check that they did get
that far, release the lock, and check that the same prediction id stored by two overlapping
writers with other times (which the partitioned primary keys let through) counts once. No
broker is needed: the deliveries are made here and handed to `ingest_batch`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text

from monitor.config import load_config
from monitor.context import load_context
from monitor.ingest.ledger import ingest_file
from monitor.ingest.writers import KEEP, PRUNE_EVERY, id_hashes, note_writes, overlaps, writes_seen
from monitor.locking import ingest_lock
from monitor.store.db import make_engine
from monitor.store.models import RejectedRow
from monitor.stream.consumer import BatchResult, ingest_batch
from monitor.stream.source import Delivery
from tests.conftest import fresh_database_url
from tests.stream.conftest import StreamNames, expected_counts, make_records, snapshot, write_config

WEEK = 7 * 86_400
NAMES = StreamNames("nats://127.0.0.1:4222", "T_overlap", "o.predictions", "o.labels", "o.dead")  # never connected


def _deliveries(frame: pd.DataFrame, kind: str, first_sequence: int) -> list[Delivery]:
    records = json.loads(frame.to_json(orient="records"))
    return [Delivery(json.dumps(record).encode(), f"o.{kind}", kind, first_sequence + i, time.time())
            for i, record in enumerate(records)]


class _Batch(threading.Thread):
    """`ingest_batch` in a thread of its own (it blocks at the model's lock)."""

    def __init__(self, engine: Engine, config_path: Path, deliveries: list[Delivery]) -> None:
        super().__init__(daemon=True)
        self.engine, self.model, self.deliveries = engine, load_config(config_path).models[0], deliveries
        self.result: BatchResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = ingest_batch(self.engine, self.model, self.deliveries, stream="T_overlap",
                                       consumer="monitor")
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


def _waiting_for_the_lock(engine: Engine, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Wait until `count` backends of this database wait for an advisory lock; what each one
    holds on the raw tables meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            pids = conn.execute(text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).scalars().all()
            if len(pids) >= count:
                return [dict(pid=pid, tables=set(conn.execute(text(
                    "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE l.pid = :pid AND l.mode = 'RowExclusiveLock' AND l.granted"), {"pid": pid}).scalars()))
                    for pid in pids]
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} writers never queued for the model's lock (saw {len(pids)})")
        time.sleep(0.05)


def _hold_the_lock(engine: Engine, config_path: Path) -> Any:
    conn = engine.connect()
    transaction = conn.begin()
    with engine.begin() as setup:
        model_id = load_context(setup, load_config(config_path).models[0]).model_id
    ingest_lock(conn, model_id)
    return conn, transaction


def _finish(*batches: _Batch) -> None:
    for batch in batches:
        batch.join(60)
        assert not batch.is_alive(), "a batch never finished"
        assert batch.error is None, batch.error


def _conflicts(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(RejectedRow)
                                .where(RejectedRow.reason.like("conflicting duplicate%"))).scalar_one())


WARM, _ = make_records(30, seed=20, id_prefix="w")  # every region: the slices exist before the test


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Engine, Path]:
    """A model whose slices exist (a batch that creates a slice holds its new row until the
    commit, so a second batch creating the same one would wait there, not at the lock)."""
    url = fresh_database_url("postgres", request, tmp_path)
    config_path = write_config(tmp_path, url, NAMES)
    engine = make_engine(url)
    request.addfinalizer(engine.dispose)
    warm = _Batch(engine, config_path, _deliveries(WARM, "predictions", 100_000))
    warm.run()
    assert warm.error is None and warm.result is not None and warm.result.predictions == len(WARM)
    return engine, config_path


def _expected(predictions: pd.DataFrame, labels: pd.DataFrame) -> dict[str, Any]:
    return expected_counts(pd.concat([WARM, predictions], ignore_index=True), labels)


def test_two_batches_store_their_rows_side_by_side_and_queue_only_for_the_counts(
        database: tuple[Engine, Path]) -> None:
    engine, config_path = database
    predictions, labels = make_records(400, seed=21)
    halves = [predictions.iloc[:200], predictions.iloc[200:]]
    holder, transaction = _hold_the_lock(engine, config_path)
    batches = [_Batch(engine, config_path, _deliveries(half, "predictions", 1 + 1000 * i))
               for i, half in enumerate(halves)]
    for batch in batches:
        batch.start()
    waiting = _waiting_for_the_lock(engine, 2)
    # both stopped at the lock with their predictions already written (phase one ran unlocked)
    assert all(any(t.startswith("predictions") for t in w["tables"]) for w in waiting), waiting
    transaction.commit()
    holder.close()
    _finish(*batches)
    assert sum(b.result.predictions for b in batches if b.result) == len(predictions)
    batch = _Batch(engine, config_path, _deliveries(labels, "labels", 5000))
    batch.start()
    _finish(batch)
    assert snapshot(engine) == _expected(predictions, labels)


def test_the_same_ids_stored_by_two_overlapping_batches_with_other_times_count_once(
        database: tuple[Engine, Path]) -> None:
    """Two batches hold the same prediction ids a week apart (so their rows fall in other
    partitions and the primary keys let both in): the second to take the lock finds the first
    one's ids in the log, rolls back, and on the retry rejects its own as conflicting."""
    engine, config_path = database
    predictions, labels = make_records(150, seed=22)
    moved = predictions.assign(timestamp=predictions["timestamp"] + WEEK)
    labels_later = labels.assign(label_timestamp=labels["label_timestamp"] + WEEK)
    holder, transaction = _hold_the_lock(engine, config_path)
    first = _Batch(engine, config_path, _deliveries(predictions, "predictions", 1)
                   + _deliveries(labels, "labels", 1000))
    second = _Batch(engine, config_path, _deliveries(moved, "predictions", 2000)
                    + _deliveries(labels_later, "labels", 3000))
    first.start()
    second.start()
    _waiting_for_the_lock(engine, 2)
    transaction.commit()
    holder.close()
    _finish(first, second)
    results = [first.result, second.result]
    assert all(r is not None for r in results)
    # one batch counted its records; the other, retried, rejected its predictions as
    # conflicting and skipped its labels (the same values as the stored ones)
    counted = [r for r in results if r and r.predictions == len(predictions)]
    assert len(counted) == 1, results
    assert _conflicts(engine) == len(predictions)
    found = snapshot(engine)
    with engine.connect() as conn:
        stored_ts = set(conn.execute(text("SELECT DISTINCT ts FROM predictions WHERE prediction_id LIKE 'p%'"))
                        .scalars())
    winner = predictions if stored_ts <= set(predictions["timestamp"]) else moved
    winner_labels = labels if winner is predictions else labels_later
    assert found == _expected(winner, winner_labels)


def test_a_file_batch_committed_meanwhile_is_looked_up_in_the_tables(
        database: tuple[Engine, Path], tmp_path: Path) -> None:
    """A file batch (which does not list its ids in the log) stores the same ids with other
    times while a stream batch waits for the lock: the stream batch cannot tell from the log,
    looks its ids up, finds the file's rows and retries; its predictions are then conflicts."""
    engine, config_path = database
    predictions, labels = make_records(120, seed=23)
    moved = predictions.assign(timestamp=predictions["timestamp"] + WEEK)
    path = tmp_path / "predictions.jsonl"
    path.write_text(moved.to_json(orient="records", lines=True), encoding="utf-8")
    model = load_config(config_path).models[0]
    with engine.begin() as conn:
        ctx = load_context(conn, model)
    holder, transaction = _hold_the_lock(engine, config_path)
    outcome: dict[str, Any] = {}
    files = threading.Thread(target=lambda: outcome.update(file=ingest_file(engine, ctx, "predictions", path,
                                                                             as_of=None)), daemon=True)
    files.start()
    _waiting_for_the_lock(engine, 1)  # the file batch queues first (it takes the lock first thing)
    stream = _Batch(engine, config_path, _deliveries(predictions, "predictions", 1))
    stream.start()
    waiting = _waiting_for_the_lock(engine, 2)
    assert sum(any(t.startswith("predictions") for t in w["tables"]) for w in waiting) == 1
    transaction.commit()
    holder.close()
    files.join(60)
    _finish(stream)
    assert outcome["file"].status == "done" and outcome["file"].result.accepted == len(predictions)
    assert stream.result is not None and stream.result.predictions == 0
    assert _conflicts(engine) == len(predictions)
    assert snapshot(engine) == _expected(moved, labels.iloc[:0])


def test_a_label_stored_while_its_prediction_is_stored_by_another_batch_is_counted(
        database: tuple[Engine, Path]) -> None:
    """One batch stores predictions while another stores their labels: neither sees the
    other's rows in phase one (the labels wait), and the one that commits second counts them."""
    engine, config_path = database
    predictions, labels = make_records(200, seed=24)
    holder, transaction = _hold_the_lock(engine, config_path)
    batches = [_Batch(engine, config_path, _deliveries(predictions, "predictions", 1)),
               _Batch(engine, config_path, _deliveries(labels, "labels", 1000))]
    for batch in batches:
        batch.start()
    waiting = _waiting_for_the_lock(engine, 2)
    assert {table.split("_")[0] for w in waiting for table in w["tables"]} >= {"predictions", "labels"}
    transaction.commit()
    holder.close()
    _finish(*batches)
    assert snapshot(engine) == _expected(predictions, labels)  # every label applied, no tick


def test_the_log_says_when_it_cannot_tell(database: tuple[Engine, Path]) -> None:
    """`overlaps`: False with no writer since, True on a shared id, None after a writer that
    did not list its ids or once the rows since have been pruned (then the tables are read)."""
    engine, config_path = database
    with engine.begin() as conn:
        model_id = load_context(conn, load_config(config_path).models[0]).model_id
        mine = id_hashes(["a", "b"], ["c"])
        start = writes_seen(conn, model_id)
        assert start is not None
        assert overlaps(conn, model_id, start, mine) is False
        note_writes(conn, model_id, id_hashes(["x"], ["a"]))  # "a" as a label, not a prediction
        assert overlaps(conn, model_id, start, mine) is False
        note_writes(conn, model_id, id_hashes([], ["c"]))
        assert overlaps(conn, model_id, start, mine) is True
        later = writes_seen(conn, model_id)
        note_writes(conn, model_id, None)
        assert overlaps(conn, model_id, later, mine) is None
        for _ in range(KEEP + PRUNE_EVERY):
            note_writes(conn, model_id, id_hashes(["z"], []))
        assert overlaps(conn, model_id, start, mine) is None  # its rows are gone: cannot tell
        recent = writes_seen(conn, model_id)
        note_writes(conn, model_id, id_hashes(["y"], []))
        assert overlaps(conn, model_id, recent, mine) is False

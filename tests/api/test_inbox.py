"""HTTP writes through the inbox (issue 15): queued at once, aggregated exactly once in
micro-batches, nothing lost when aggregation dies half-way; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import confusion_matrix
from sqlalchemy import func, select, text

from monitor.api import register
from monitor.api.routes import drainer, stop_background
from monitor.context import load_context
from monitor.ingest.inbox import INBOX, aggregate_rows, drain, enqueue, enqueue_records
from monitor.ingest.records import json_decoder, loads
from monitor.locking import INGEST_LOCK_SPACE
from monitor.store.db import make_engine
from monitor.store.models import ConfusionCount, Label, Prediction, PredictionCount
from tests.api.conftest import CLASSES, flush_inbox, make_config, make_records, running


def _totals(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                "predictions": conn.execute(select(func.count()).select_from(Prediction)).scalar_one(),
                "labels": conn.execute(select(func.count()).select_from(Label)).scalar_one(),
                "prediction_counts": conn.execute(select(func.coalesce(func.sum(PredictionCount.n), 0))).scalar_one(),
                "confusion_counts": conn.execute(select(func.coalesce(func.sum(ConfusionCount.n), 0))).scalar_one(),
                "inbox": conn.execute(select(func.count()).select_from(INBOX)).scalar_one(),
            }
    finally:
        engine.dispose()


def _confusion(db_url: str) -> dict[tuple[str, str], int]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(ConfusionCount.true_class, ConfusionCount.pred_class, func.sum(ConfusionCount.n))
                                .group_by(ConfusionCount.true_class, ConfusionCount.pred_class)).all()
    finally:
        engine.dispose()
    return {(t, p): int(n) for t, p, n in rows if n}


def _oracle(predictions: list[dict], labels: list[dict]) -> dict[tuple[str, str], int]:
    """Confusion counts of the records themselves, by sklearn."""
    truth = {r["prediction_id"]: r["label"] for r in labels}
    pairs = [(truth[r["prediction_id"]], r["prediction"]) for r in predictions if r["prediction_id"] in truth]
    matrix = confusion_matrix([t for t, _ in pairs], [p for _, p in pairs], labels=CLASSES)
    return {(t, p): int(matrix[i, j]) for i, t in enumerate(CLASSES) for j, p in enumerate(CLASSES) if matrix[i, j]}


def test_many_concurrent_posts_are_aggregated_exactly_once(db_url: str, tmp_path: Path, serve) -> None:
    config = make_config(db_url, tmp_path)
    base = serve(config)
    failures: list[str] = []
    sent: dict[str, list[dict]] = {"predictions": [], "labels": []}
    lock = threading.Lock()

    def client(number: int) -> None:
        for round_ in range(3):
            predictions, labels = make_records(25, seed=number * 10 + round_, prefix=f"c{number}-{round_}-")
            # odd clients send the labels before their predictions; everyone re-sends a body
            order = [("labels", labels), ("predictions", predictions)] if number % 2 else \
                [("predictions", predictions), ("labels", labels)]
            for kind, body in [*order, ("predictions", predictions), ("labels", labels)]:
                answer = requests.post(f"{base}/api/v1/models/m/{kind}", json=body, timeout=120)
                if answer.status_code != 200 or answer.json()["accepted"] != len(body):
                    failures.append(f"{kind}: {answer.status_code} {answer.text[:200]}")
            with lock:
                sent["predictions"] += predictions
                sent["labels"] += labels

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == []
    flush_inbox(config)
    n = 8 * 3 * 25
    assert _totals(db_url) == {"predictions": n, "labels": n, "prediction_counts": n, "confusion_counts": n,
                               "inbox": 0}
    assert _confusion(db_url) == _oracle(sent["predictions"], sent["labels"])
    progress = requests.get(f"{base}/api/v1/models/m/ingest", timeout=30).json()
    assert (progress["queued_predictions"], progress["queued_labels"], progress["oldest_queued_at"]) == (0, 0, None)


def test_a_drainer_pass_takes_a_backlog_in_full_batches_and_then_waits(db_url: str, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`until_empty=False` (the drainer threads) goes on while its batches are full, so a
    backlog is not left behind, and stops at the first batch that is not: what arrives
    meanwhile waits for the next pass and makes a larger batch."""
    import monitor.ingest.inbox as inbox

    monkeypatch.setattr(inbox, "BATCH_ROWS", 50)
    config = make_config(db_url, tmp_path)
    predictions, labels = make_records(120, seed=5)
    engine = make_engine(db_url)
    batches: list[int] = []
    arrived: list[bool] = []
    real = inbox.drain_model

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        drained = real(*args, **kwargs)
        batches.append(-1 if drained is None else drained.rows)
        if len(batches) == 2 and not arrived:  # rows that arrive during the pass's last batch
            arrived.append(True)
            with engine.begin() as conn:
                enqueue(conn, ctx, "labels", pd.DataFrame(labels).assign(_row=range(1, 121)), received_at=2)
        return drained

    monkeypatch.setattr(inbox, "drain_model", counted)
    try:
        with engine.begin() as conn:
            ctx = load_context(conn, config.models[0])
            enqueue(conn, ctx, "predictions", pd.DataFrame(predictions[:70]).assign(_row=range(1, 71)), received_at=1)
        assert drain(engine, config, until_empty=False) == 70  # a full batch, then one that is not
        assert batches == [50, 20]
        assert _totals(db_url)["inbox"] == 120  # the labels that came meanwhile wait for the next pass
        batches.clear()
        assert drain(engine, config) == 120  # until empty: every batch, then nothing
        assert batches == [50, 50, 20, -1]
    finally:
        engine.dispose()


def test_an_aborted_aggregation_loses_nothing_and_a_rerun_counts_once(db_url: str, tmp_path: Path) -> None:
    config = make_config(db_url, tmp_path)
    predictions, labels = make_records(120, seed=3)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            ctx = load_context(conn, config.models[0])
            # labels first, aggregated in a batch of their own: they wait for their predictions
            enqueue(conn, ctx, "labels", pd.DataFrame(labels).assign(_row=range(1, 121)), received_at=1)
        assert drain(engine, config, wait=True) == 120
        with engine.begin() as conn:
            enqueue(conn, ctx, "predictions", pd.DataFrame(predictions).assign(_row=range(1, 121)), received_at=2)
        # a crash half-way: the batch is aggregated, then its transaction dies before commit
        with pytest.raises(RuntimeError), engine.begin() as conn:
            rows = [tuple(r) for r in conn.execute(select(INBOX.c.id, INBOX.c.kind, INBOX.c.received_at,
                                                          INBOX.c.row_number, INBOX.c.record)).all()]
            aggregate_rows(conn, ctx, rows)
            raise RuntimeError("killed mid-batch")
        assert _totals(db_url) == {"predictions": 0, "labels": 120, "prediction_counts": 0, "confusion_counts": 0,
                                   "inbox": 120}
        assert drain(engine, config, wait=True) == 120
        assert drain(engine, config, wait=True) == 0
    finally:
        engine.dispose()
    assert _totals(db_url) == {"predictions": 120, "labels": 120, "prediction_counts": 120,
                               "confusion_counts": 120, "inbox": 0}
    assert _confusion(db_url) == _oracle(predictions, labels)


ODD_BODY = """[
 {"s": "back\\\\slash \\"quoted\\" tab\\t nl\\n cr\\r \\\\N \\u00e9 \\u2028 \\ud83d\\ude00", "n": 1},
 {"big": 123456789012345678901234567890, "neg": -9223372036854775809, "edge": 9223372036854775807},
 {"nan": NaN, "inf": Infinity, "minf": -Infinity, "huge": 1e400},
 {"tiny": 5e-324, "f": 0.1, "negzero": -0.0, "e": 1e-7, "g": 1.7976931348623157e308, "x": 12.50},
 {"nested": [null, 1, "a\\\\b", {"k": [1.5, null]}], "t": true, "u": false}
]"""


def test_queued_records_read_back_as_python_json_writes_them(db_url: str, tmp_path: Path) -> None:
    """The inbox's text of each record (orjson, or json where orjson differs) parses back to
    the values json itself would have stored, through COPY's escaping on PostgreSQL."""
    config = make_config(db_url, tmp_path)
    records = loads(json_decoder(100), ODD_BODY) + [{"plain": [float("inf"), float("nan"), -1.5]}]
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            ctx = load_context(conn, config.models[0])
            enqueue_records(conn, ctx, "predictions", list(enumerate(records, start=1)), received_at=7)
            stored = conn.execute(select(INBOX.c.row_number, INBOX.c.received_at, INBOX.c.record)
                                  .order_by(INBOX.c.id)).all()
    finally:
        engine.dispose()
    assert [(number, received) for number, received, _ in stored] == [(n, 7) for n in range(1, 7)]
    for (_, _, queued), record in zip(stored, records, strict=True):
        expected = json.loads(json.dumps(record, ensure_ascii=False))
        # dumped again for the comparison: NaN != NaN
        assert json.dumps(json.loads(queued)) == json.dumps(expected)


def test_wait_true_answers_the_counts_of_a_direct_write(db_url: str, tmp_path: Path, serve) -> None:
    base = serve(make_config(db_url, tmp_path))
    url = f"{base}/api/v1/models/m/predictions"
    predictions, labels = make_records(40, seed=5)
    queued = requests.post(url, json=predictions[:20], timeout=30).json()  # queued, aggregated later
    assert (queued["accepted"], queued["queued"], queued["skipped"]) == (20, 20, 0)
    conflict = {**predictions[0], "prediction": "rare" if predictions[0]["prediction"] == "ok" else "ok"}
    answer = requests.post(url, json=[*predictions, conflict], params={"wait": "true"}, timeout=30).json()
    # the queued rows went first: 20 of these are skipped, the changed copy is a conflict
    assert (answer["accepted"], answer["skipped"], answer["rejected"], answer["queued"]) == (20, 20, 1, 0)
    assert answer["rejects"][0]["row"] == 41 and "conflicting duplicate" in answer["rejects"][0]["reason"]
    label_answer = requests.post(f"{base}/api/v1/models/m/labels", json=labels, params={"wait": "1"}, timeout=30)
    assert label_answer.json()["accepted"] == 40
    assert _totals(db_url)["confusion_counts"] == 40
    assert requests.post(url, json=[], params={"wait": "maybe"}, timeout=30).status_code == 400


def _app_with_stopped_drainer(config) -> Flask:  # type: ignore[no-untyped-def]
    app = Flask("test-inbox")
    register(app, config)
    drainer(app).stop()  # rows stay queued until the test drains them
    return app


def test_a_write_on_a_connection_the_server_closed_is_retried_on_a_new_one(db_url: str, tmp_path: Path) -> None:
    """The write engine and the health check's do not ping before each checkout: after the
    server dropped their connections (a restart, an idle timeout), the next POST and the next
    /healthz fail once, inside, and succeed on a new connection, with nothing lost or doubled."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite connections are not closed by a server")
    config = make_config(db_url, tmp_path)
    app = _app_with_stopped_drainer(config)
    predictions, _ = make_records(40, seed=11)
    admin = make_engine(db_url)
    try:
        with running(app) as base:
            first = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions[:20], timeout=30)
            assert requests.get(f"{base}/healthz", timeout=30).status_code == 200  # its pool holds a connection
            with admin.connect() as conn:  # every other session of this database, the API's pool included
                killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
            second = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions[20:], timeout=30)
            health = requests.get(f"{base}/healthz", timeout=30)  # no ping either: retried once
        flush_inbox(config)
    finally:
        stop_background(app)
        admin.dispose()
    assert killed >= 1
    assert first.status_code == 200 and second.status_code == 200, second.text
    assert health.status_code == 200, health.text
    assert second.json()["accepted"] == 20
    assert _totals(db_url)["predictions"] == 40


def test_queued_rows_show_in_the_answer_the_ingest_route_and_metrics(db_url: str, tmp_path: Path) -> None:
    config = make_config(db_url, tmp_path)
    app = _app_with_stopped_drainer(config)
    predictions, labels = make_records(30, seed=9)
    try:
        with running(app) as base:
            answer = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions, timeout=30).json()
            ndjson = "\n".join(json.dumps(r) for r in labels[:10])
            requests.post(f"{base}/api/v1/models/m/labels", data=ndjson, timeout=30,
                          headers={"Content-Type": "application/x-ndjson"}).raise_for_status()
            progress = requests.get(f"{base}/api/v1/models/m/ingest", timeout=30).json()
            families = {f.name: f for f in text_string_to_metric_families(requests.get(f"{base}/metrics", timeout=30).text)}
            assert _totals(db_url)["predictions"] == 0
            flush_inbox(config)
            after = requests.get(f"{base}/api/v1/models/m/ingest", timeout=30).json()
    finally:
        stop_background(app)
        if app.extensions["monitor_api"].get("engine") is not None:
            app.extensions["monitor_api"]["engine"].dispose()
    assert (answer["accepted"], answer["queued"], answer["skipped"], answer["waiting"]) == (30, 30, 0, 0)
    assert answer["aggregated_through"] <= progress["oldest_queued_at"] == progress["aggregated_through"]
    assert (progress["queued_predictions"], progress["queued_labels"]) == (30, 10)
    depth = {s.labels["kind"]: s.value for s in families["classifier_monitor_inbox_rows"].samples}
    assert depth == {"predictions": 30.0, "labels": 10.0}
    assert families["classifier_monitor_inbox_oldest_age_seconds"].samples[0].value >= 0
    assert (after["queued_predictions"], after["queued_labels"], after["oldest_queued_at"]) == (0, 0, None)
    assert after["aggregated_through"] >= progress["aggregated_through"]
    assert _totals(db_url)["confusion_counts"] == 10


def test_healthz_and_queued_writes_answer_while_a_writer_holds_the_models_lock(db_url: str, tmp_path: Path,
                                                                              serve) -> None:
    config = make_config(db_url, tmp_path)
    base = serve(config)
    predictions, _ = make_records(20, seed=11)
    requests.post(f"{base}/api/v1/models/m/predictions", json=predictions[:5], params={"wait": "true"},
                  timeout=30).raise_for_status()  # the model exists
    engine = make_engine(db_url)
    blocked: list[requests.Response] = []
    try:
        with engine.begin() as conn:  # a writer of the model, holding its lock (SQLite: the write lock)
            if conn.dialect.name == "postgresql":
                model_id = conn.execute(text("SELECT id FROM monitored_models WHERE name = 'm'")).scalar_one()
                conn.execute(text("SELECT pg_advisory_xact_lock(:s, :m)"), {"s": INGEST_LOCK_SPACE, "m": model_id})
            else:
                conn.execute(text("UPDATE monitored_models SET name = name"))
            waiting = threading.Thread(target=lambda: blocked.append(requests.post(
                f"{base}/api/v1/models/m/predictions", json=predictions[5:10], params={"wait": "true"}, timeout=120)))
            waiting.start()
            health = requests.get(f"{base}/healthz", timeout=30)
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            if conn.dialect.name == "postgresql":  # the inbox write takes no model lock
                queued = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions[10:], timeout=30)
                assert queued.json()["queued"] == 10
            assert not blocked  # the waiting write is still queued behind the lock
        waiting.join(timeout=120)
    finally:
        engine.dispose()
    assert blocked[0].status_code == 200 and blocked[0].json()["accepted"] == 5
    flush_inbox(config)
    assert _totals(db_url)["predictions"] == (20 if db_url.startswith("postgresql") else 10)


def test_a_write_aggregates_a_batch_itself_when_rows_have_waited_too_long(db_url: str, tmp_path: Path) -> None:
    """Rows left by a process that died long ago (and no drainer running): the next write
    aggregates them before it answers (backpressure), exactly once."""
    config = make_config(db_url, tmp_path)
    predictions, labels = make_records(60, seed=13)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            ctx = load_context(conn, config.models[0])
            enqueue(conn, ctx, "predictions", pd.DataFrame(predictions[:50]).assign(_row=range(1, 51)), received_at=1)
    finally:
        engine.dispose()
    app = _app_with_stopped_drainer(config)
    try:
        with running(app) as base:
            answer = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions[40:], timeout=30).json()
            progress = requests.get(f"{base}/api/v1/models/m/ingest", timeout=30).json()
    finally:
        stop_background(app)
        if app.extensions["monitor_api"].get("engine") is not None:
            app.extensions["monitor_api"]["engine"].dispose()
    assert (answer["accepted"], answer["queued"]) == (20, 20)
    # the old rows and this body's were one batch: 60 predictions, the 10 sent twice counted once
    assert _totals(db_url) == {"predictions": 60, "labels": 0, "prediction_counts": 60, "confusion_counts": 0,
                               "inbox": 0}
    assert progress["queued_predictions"] == 0


def test_the_schedulers_drainer_thread_aggregates_what_a_dead_api_process_queued(db_url: str,
                                                                                tmp_path: Path) -> None:
    import time

    from monitor.ingest.inbox import Drainer

    config = make_config(db_url, tmp_path)
    predictions, labels = make_records(40, seed=17)
    engine = make_engine(db_url)
    drainer_thread = Drainer(lambda: engine, config, interval=0.05, gap=0.0, idle_exit=float("inf"))
    try:
        with engine.begin() as conn:  # queued by an API process that died before aggregating
            ctx = load_context(conn, config.models[0])
            enqueue(conn, ctx, "labels", pd.DataFrame(labels).assign(_row=range(1, 41)), received_at=1)
            enqueue(conn, ctx, "predictions", pd.DataFrame(predictions).assign(_row=range(1, 41)), received_at=2)
        drainer_thread.nudge()  # as `monitor run` starts it
        for _ in range(1200):  # a bound, not a timing: the thread drains within a few polls
            if _totals(db_url)["inbox"] == 0:
                break
            time.sleep(0.05)
    finally:
        drainer_thread.stop()
        engine.dispose()
    assert _totals(db_url) == {"predictions": 40, "labels": 40, "prediction_counts": 40, "confusion_counts": 40,
                               "inbox": 0}
    assert _confusion(db_url) == _oracle(predictions, labels)


def test_the_drainer_vacuums_the_inbox_it_emptied_on_postgresql(db_url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every deleted inbox row stays a dead tuple until a vacuum (none while autovacuum is off,
    as on this test server): after VACUUM_AFTER_ROWS drained rows a drainer thread vacuums the
    table, so the next rows reuse the space instead of growing it."""
    import time

    import monitor.ingest.inbox as inbox

    monkeypatch.setattr(inbox, "VACUUM_AFTER_ROWS", 100)
    calls: list[int] = []
    real = inbox.vacuum_inbox
    monkeypatch.setattr(inbox, "vacuum_inbox", lambda engine: (calls.append(1), real(engine)))
    config = make_config(db_url, tmp_path)
    predictions, labels = make_records(300, seed=19)
    engine = make_engine(db_url)
    drainer_thread = inbox.Drainer(lambda: engine, config, interval=0.05, gap=0.0, idle_exit=float("inf"))

    def queue() -> None:
        with engine.begin() as conn:
            enqueue(conn, ctx, "predictions", pd.DataFrame(predictions).assign(_row=range(1, 301)), received_at=1)
            enqueue(conn, ctx, "labels", pd.DataFrame(labels).assign(_row=range(1, 301)), received_at=2)

    def size() -> int:
        with engine.connect() as conn:
            found = int(conn.exec_driver_sql("SELECT pg_relation_size('inbox')").scalar_one())
            conn.rollback()
        return found

    try:
        with engine.begin() as conn:
            ctx = load_context(conn, config.models[0])
        queue()
        drainer_thread.nudge()
        for _ in range(1200):  # a bound, not a timing
            if calls and _totals(db_url)["inbox"] == 0:
                break
            time.sleep(0.05)
    finally:
        drainer_thread.stop()
    try:
        assert calls, "the drainer did not vacuum after 600 rows left the inbox"
        assert _totals(db_url)["inbox"] == 0
        if engine.dialect.name == "postgresql":
            emptied = size()
            assert emptied > 0  # no truncation (it would lock out the writers): the pages stay
            queue()  # the same rows again: they go into the space the vacuum freed
            assert size() <= emptied  # without the vacuum the dead rows hold it: the table doubles
        else:
            real(engine)  # nothing to do on SQLite, and no error
    finally:
        engine.dispose()


def test_a_conflict_found_at_aggregation_is_stored_as_a_reject_with_its_body_row(db_url: str, tmp_path: Path,
                                                                                serve) -> None:
    from monitor.store.models import RejectedRow

    config = make_config(db_url, tmp_path)
    base = serve(config)
    predictions, _ = make_records(10, seed=19)
    changed = {**predictions[3], "region": "elsewhere"}
    for body in (predictions, [predictions[0], changed, predictions[5]]):  # one same copy, one conflict
        answer = requests.post(f"{base}/api/v1/models/m/predictions", json=body, timeout=30).json()
        assert (answer["accepted"], answer["rejected"]) == (len(body), 0)  # not known before aggregation
    flush_inbox(config)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rejects = conn.execute(select(RejectedRow.source, RejectedRow.row_number, RejectedRow.reason)).all()
    finally:
        engine.dispose()
    assert _totals(db_url)["predictions"] == 10
    assert [(source, row) for source, row, _ in rejects] == [("api", 2)]
    assert "conflicting duplicate prediction" in rejects[0][2]

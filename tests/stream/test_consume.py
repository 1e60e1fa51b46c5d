"""`monitor consume` in this process against the real NATS JetStream server, on SQLite and
PostgreSQL: exact counts (against the same records ingested from files, and against counts
computed with pandas), redelivery after a commit that was never acknowledged, poison
messages and bad records rejected while the rest flows, and the consumer's row on /metrics.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.api.prometheus import render
from monitor.config import load_config
from monitor.context import load_context
from monitor.ingest.ledger import ingest_file
from monitor.store.db import make_engine
from monitor.store.models import RejectedRow
from monitor.stream.consumer import RunOptions, ingest_batch, run
from monitor.stream.jetstream import JetStreamSource
from monitor.stream.status import consumers
from tests.conftest import fresh_database_url
from tests.stream.conftest import (
    StreamNames,
    as_messages,
    expected_counts,
    make_records,
    publish,
    snapshot,
    write_config,
)

IDLE = 1.0  # seconds without a message before an in-process consumer returns


def _consume(config_path: Path, **options: object) -> object:
    config = load_config(config_path)
    model = config.models[0]
    assert model.stream is not None
    engine = make_engine(config.database_url)
    try:
        return run(JetStreamSource(model.stream, model.name), engine, model,
                   RunOptions(until_idle=options.get("until_idle", IDLE)))  # type: ignore[arg-type]
    finally:
        engine.dispose()


def _file_oracle(tmp_path: Path, url: str, names: StreamNames, predictions, labels) -> dict:  # type: ignore[no-untyped-def]
    """The same records ingested from JSON-lines files (the file path of the monitor)."""
    (tmp_path / "files").mkdir()
    config = load_config(write_config(tmp_path / "files", url, names))
    model = config.models[0]
    engine = make_engine(url)
    with engine.begin() as conn:
        ctx = load_context(conn, model)
    for kind, frame in (("predictions", predictions), ("labels", labels)):
        path = tmp_path / "files" / f"{kind}.jsonl"
        path.write_text(frame.to_json(orient="records", lines=True), encoding="utf-8")
        outcome = ingest_file(engine, ctx, kind, path, as_of=None)
        assert outcome.status == "done" and outcome.result.rejected == 0, outcome
    found = snapshot(engine)
    engine.dispose()
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_predictions_then_late_labels_count_exactly(backend: str, names: StreamNames, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    predictions, labels = make_records(600, seed=1)
    # a few labels come before their predictions (stored pending, applied when they come)
    early, late = labels.iloc[:40], labels.iloc[40:]
    messages = (as_messages(early, names.labels, per_message=7, seed=2)
                + as_messages(predictions, names.predictions, per_message=25, seed=3)
                + as_messages(late, names.labels, per_message=25, seed=4))
    publish(names, messages)
    url = fresh_database_url(backend, request, tmp_path)
    config = write_config(tmp_path, url, names, batch_size=40, max_wait=0.3)
    totals = _consume(config)
    assert (totals.messages, totals.predictions, totals.labels, totals.rejected) == (  # type: ignore[attr-defined]
        len(messages), len(predictions), len(labels), 0)
    engine = make_engine(url)
    found = snapshot(engine)
    assert found == expected_counts(predictions, labels)
    oracle_url = fresh_database_url(backend, request, tmp_path)
    assert found == _file_oracle(tmp_path, oracle_url, names, predictions, labels)

    # the same records published again (a producer retrying) change nothing
    publish(names, messages[::5])
    again = _consume(config)
    assert again.predictions == again.labels == 0 and again.skipped > 0  # type: ignore[attr-defined]
    assert snapshot(engine) == found
    with engine.connect() as conn:
        row = consumers(conn).iloc[0]
    assert row["messages"] == len(messages) + len(messages[::5])
    assert (row["predictions"], row["labels"], row["pending"], row["ack_pending"]) == (
        len(predictions), len(labels), 0, 0)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_labels_published_before_their_predictions_count_without_a_tick(
        backend: str, names: StreamNames, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Every label comes first and the stream ends with predictions: the consumer counts the
    waiting labels when their predictions come, with no scheduler tick and no later label."""
    predictions, labels = make_records(300, seed=13)
    messages = (as_messages(labels, names.labels, per_message=10, seed=14)
                + as_messages(predictions, names.predictions, per_message=10, seed=15))
    publish(names, messages)
    url = fresh_database_url(backend, request, tmp_path)
    config = write_config(tmp_path, url, names, batch_size=len(messages) // 4, max_wait=0.3)
    totals = _consume(config)
    assert (totals.predictions, totals.labels) == (len(predictions), len(labels))  # type: ignore[attr-defined]
    engine = make_engine(url)
    assert snapshot(engine) == expected_counts(predictions, labels)
    engine.dispose()


def test_a_batch_committed_but_never_acknowledged_is_skipped_when_delivered_again(
        names: StreamNames, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The consumer dies between commit and acknowledgement: the broker delivers the batch
    again (after ack_wait) and the prediction ids make it a no-op."""
    predictions, labels = make_records(200, seed=5)
    messages = (as_messages(predictions, names.predictions, per_message=10, seed=6)
                + as_messages(labels, names.labels, per_message=10, seed=7))
    publish(names, messages)
    url = fresh_database_url("sqlite", request, tmp_path)
    config_path = write_config(tmp_path, url, names, batch_size=len(messages) // 2, max_wait=1, ack_wait="1s")
    model = load_config(config_path).models[0]
    assert model.stream is not None
    engine = make_engine(url)
    source = JetStreamSource(model.stream, model.name)
    source.open()
    batch = source.fetch(model.stream.batch_size, 2.0)
    assert len(batch) == model.stream.batch_size
    committed = ingest_batch(engine, model, batch, stream=source.name, consumer=source.consumer)
    assert committed.predictions > 0
    source.close()  # "killed": committed, never acknowledged

    totals = _consume(config_path, until_idle=3.0)  # ack_wait (1 s) passes: the batch comes back
    assert totals.redelivered == len(batch)  # type: ignore[attr-defined]
    assert committed.predictions + totals.predictions == len(predictions)  # type: ignore[attr-defined]
    assert committed.labels + totals.labels == len(labels)  # type: ignore[attr-defined]
    assert snapshot(engine) == expected_counts(predictions, labels)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_poison_messages_and_bad_records_are_rejected_while_the_rest_flows(
        backend: str, names: StreamNames, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    predictions, labels = make_records(120, seed=8)
    good = as_messages(predictions, names.predictions, per_message=10, seed=9)
    poison = [
        (names.predictions, b"this is not JSON {"),
        (names.predictions, b"\xff\xfe not UTF-8"),
        (names.labels, b'"a bare string"'),
        (names.predictions, b""),
    ]
    bad_records = [(names.predictions, json.dumps([
        {"prediction_id": "bad-class", "timestamp": 1_790_000_000, "prediction": "no-such-class", "region": "eu"},
        {"prediction_id": "nested", "timestamp": 1_790_000_000, "prediction": "ok", "region": {"a": 1}},
        "not an object",
    ]).encode())]
    messages = poison[:2] + good[:5] + poison[2:] + bad_records + good[5:] + as_messages(
        labels, names.labels, per_message=10, seed=10)
    publish(names, messages)
    letters: list[dict] = []

    url = fresh_database_url(backend, request, tmp_path)
    config = write_config(tmp_path, url, names, batch_size=8, max_wait=0.3, dead_letter_subject=names.dead_letters)

    async def listen() -> None:  # the dead letters, on a core subscription while the consumer runs
        import nats

        nc = await nats.connect(names.url)
        sub = await nc.subscribe(names.dead_letters)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _consume, config)
        await nc.flush()
        while True:
            try:
                letters.append(json.loads((await sub.next_msg(timeout=1)).data))
            except Exception:  # noqa: BLE001 - no more
                break
        await nc.close()

    asyncio.run(listen())
    engine = make_engine(url)
    assert snapshot(engine) == expected_counts(predictions, labels)
    with engine.connect() as conn:
        rejects = conn.execute(select(RejectedRow.kind, RejectedRow.source, RejectedRow.row_number,
                                      RejectedRow.field, RejectedRow.reason)).all()
    reasons = sorted(r.reason for r in rejects)
    assert {r.source for r in rejects} == {"stream"}
    assert len(rejects) == 7, reasons
    assert any("not valid JSON" in r for r in reasons)
    assert any("not UTF-8" in r for r in reasons)
    assert any("a string, not a JSON record" in r for r in reasons)
    assert any("empty" in r for r in reasons)
    assert any("unknown class 'no-such-class'" in r for r in reasons)
    assert any("nested JSON" in r for r in reasons)
    assert any("record is a string, not a JSON object" in r for r in reasons)
    # row_number is the message's stream sequence: the first poison message was the first published
    assert min(r.row_number for r in rejects) == 1
    assert sorted(letter["reason"] for letter in letters) == reasons
    with engine.connect() as conn:
        row = consumers(conn).iloc[0]
    assert (row["pending"], row["ack_pending"], row["rejected"]) == (0, 0, 7)  # nothing stuck
    engine.dispose()


def test_consumer_lag_is_exported_on_metrics(names: StreamNames, tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    predictions, _ = make_records(50, seed=11)
    publish(names, as_messages(predictions, names.predictions, per_message=5, seed=12))
    url = fresh_database_url("sqlite", request, tmp_path)
    config_path = write_config(tmp_path, url, names, batch_size=4, max_wait=0.3)
    config = load_config(config_path)
    model = config.models[0]
    assert model.stream is not None
    engine = make_engine(url)
    run(JetStreamSource(model.stream, model.name), engine, model, RunOptions(max_batches=1))
    text = render(config, lambda: engine).decode()
    labels = f'consumer="monitor",model="{names.model}",stream="{names.stream}"'
    pending = [line for line in text.splitlines() if line.startswith(f"classifier_monitor_stream_pending{{{labels}}}")]
    assert pending and float(pending[0].split()[-1]) > 0  # one batch of four taken, the rest waits
    assert f'classifier_monitor_stream_messages{{{labels}}} 4.0' in text
    assert "classifier_monitor_stream_lag_seconds{" in text
    engine.dispose()

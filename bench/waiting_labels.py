"""Benchmark: stream batches while labels whose prediction never comes pile up, against the
same batches with none waiting, in the same run (issue 17).

    python bench/waiting_labels.py [--predictions 100000] [--waiting 80000] [--repeats 2]
                                   [--db-url postgresql://postgres@127.0.0.1:5432/test]

A label whose prediction is never logged (a sampled log, a lost message) waits for ever. A
stream batch should not pay for it: it looks only at the waiting labels of the ids it stored
(`monitor.ingest.labels.apply_labels_with(scope=...)`, by the partial index of migration 0015).
For each repeat, two fresh PostgreSQL databases get the same stream batches through
`monitor.stream.consumer.ingest_batch` (in this process, no broker: 1,000 messages of 10
records a batch, predictions and then their labels, as bench/stream.py publishes them); the
second database first takes `--waiting` labels for ids that never come. It prints the rate of
each and their ratio (1.0 means the waiting labels cost nothing), and checks that the counts
are the same in both. The machine is shared: the figures are indicative.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from bench.stream import Database, messages, records, snapshot, write_config  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.models import Label  # noqa: E402
from monitor.stream.consumer import ingest_batch  # noqa: E402
from monitor.stream.source import Delivery  # noqa: E402

BATCH = 1000  # messages
PER_MESSAGE = 10


def deliveries(predictions, labels) -> list[Delivery]:  # type: ignore[no-untyped-def]
    """The prediction messages, then the label messages."""
    kinds = [(m, "predictions") for m in messages(predictions, PER_MESSAGE)]
    kinds += [(m, "labels") for m in messages(labels, PER_MESSAGE)]
    return [Delivery(m, f"bench.{kind}", kind, 1 + n, time.time()) for n, (m, kind) in enumerate(kinds)]


def run(db_url: str, batches: list[list[Delivery]], waiting: list[list[Delivery]]) -> tuple[float, dict, int]:
    """Seconds for `batches` after `waiting` went in, the counts, and how many labels waited."""
    with Database(db_url) as db, tempfile.TemporaryDirectory() as directory:
        model = load_config(write_config(Path(directory), db.url, "nats://127.0.0.1:4222", "bench", BATCH)).models[0]
        engine = make_engine(db.url)
        try:
            for batch in waiting:
                ingest_batch(engine, model, batch, stream="bench", consumer="bench")
            with engine.begin() as conn:
                conn.execute(text("ANALYZE predictions, labels"))
                stuck = conn.execute(select(func.count()).select_from(Label).where(Label.needs_apply)).scalar_one()
            started = time.perf_counter()
            for batch in batches:
                ingest_batch(engine, model, batch, stream="bench", consumer="bench")
            seconds = time.perf_counter() - started
            counts = snapshot(engine)
        finally:
            engine.dispose()
    return seconds, counts, int(stuck)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--waiting", type=int, default=80_000, help="labels whose prediction never comes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--db-url", default=os.environ.get("MONITOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()

    predictions, labels = records(args.predictions)
    stream = deliveries(predictions, labels)
    batches = [stream[i:i + BATCH] for i in range(0, len(stream), BATCH)]
    _, lost = records(max(args.waiting * 2, 10), seed=11)
    lost = lost.head(args.waiting)
    lost = lost.assign(prediction_id=[f"lost{i}" for i in range(len(lost))])
    orphans = [Delivery(m, "bench.labels", "labels", 10_000_000 + n, time.time())
               for n, m in enumerate(messages(lost, PER_MESSAGE))]
    waiting = [orphans[i:i + BATCH] for i in range(0, len(orphans), BATCH)]
    run(args.db_url, batches[:2], [])  # warm-up: imports, first connections
    print(f"{len(predictions):,} predictions and {len(labels):,} labels in {len(batches)} batches of {BATCH} "
          f"messages; PostgreSQL; {len(lost):,} labels waiting for predictions that never come")
    for repeat in range(1, args.repeats + 1):
        base, counts, _ = run(args.db_url, batches, [])
        piled, piled_counts, stuck = run(args.db_url, batches, waiting)
        same = {k: v for k, v in piled_counts.items() if k != "labels"} == {k: v for k, v in counts.items() if k != "labels"}
        print(f"run {repeat}: none waiting {len(predictions) / base:,.0f} predictions/s; {stuck:,} waiting "
              f"{len(predictions) / piled:,.0f} predictions/s: {piled / base:.2f}x the time (target about 1.0); "
              f"counts the same: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()

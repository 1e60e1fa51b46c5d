"""Benchmark: stream ingestion from NATS JetStream on PostgreSQL, 1 then 2 `monitor consume`
processes, against the database write path alone in the same run.

    python bench/stream.py [--rate 5000] [--seconds 6] [--per-message 10] [--batch-size 1000]
                           [--consumers 1,2] [--phases backlog,paced] [--baseline 30000] [--analyze-every 30]
                           [--random-page-cost 1.1]
                           [--db-url postgresql://postgres@127.0.0.1:5432/test] [--nats-url nats://127.0.0.1:4222]

Data: `--rate` x `--seconds` predictions (3 classes, one segment) and labels for 80% of
them, as JSON arrays of `--per-message` records. Each run gets a fresh PostgreSQL database
(made on the server of `--db-url`, dropped after) and a stream of its own (deleted after); the
consumers are subprocesses of `monitor consume --until-idle`. Once they are pulling, a
warm-up (the first 5% of the predictions, at most 2,000: imports, connections, first slices)
is ingested unmeasured. Then, for 1 and for 2 consumers:

- backlog: everything published at once (the predictions, then the labels): the rate at
  which the consumers drain it, from the first publish to the first moment every prediction
  and label is stored: their capacity;
- paced: the predictions at `--rate` per second, each label about two seconds after its
  prediction: the rates achieved and the end-to-end lag p50/p99 of the predictions, from
  publish to visible in the database (the database is polled every 0.2 s for the number of
  stored predictions; the k-th counts as visible when that number reaches k: exact for one
  consumer; with two, batches may commit out of order, an error of at most a batch). A lag
  that grows with `--seconds` means the consumers fell behind;
- exactness, in both: every count in the database equals the counts computed with pandas
  from the published records (nothing lost, nothing doubled).

Planner statistics: a production server's autovacuum keeps them fresh as the weekly
partitions fill; on a server with `autovacuum = off` (the development machine's) the bench
runs `ANALYZE predictions, labels` every 30 s of a phase in its place (`--analyze-every`,
0 for never), and says so in its first lines. Without statistics PostgreSQL takes a model's
rows in this week's partition to be few and reads all of them for each id lookup, a cost that
grows with every batch; with them it turns to the primary key's index once that is cheaper.

Baseline (same run): the same records ingested by `ingest_frame` in batches of the same size
directly (no broker, no subprocess), the database write path's own rate; each run prints its
ratio to it. The machine is shared (two cores, other jobs): the figures are indicative; the
load average is printed with each line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.config import load_config  # noqa: E402
from monitor.context import load_context  # noqa: E402
from monitor.ingest.pipeline import ingest_frame  # noqa: E402
from monitor.ingest.records import records_frame  # noqa: E402
from monitor.locking import ingest_lock  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402
from monitor.store.models import ConfusionCount, Label, Prediction, PredictionCount  # noqa: E402

CLASSES = ["ok", "fraud", "review"]
REGIONS = ["eu", "us", "apac"]
LABEL_DELAY = 2.0  # seconds between a prediction's publish and its label's


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def records(n: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    t0 = int(time.time()) - 7 * 86400
    ts = t0 + np.sort(rng.integers(0, 7 * 86400, n))
    truth = rng.choice(CLASSES, n, p=[0.8, 0.1, 0.1])
    predicted = np.where(rng.random(n) < 0.7, truth, rng.choice(CLASSES, n))
    predictions = pd.DataFrame({"prediction_id": [f"p{i}" for i in range(n)], "timestamp": ts,
                                "prediction": predicted, "region": rng.choice(REGIONS, n)})
    labelled = rng.random(n) < 0.8
    labels = pd.DataFrame({"prediction_id": predictions["prediction_id"][labelled].to_numpy(), "label": truth[labelled],
                           "label_timestamp": ts[labelled] + 3600})
    return predictions, labels


def expected(predictions: pd.DataFrame, labels: pd.DataFrame) -> dict:
    buckets = predictions.assign(bucket=predictions["timestamp"] - predictions["timestamp"] % 3600)
    joined = buckets.merge(labels, on="prediction_id")
    return {"predictions": len(predictions), "labels": len(labels), "applied": len(joined),
            "prediction_counts": sorted((int(b), c, int(n)) for (b, c), n in buckets.groupby(["bucket", "prediction"]).size().items()),
            "confusion_counts": sorted((int(b), t, p, int(n)) for (b, t, p), n in
                                       joined.groupby(["bucket", "label", "prediction"]).size().items())}


def snapshot(engine) -> dict:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        def rows(statement) -> list:  # type: ignore[no-untyped-def]
            return sorted(tuple(int(v) if not isinstance(v, str) else v for v in r) for r in conn.execute(statement).all())

        return {
            "predictions": conn.execute(select(func.count()).select_from(Prediction)).scalar_one(),
            "labels": conn.execute(select(func.count()).select_from(Label)).scalar_one(),
            "applied": conn.execute(select(func.count()).select_from(Label).where(Label.applied_label.is_not(None))).scalar_one(),
            "prediction_counts": rows(select(PredictionCount.bucket_start, PredictionCount.pred_class, func.sum(PredictionCount.n))
                                      .group_by(PredictionCount.bucket_start, PredictionCount.pred_class)),
            "confusion_counts": rows(select(ConfusionCount.bucket_start, ConfusionCount.true_class, ConfusionCount.pred_class,
                                            func.sum(ConfusionCount.n))
                                     .group_by(ConfusionCount.bucket_start, ConfusionCount.true_class, ConfusionCount.pred_class)),
        }


class Database:
    """A fresh migrated database on the server of `admin_url`, dropped on exit."""

    random_page_cost: float | None = None  # set on every database made (--random-page-cost)

    def __init__(self, admin_url: str) -> None:
        self.admin = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
        self.name = f"bench_stream_{uuid.uuid4().hex[:8]}"
        self.url = f"{admin_url.rpartition('/')[0]}/{self.name}"

    def __enter__(self) -> Database:
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            if self.random_page_cost is not None:
                conn.execute(text(f'ALTER DATABASE "{self.name}" SET random_page_cost = {float(self.random_page_cost)}'))
        engine = make_engine(self.url)
        upgrade(engine)
        engine.dispose()
        return self

    def __exit__(self, *_: object) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def write_config(directory: Path, url: str, nats_url: str, stream: str, batch_size: int) -> Path:
    path = directory / "monitor.toml"
    path.write_text(f'database_url = "{url}"\n\n[[models]]\nname = "bench"\nclasses = {json.dumps(CLASSES)}\n'
                    f'minority_classes = ["fraud"]\nsegments = ["region"]\n\n[models.stream]\nurl = "{nats_url}"\n'
                    f'stream = "{stream}"\npredictions_subject = "{stream}.predictions"\n'
                    f'labels_subject = "{stream}.labels"\nbatch_size = {batch_size}\nmax_wait = 0.5\n', encoding="utf-8")
    return path


def messages(frame: pd.DataFrame, per_message: int) -> list[bytes]:
    rows = json.loads(frame.to_json(orient="records"))
    return [json.dumps(rows[i:i + per_message]).encode() for i in range(0, len(rows), per_message)]


def schedule(predictions: pd.DataFrame, labels: pd.DataFrame, rate: float, per_message: int
             ) -> list[tuple[float, str, bytes, int]]:
    """(seconds after the start, kind, payload, index of its first prediction or -1) of every
    message: predictions at `rate`, each label LABEL_DELAY after its prediction (a label of a
    prediction not in `predictions` at the start)."""
    plan = [(first / rate, "predictions", payload, first)
            for first, payload in zip(range(0, len(predictions), per_message), messages(predictions, per_message))]
    position = {pid: i for i, pid in enumerate(predictions["prediction_id"])}
    ordered = labels.assign(at=labels["prediction_id"].map(position).fillna(0)).sort_values("at", kind="stable")
    for i in range(0, len(ordered), per_message):
        chunk = ordered.iloc[i:i + per_message]
        plan.append((float(chunk["at"].max()) / rate + LABEL_DELAY, "labels",
                     chunk.drop(columns="at").to_json(orient="records").encode(), -1))
    return sorted(plan, key=lambda item: item[0])


async def publish(nats_url: str, stream: str, plan: list[tuple[float, str, bytes, int]], n: int,
                  per_message: int) -> tuple[np.ndarray, float]:
    """Publish on schedule; returns the publish time of each prediction (by index) and the
    prediction rate achieved."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    published = np.zeros(n)
    start = time.time()
    acks = []
    for number, (due, kind, payload, first) in enumerate(plan):
        wait = start + due - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        acks.append(await js.publish_async(f"{stream}.{kind}", payload))
        if first >= 0:
            published[first:first + per_message] = time.time()
        if number % 200 == 0:
            await asyncio.gather(*acks)
            acks = []
    await asyncio.gather(*acks)
    await nc.close()
    return published, n / max(float(published.max()) - start, 1e-9)


async def consumer_waiting(nats_url: str, stream: str) -> int:
    """Pull requests waiting on the durable consumer (0 before it exists)."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().consumer_info(stream, "monitor")).num_waiting or 0)
    except NotFoundError:
        return 0
    finally:
        await nc.close()


async def delete_stream(nats_url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def phase(consumers: int, rate: float, args: argparse.Namespace, predictions: pd.DataFrame, labels: pd.DataFrame,
          oracle: dict, direct: float) -> None:
    stream = f"BENCH_{uuid.uuid4().hex[:8]}"
    with Database(args.db_url) as db, tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), db.url, args.nats_url, stream, args.batch_size)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("MONITOR_DATABASE_URL", None)
        engine = make_engine(db.url)
        seen: list[tuple[float, int, int]] = []  # (time, predictions stored, labels stored)
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                seen.append((time.time(), snapshot_count(engine), snapshot_count(engine, Label)))
                time.sleep(0.2)

        def analyser() -> None:  # what autovacuum's ANALYZE does on a production server
            while args.analyze_every and not done.wait(args.analyze_every):
                analyse(engine)

        # the messages, the stream (the consumers find it), the consumers, a warm-up (imports,
        # first slices: not part of the measurement), then the paced traffic
        warm = min(len(predictions) // 20, 2000)
        rest = predictions.iloc[warm:]
        plan = schedule(rest, labels, rate, args.per_message)
        warm_plan = schedule(predictions.iloc[:warm], labels.iloc[:0], 1e9, args.per_message)
        asyncio.run(_make_stream(args.nats_url, stream))
        logs = [Path(tmp) / f"consumer{i}.log" for i in range(consumers)]
        workers = [subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(config), "consume", "--quiet",
                                     "--until-idle", str(args.idle)], env=env, stdout=subprocess.PIPE,
                                    stderr=log.open("w"), text=True) for log in logs]

        def alive() -> bool:
            if any(worker.poll() is not None for worker in workers):
                raise SystemExit(f"a consumer exited early: {' | '.join(log.read_text()[-1500:] for log in logs)}")
            return True

        while alive() and asyncio.run(consumer_waiting(args.nats_url, stream)) < consumers:
            time.sleep(0.2)
        asyncio.run(publish(args.nats_url, stream, warm_plan, warm, args.per_message))
        while alive() and snapshot_count(engine) < warm:
            time.sleep(0.2)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        analysing = threading.Thread(target=analyser, daemon=True)
        analysing.start()
        started = time.time()
        published, achieved = asyncio.run(publish(args.nats_url, stream, plan, len(rest), args.per_message))
        outputs = [worker.communicate()[0] or "" for worker in workers]
        done.set()
        poller.join()
        analysing.join()
        failed = [log.read_text()[-2000:] for worker, log in zip(workers, logs) if worker.returncode != 0]
        if failed:
            print(f"  a consumer failed: {failed[0]}")
        found = snapshot(engine)
        engine.dispose()
        asyncio.run(delete_stream(args.nats_url, stream))
    # from the first publish to the first poll that saw every prediction and label stored
    finished = [t for t, stored, labelled in seen if stored >= len(predictions) and labelled >= len(labels)]
    span = (finished[0] if finished else seen[-1][0]) - started
    times = np.array([t for t, _, _ in seen])
    counts = np.array([c for _, c, _ in seen])
    visible = times[np.minimum(np.searchsorted(counts, np.arange(warm + 1, len(predictions) + 1)), len(times) - 1)]
    lag = visible - published
    ingested, labelled = len(rest) / span, len(labels) / span
    exact = found == oracle
    if math.isinf(rate):  # a backlog: the consumers' capacity
        how = f"backlog of {len(rest):,} predictions and their labels: drained at"
        lags = ""
    else:
        # paced: each kind over its own publishing span, from its first publish to the first
        # poll that saw all of it stored (labels start LABEL_DELAY after the predictions)
        stored = [t for t, count, _ in seen if count >= len(predictions)]
        ingested = len(rest) / ((stored[0] if stored else seen[-1][0]) - started)
        labelled = len(labels) / max(span - LABEL_DELAY, 1e-9)
        how = f"paced, {achieved:,.0f} predictions/s published: ingested"
        lags = f"lag p50 {np.percentile(lag, 50):.1f} s, p99 {np.percentile(lag, 99):.1f} s; "
    print(f"{consumers} consumer(s), {how} {ingested:,.0f} predictions/s and {labelled:,.0f} labels/s "
          f"over {span:.0f} s ({ingested / direct:.2f}x the direct path); {lags}exact: {'yes' if exact else 'NO'}; "
          f"load {load()}")
    contention = []  # each consumer's time in batches and, of it, waiting for the model's lock
    for output in outputs:
        if found_times := re.search(r"([\d.]+) s in batches, ([\d.]+) s of them waiting", output):
            busy, waiting = float(found_times.group(1)), float(found_times.group(2))
            contention.append(f"{waiting:.1f} of {busy:.1f} s ({waiting / max(busy, 1e-9):.0%})")
    if contention:
        print(f"  waiting for the model's lock, per consumer: {'; '.join(contention)}")
    if not exact:
        for key in oracle:
            if found[key] != oracle[key]:
                print(f"  {key}: database {str(found[key])[:200]} != expected {str(oracle[key])[:200]}")


async def _make_stream(nats_url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(nats_url)
    await nc.jetstream().add_stream(name=stream, subjects=[f"{stream}.predictions", f"{stream}.labels"])
    await nc.close()


def autovacuum_on(url: str) -> bool:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        on = conn.execute(text("SHOW autovacuum")).scalar_one() == "on"
    engine.dispose()
    return on


def analyse(engine) -> None:  # type: ignore[no-untyped-def]
    """Fresh planner statistics for the raw tables (their weekly partitions)."""
    with engine.connect() as conn:
        conn.execute(text("ANALYZE predictions, labels"))
        conn.commit()


def snapshot_count(engine, table=Prediction) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def direct_rate(args: argparse.Namespace, predictions: pd.DataFrame, labels: pd.DataFrame) -> float:
    """Records/s of the database write path alone: the same batches into `ingest_frame`."""
    with Database(args.db_url) as db, tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), db.url, args.nats_url, "UNUSED", args.batch_size))
        model = config.models[0]
        engine = make_engine(db.url)
        size = args.batch_size * args.per_message
        started = time.time()
        for kind, frame in (("predictions", predictions), ("labels", labels)):
            rows = json.loads(frame.to_json(orient="records"))
            for i in range(0, len(rows), size):
                with engine.begin() as conn:
                    ctx = load_context(conn, model)
                    batch, _ = records_frame(list(enumerate(rows[i:i + size], start=i + 1)), ctx, kind)
                    ingest_lock(conn, ctx.model_id)
                    ingest_frame(conn, ctx, kind, batch, source="bench")
        seconds = time.time() - started
        engine.dispose()
    return len(predictions) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=5000, help="predictions published per second")
    parser.add_argument("--seconds", type=float, default=6, help="seconds of paced publishing per phase")
    parser.add_argument("--per-message", type=int, default=10, help="records per message")
    parser.add_argument("--batch-size", type=int, default=1000, help="messages per consumer batch (at most)")
    parser.add_argument("--idle", type=float, default=10, help="a consumer stops after this many idle seconds")
    parser.add_argument("--consumers", default="1,2", help="numbers of consumers to run, in turn")
    parser.add_argument("--phases", default="backlog,paced", help="backlog (capacity), paced (--rate), or both")
    parser.add_argument("--baseline", type=int, default=30_000,
                        help="predictions (and their labels) the direct-path baseline ingests")
    parser.add_argument("--db-url", default=os.environ.get("MONITOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--analyze-every", type=float, default=None,
                        help="run ANALYZE on the raw tables every this many seconds during a phase (default: 30 "
                             "when the server's autovacuum is off, else never)")
    parser.add_argument("--random-page-cost", type=float, default=None,
                        help="the planner's random_page_cost for the bench's databases (default: the server's; "
                             "1.1 is the usual advice for SSDs and data in memory)")
    args = parser.parse_args()
    Database.random_page_cost = args.random_page_cost
    vacuumed = autovacuum_on(args.db_url)
    if args.analyze_every is None:
        args.analyze_every = 0.0 if vacuumed else 30.0
    n = int(args.rate * args.seconds)
    predictions, labels = records(n)
    oracle = expected(predictions, labels)
    print(f"{n:,} predictions and {len(labels):,} labels, {args.per_message} records a message, batches of "
          f"{args.batch_size} messages; PostgreSQL; load {load()}")
    if args.random_page_cost is not None:
        print(f"random_page_cost = {args.random_page_cost:g} on the bench's databases (ALTER DATABASE ... SET)")
    if args.analyze_every:
        print(f"the bench runs ANALYZE on predictions and labels every {args.analyze_every:g} s during a phase"
              + ("" if vacuumed else " (what autovacuum does on a production server; this server's autovacuum is off)"))
    few = predictions.iloc[:args.baseline]
    direct = direct_rate(args, few, labels[labels["prediction_id"].isin(few["prediction_id"])])
    print(f"baseline: the database write path alone (ingest_frame, same batches, {len(few):,} predictions): "
          f"{direct:,.0f} predictions/s (+ their labels); load {load()}")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    for consumers in (int(c) for c in args.consumers.split(",") if c.strip()):
        for kind in phases:
            phase(consumers, math.inf if kind == "backlog" else args.rate, args, predictions, labels, oracle, direct)


if __name__ == "__main__":
    main()

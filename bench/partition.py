"""Benchmark: raw rows partitioned by week vs one plain table, on PostgreSQL (issue 17).

    python bench/partition.py [--rows 20000000] [--days 90] [--labelled 0.7] [--batch 10000]
                              [--batches 5] [--late-days 60] [--db-url postgresql://postgres@127.0.0.1:5432/test]

Two scratch databases on the server of --db-url: one migrated to 0010 (plain `predictions`
and `labels`, as before issue 17), one to head (weekly partitions, migration 0011). Both get
the same rows, COPYed with their indexes in place: --rows predictions spread evenly over --days
days (random ids), --labelled of them with a label 0 to 3 days after the prediction. Then,
in the same run:

- label join: --batches batches of --batch late labels (ids of unlabelled predictions of the
  last --late-days days, default 60, labelled now), each looked up by id as the ingest label join does
  (`monitor.ingest.labels.stored_predictions`: on PostgreSQL the last 8 days first, then the
  label horizon, then older rows, each for the ids not found yet), and a whole label batch ingested
  (`ingest_frame`, counts included, rolled back so every batch finds the same state);
  medians. The partitioned table is also probed without the time bound, to show what the
  bound buys.
- retention of the oldest 30 days (`raw_predictions = label_horizon = days - 30`):
  `apply_retention` on both (the plain table DELETEs, the partitioned one drops whole weeks
  and DELETEs the week that straddles the cutoff); the rows left are checked to be equal.

Figures are wall-clock seconds on a machine that may be shared (the load average is
printed); compare the two columns of one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import parse_config  # noqa: E402
from monitor.context import load_context  # noqa: E402
from monitor.ingest.labels import stored_predictions  # noqa: E402
from monitor.ingest.pipeline import ingest_frame  # noqa: E402
from monitor.retention import apply_retention  # noqa: E402
from monitor.store.bulk import select_in  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402
from monitor.store.models import Prediction  # noqa: E402
from monitor.store.partitions import PARTITION_KEYS, WEEK, ensure_weeks, is_partitioned, week_start  # noqa: E402

DAY = 86_400
# The clock of the run, 2026-11-27 00:00 UTC: the retention cutoff (60 days before) is then a
# Monday, so the weekly table removes exactly the plain table's rows (elsewhere it keeps the
# week holding the cutoff whole: up to a week more)
END = 1_795_737_600
CLASSES = ["ok", "fraud", "review"]
CHUNK = 1_000_000


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


class Scratch:
    """A scratch database on the server of `admin_url` at `revision`, dropped at the end."""

    def __init__(self, admin_url: str, revision: str, label: str) -> None:
        self.admin = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
                                   isolation_level="AUTOCOMMIT")
        self.name = f"bench_partition_{label}_{uuid.uuid4().hex[:6]}"
        self.url = f"{admin_url.rpartition('/')[0]}/{self.name}"
        self.revision, self.label = revision, label

    def __enter__(self) -> Scratch:
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.engine = make_engine(self.url)
        upgrade(self.engine, self.revision)
        return self

    def __exit__(self, *_: object) -> None:
        self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def config_for(url: str, horizon_days: int):  # type: ignore[no-untyped-def]
    return parse_config({"database_url": url,
                         "retention": {"raw_predictions": f"{horizon_days}d", "label_horizon": f"{horizon_days}d"},
                         "models": [{"name": "m", "classes": CLASSES}]}, base_dir=Path.cwd())


def make_rows(rows: int, days: int, labelled: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = END - days * DAY
    ts = np.sort(rng.integers(start, END, rows))
    ids = pd.Series(rng.permutation(rows)).map("{:09x}".format).to_numpy()  # random order by id
    predicted = rng.choice(CLASSES, rows)
    predictions = pd.DataFrame({"model_id": 1, "prediction_id": ids, "ts": ts, "bucket_start": ts - ts % 3600,
                                "slice_id": 1, "predicted": predicted, "model_version": "", "content_hash": 0})
    has_label = rng.random(rows) < labelled
    label_ts = ts[has_label] + rng.integers(0, 3 * DAY, int(has_label.sum()))
    keep = label_ts < END
    labels = pd.DataFrame({"model_id": 1, "prediction_id": ids[has_label][keep], "label": predicted[has_label][keep],
                           "label_ts": label_ts[keep], "applied_label": predicted[has_label][keep], "needs_apply": "f"})
    return predictions, labels


def copy_into(db: Scratch, table: str, frame: pd.DataFrame) -> None:
    with db.engine.begin() as conn:
        driver = conn.connection.driver_connection
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            # loading only: no per-row foreign-key trigger (the model row exists)
            cursor.execute("SET LOCAL session_replication_role = replica")
            columns = ", ".join(f'"{c}"' for c in frame.columns)
            with cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN WITH (FORMAT csv)') as copy:
                for begin in range(0, len(frame), CHUNK):
                    buffer = io.StringIO()
                    frame.iloc[begin : begin + CHUNK].to_csv(buffer, header=False, index=False)
                    copy.write(buffer.getvalue())


def prepare(db: Scratch, predictions: pd.DataFrame, labels: pd.DataFrame, horizon_days: int) -> float:
    config = config_for(db.url, horizon_days)
    with db.engine.begin() as conn:
        load_context(conn, config.model("m"))  # the model row (id 1)
    with db.engine.begin() as conn:  # the weeks the tick would have created over the period
        for table, column in PARTITION_KEYS.items():
            if is_partitioned(conn, table):
                frame = predictions if table == "predictions" else labels
                ensure_weeks(conn, table, set(range(week_start(int(frame[column].min())),
                                                    int(frame[column].max()) + 1, WEEK)))
    began = time.perf_counter()
    copy_into(db, "predictions", predictions)
    copy_into(db, "labels", labels)
    seconds = time.perf_counter() - began
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE predictions")
        conn.exec_driver_sql("VACUUM ANALYZE labels")
    return seconds


def size(db: Scratch) -> str:
    with db.engine.connect() as conn:
        total = conn.execute(text(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relkind = 'r' AND "
            "(c.relname LIKE 'predictions%' OR c.relname LIKE 'labels%')")).scalar_one()
    return f"{int(total) / 1e9:.2f} GB"


def label_batches(predictions: pd.DataFrame, labels: pd.DataFrame, batch: int, batches: int, seed: int,
                  late_days: int = 60) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    # unlabelled predictions of the last `late_days` days
    open_ = predictions.loc[(predictions["ts"] >= END - late_days * DAY) & ~predictions["prediction_id"].isin(labels["prediction_id"]),
                            ["prediction_id"]]
    chosen = open_.sample(min(len(open_), batch * batches), random_state=seed)
    out = []
    for i in range(batches):
        part = chosen.iloc[i * batch : (i + 1) * batch]
        out.append(pd.DataFrame({"prediction_id": part["prediction_id"].to_numpy(),
                                 "label": rng.choice(CLASSES, len(part)), "label_timestamp": END - 60}))
    return out


def time_label_join(db: Scratch, batches: list[pd.DataFrame], horizon_days: int, *, unbounded: bool = False) -> tuple[float, float]:
    """Median seconds of the id lookup and of a whole label batch (rolled back)."""
    config = config_for(db.url, horizon_days)
    lookups, ingests = [], []
    for frame in batches:
        fresh = frame.rename(columns={"label_timestamp": "label_ts"})
        with db.engine.connect() as conn:
            ctx = load_context(conn, config.model("m"))
            began = time.perf_counter()
            found: object
            if unbounded:
                found = select_in(conn, Prediction.__table__, key_column="prediction_id",  # type: ignore[arg-type]
                                  keys=list(fresh["prediction_id"]), columns=["bucket_start", "slice_id", "predicted",
                                                                              "ts"], equal={"model_id": ctx.model_id})
            else:
                found = stored_predictions(conn, ctx, fresh)
            lookups.append(time.perf_counter() - began)
            assert len(found) == len(frame), (len(found), len(frame))  # type: ignore[arg-type]
            conn.rollback()
        if unbounded:
            continue
        with db.engine.connect() as conn:
            transaction = conn.begin()
            ctx = load_context(conn, config.model("m"))
            began = time.perf_counter()
            result = ingest_frame(conn, ctx, "labels", frame, as_of=END)
            ingests.append(time.perf_counter() - began)
            assert result.accepted == len(frame), result
            transaction.rollback()
    return statistics.median(lookups), statistics.median(ingests) if ingests else float("nan")


def time_retention(db: Scratch, horizon_days: int) -> tuple[float, dict]:
    config = config_for(db.url, horizon_days)
    began = time.perf_counter()
    with db.engine.begin() as conn:
        summary = apply_retention(conn, config, END)
    return time.perf_counter() - began, summary


def left(db: Scratch) -> tuple[int, int, int]:
    with db.engine.connect() as conn:
        return tuple(int(v) for v in conn.execute(text(  # type: ignore[return-value]
            "SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM labels), "
            "(SELECT coalesce(sum(hashtext(prediction_id)), 0) FROM predictions)")).one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000, help="raw predictions")
    parser.add_argument("--days", type=int, default=90, help="days they span (ending 2026-11-27)")
    parser.add_argument("--labelled", type=float, default=0.7, help="share of predictions with a label already")
    parser.add_argument("--batch", type=int, default=10_000, help="late labels per batch")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--late-days", type=int, default=60,
                        help="late labels are for predictions of the last N days (60: any week of the horizon; "
                             "a few: labels that come within days, the usual case)")
    parser.add_argument("--drop-days", type=int, default=30,
                        help="the oldest days retention removes (60 kept days put the cutoff on a Monday)")
    parser.add_argument("--db-url", default=os.environ.get("MONITOR_TEST_POSTGRES_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    horizon = args.days - args.drop_days
    print(f"partition benchmark: {args.rows:,} predictions over {args.days} days, {args.labelled:.0%} labelled; "
          f"{os.cpu_count()} CPUs, load {load()} at start")
    began = time.perf_counter()
    predictions, labels = make_rows(args.rows, args.days, args.labelled, seed=7)
    batches = label_batches(predictions, labels, args.batch, args.batches, seed=8, late_days=args.late_days)
    print(f"  generated {len(predictions):,} predictions and {len(labels):,} labels in {time.perf_counter() - began:.0f} s")
    with Scratch(args.db_url, "0010", "plain") as plain, Scratch(args.db_url, "head", "weekly") as weekly:
        loads = {}
        for db in (plain, weekly):
            loads[db.label] = prepare(db, predictions, labels, horizon)
            print(f"  loaded {db.label}: {loads[db.label]:.0f} s (COPY with indexes), {size(db)}, load {load()}")
        with weekly.engine.connect() as conn:
            weeks = conn.execute(text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'predictions'::regclass")).scalar_one()
        del predictions, labels
        lookup = {db.label: time_label_join(db, batches, horizon) for db in (plain, weekly)}
        unbounded, _ = time_label_join(weekly, batches, horizon, unbounded=True)
        retention = {db.label: time_retention(db, horizon) for db in (plain, weekly)}
        rest = {db.label: left(db) for db in (plain, weekly)}
    print(f"\n  {weeks} partitions of predictions (weekly + DEFAULT); load {load()} at end\n")
    print(f"  {'':46} {'plain table':>12} {'weekly':>12} {'ratio':>7}")
    rows = [
        (f"label lookup by id, {args.batch:,} late labels (median)", lookup["plain"][0], lookup["weekly"][0]),
        ("  weekly without the time bound", lookup["plain"][0], unbounded),
        (f"label batch ingested, {args.batch:,} labels (median)", lookup["plain"][1], lookup["weekly"][1]),
        (f"retention of the oldest {args.drop_days} days", retention["plain"][0], retention["weekly"][0]),
    ]
    for name, base, value in rows:
        print(f"  {name:46} {base:>11.3f}s {value:>11.3f}s {value / base:>6.2f}x")
    for label in ("plain", "weekly"):
        summary = retention[label][1]
        print(f"  retention {label}: {summary['predictions']:,} predictions, {summary['labels']:,} labels, "
              f"{summary['pending_labels']:,} pending labels, {summary['partitions']} partitions dropped")
    same = rest["plain"][0::2] == rest["weekly"][0::2]
    print(f"  rows left: plain {rest['plain'][0]:,} predictions / {rest['plain'][1]:,} labels, weekly "
          f"{rest['weekly'][0]:,} / {rest['weekly'][1]:,}: predictions {'the same' if same else 'DIFFERENT'}; "
          f"weekly keeps {rest['weekly'][1] - rest['plain'][1]:,} more labels (newer than the cutoff, of "
          "predictions of a dropped week: they go with their own week)")


if __name__ == "__main__":
    main()

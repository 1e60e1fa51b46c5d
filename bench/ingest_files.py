"""Benchmark: `monitor ingest` of many small files against the bare floor on the same files.

    python bench/ingest_files.py [--files 300] [--rows-per-file 1000] [--quick] [--repeat 1]
                                 [--db-url postgresql://...] [--profile FILE]

Data: `Scenario(n_numeric=8, n_categorical=2, segments=("sex", "region"))` (10 features, 3
classes with scores, 2 segments); `--files` prediction files of about `--rows-per-file` rows
each in time order, and the labels that arrived in the same span cut into as many files; the
formats cycle csv, jsonl, parquet (the layout of per-pod hourly logs).

(a) ingest: `monitor.ingest.sweep.sweep(engine, config, as_of=end)` (what `monitor ingest`
    runs: read, validate, dedupe, store, label join, counts, drift and estimation hooks; no
    alert evaluation) on a fresh migrated database.
(b) floor: pandas reads every file (read_csv / read_json(lines=True) / read_parquet) and
    stores every row, every column, in one transaction: sqlite3 executemany into plain
    tables, or on PostgreSQL (`--db-url`) psycopg COPY into plain tables of a scratch database.

The ratio (a)/(b) is measured in the same run (target <= 2); `--repeat N` measures the pair N
times in turn and prints the median ratio and the range (a single floor varies by 10-20%).
Writing the files is not timed; the load average is printed next to each phase (the machine
may be shared).
"""

from __future__ import annotations

import argparse
import cProfile
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import (  # noqa: E402
    Clock,
    Databases,
    floor_frames,
    floor_postgres,
    load,
    median_line,
    ratio_line,
    warm_imports,
)

from monitor.config import load_config  # noqa: E402
from monitor.ingest.sweep import sweep  # noqa: E402
from monitor.simulate import Scenario, simulate, write_config  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402

FORMATS = ("csv", "jsonl", "parquet")


def write_files(frame: pd.DataFrame, epochs: np.ndarray, folder: Path, stem: str, n_files: int) -> list[Path]:
    """`frame` in time order cut into `n_files` files of equal row counts, formats cycling."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.argsort(epochs, kind="stable")
    paths = []
    for k, part in enumerate(np.array_split(order, n_files)):
        fmt = FORMATS[k % len(FORMATS)]
        path = folder / f"{stem}_{k:04d}.{fmt}"
        rows = frame.iloc[part]
        if fmt == "csv":
            rows.to_csv(path, index=False)
        elif fmt == "jsonl":
            rows.to_json(path, orient="records", lines=True, double_precision=15)
        else:
            rows.to_parquet(path, index=False)
        paths.append(path)
    return paths


def floor_sqlite(root: Path) -> tuple[Clock, int]:
    """pandas read of every file + sqlite3 executemany of every row, one transaction."""
    path = root / "floor.db"
    path.unlink(missing_ok=True)
    rows = 0
    with Clock() as clock:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN")
            for kind, frame, first in floor_frames(root):
                if first:
                    conn.execute(f"CREATE TABLE {kind} ({', '.join(repr(c) for c in frame.columns)})")
                sql = f"INSERT INTO {kind} VALUES ({', '.join('?' * frame.shape[1])})"  # noqa: S608
                conn.executemany(sql, frame.itertuples(index=False, name=None))
                rows += len(frame)
            conn.execute("COMMIT")
        finally:
            conn.close()
    return clock, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300, help="prediction files (and as many label files)")
    parser.add_argument("--rows-per-file", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="60 files of 1,000 rows")
    parser.add_argument("--db-url", default=None,
                        help="a PostgreSQL server URL (e.g. postgresql://postgres@127.0.0.1:5432/test): "
                             "ingest and floor run in scratch databases created there and dropped after")
    parser.add_argument("--profile", default=None, help="write cProfile stats of the ingest here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure (a) then (b) this many times and print the median ratio (the floor varies run to run)")
    args = parser.parse_args()
    n_files = 60 if args.quick else args.files
    days = 30
    rows_per_day = max(n_files * args.rows_per_file // days, 1)
    scenario = Scenario(days=days, rows_per_day=rows_per_day, n_numeric=8, n_categorical=2,
                        segments=("sex", "region"), start="2024-01-01")
    began = time.perf_counter()
    imports = warm_imports()
    data = simulate(scenario, seed=1)
    end = scenario.start_epoch + days * 86_400
    labels = data.labels.loc[data.label_epoch < end].reset_index(drop=True)
    label_epoch = data.label_epoch[data.label_epoch < end]
    work = Path(tempfile.mkdtemp(prefix="bench-files-"))
    dbs = Databases(work, args.db_url)
    backend = "postgresql" if args.db_url else "sqlite"
    try:
        write_files(data.predictions, data.prediction_epoch, work / "predictions", "predictions", n_files)
        write_files(labels, label_epoch, work / "labels", "labels", n_files)
        data.reference.to_parquet(work / "reference.parquet", index=False)
        n_pred, n_lab = len(data.predictions), len(labels)
        print(f"many-small-files ingest: {n_pred:,} predictions in {n_files} files + {n_lab:,} labels in "
              f"{n_files} files (csv/jsonl/parquet), {len(scenario.features)} features, segments "
              f"{', '.join(scenario.segments)}; {backend}; written in {time.perf_counter() - began:.0f} s "
              f"(imports {imports:.1f} s)")
        total = n_pred + n_lab
        floor_name = "COPY" if args.db_url else "sqlite3 executemany"
        print(f"{'phase':<46}{'rows':>11}{'wall s':>9}{'rows/s':>10}{'cpu s':>8}   load 1/5 min")
        ratios: list[tuple[float, float]] = []
        for attempt in range(args.repeat):  # (a) then (b), alternating: both see the same machine
            config = load_config(write_config(work, scenario, database_url=dbs.fresh(f"ingest{attempt}")))
            engine = make_engine(config.database_url)
            upgrade(engine)
            profiler = cProfile.Profile() if args.profile and attempt == 0 else None
            load_a = load()
            with Clock() as ingest:
                if profiler:
                    profiler.enable()
                summary = sweep(engine, config, as_of=end)
                if profiler:
                    profiler.disable()
            load_a += f" -> {load()}"
            engine.dispose()
            if profiler:
                profiler.dump_stats(args.profile)
            model = summary.models[0]
            if model.errors:
                raise SystemExit(f"ingest failed: {model.errors}")
            load_b = load()
            floor, floor_rows = floor_postgres(work, dbs.fresh(f"floor{attempt}")) if args.db_url else floor_sqlite(work)
            load_b += f" -> {load()}"
            assert floor_rows == n_pred + n_lab, (floor_rows, n_pred, n_lab)
            for name, clock, where in ((f"(a) monitor ingest (sweep), {backend}", ingest, load_a),
                                       (f"(b) floor: pandas read + {floor_name}", floor, load_b)):
                print(f"{name:<46}{total:>11,}{clock.wall:>9.2f}{total / clock.wall:>10,.0f}{clock.cpu:>8.2f}   {where}")
            print(ratio_line(ingest, floor))
            ratios.append((ingest.wall / floor.wall, ingest.cpu / floor.cpu))
        if len(ratios) > 1:
            print(median_line(ratios))
        print(f"  per file: {ingest.wall / (2 * n_files) * 1000:.0f} ms ingest, "
              f"{floor.wall / (2 * n_files) * 1000:.0f} ms floor; {model.files_read} files read, "
              f"{model.predictions:,} predictions and {model.labels:,} labels accepted, "
              f"{model.skipped:,} skipped, {model.rejected} rejected")
        print(f"  total wall time {time.perf_counter() - began:.0f} s; work dir {work}"
              + ("" if args.keep else " (removed)"))
    finally:
        dbs.drop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

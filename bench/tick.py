"""Benchmark: the cost of one more hourly tick after 1, 30, 90 and 365 days of history.

    python bench/tick.py [--histories 1,30,90,365] [--rows-per-day 2000] [--extra-ticks 3]
                         [--files-per-day 24] [--full-scan]
                         [--db-url postgresql://...] [--profile-days 365 --profile FILE]

Data: `Scenario(n_numeric=8, n_categorical=2)` (10 features, 3 classes with scores, 3
segments), `--rows-per-day` predictions a day and the label stream the simulator makes (late,
duplicated, corrected labels), the default alert rule (minority recall, 7-day window, every
segment). For each history length H, a fresh database ingests the first H days (CSV files,
`--files-per-day` of each kind a day, each with the mtime it would have in a deployment at
day H; one untimed `run_tick`), then one more hour of predictions and of labels arrives as two
new files and one `run_tick(notify=False)` is timed, `--extra-ticks` times in a row, as the
scheduler runs it after its first tick (settled files looked at in their hour of the day
only; `--full-scan`: every file stat'ed, as `monitor ingest` does). The median is printed,
with the CPU seconds of this process beside it (SQLite works in the process, so on a shared
machine the CPU figure is the steadier one). The issue 15 target: <= 0.3 s and flat (the
365-day figure within 20% of the 1-day one).

The machine may be shared: the load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import (  # noqa: E402
    DAY,
    HOUR,
    Databases,
    EvaluateTimer,
    load,
    settle,
    subset,
    warm_imports,
    workspace,
    write_hour,
)

from monitor.simulate import Scenario, simulate  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402
from monitor.tick import run_tick  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--histories", default="1,30,90,365", help="days of history before the extra ticks")
    parser.add_argument("--rows-per-day", type=int, default=2_000)
    parser.add_argument("--extra-ticks", type=int, default=3, help="extra hourly ticks per history length")
    parser.add_argument("--files-per-day", type=int, default=1,
                        help="history files per day and kind (24: hourly files, 8,760 of each kind a year)")
    parser.add_argument("--db-url", default=None,
                        help="a PostgreSQL server URL: each history runs in a scratch database created there")
    parser.add_argument("--full-scan", action="store_true",
                        help="time ticks that stat every file (`monitor ingest`, the scheduler's first tick), "
                             "not the scheduler's later ticks, which look at settled files once a day")
    parser.add_argument("--no-settle", action="store_true",
                        help="PostgreSQL: time the extra ticks right after the history ingest, without the untimed "
                             "settling tick and VACUUM ANALYZE")
    parser.add_argument("--profile", default=None, help="write cProfile stats of the extra ticks here")
    parser.add_argument("--profile-days", type=int, default=None, help="the history whose ticks are profiled")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (and the scratch databases)")
    args = parser.parse_args()
    histories = sorted({int(h) for h in args.histories.split(",") if h.strip()})
    if not histories or histories[0] < 1:
        parser.error("--histories needs positive day counts")
    longest = histories[-1]

    scenario = Scenario(days=longest + 1, rows_per_day=args.rows_per_day, n_numeric=8, n_categorical=2,
                        start="2024-01-01")
    backend = "postgresql" if args.db_url else "sqlite"
    print(f"tick benchmark ({backend}): {args.rows_per_day:,} predictions a day in {args.files_per_day} "
          f"file(s) a day, {len(scenario.features)} features, segments {', '.join(scenario.segments)}; "
          f"{os.cpu_count()} CPUs, load {load()} at start")
    imports = warm_imports()
    evaluate = EvaluateTimer()
    began = time.perf_counter()
    data = simulate(scenario, seed=3)
    print(f"  simulated {len(data.predictions):,} predictions + {len(data.labels):,} labels in "
          f"{time.perf_counter() - began:.0f} s (imports {imports:.1f} s)")
    start = scenario.start_epoch
    work = Path(tempfile.mkdtemp(prefix="bench-tick-"))
    dbs = Databases(work, args.db_url)
    rows: list[tuple[int, float, float, list[float], str, float, float]] = []
    try:
        for days in histories:
            root = work / f"h{days}"
            until = start + days * DAY
            config = workspace(root, subset(data, until), scenario, dbs.fresh(f"tick{days}"),
                               files_per_day=args.files_per_day)
            age_files(root, until, args.files_per_day)
            engine = make_engine(config.database_url)
            upgrade(engine)
            began = time.perf_counter()
            summary = run_tick(engine, config, as_of=until, notify=False)
            history_seconds = time.perf_counter() - began
            if any(m.errors for m in summary.models):
                raise SystemExit(f"history ingest failed: {[m.errors for m in summary.models]}")
            if engine.dialect.name == "postgresql" and not args.no_settle:
                settle(engine, config, until)
            profiler = cProfile.Profile() if args.profile and args.profile_days == days else None
            load_before = load()
            walls, evals, cpus = [], [], []
            for k in range(args.extra_ticks):
                hour = until + k * HOUR
                write_hour(data, root, hour)
                evaluate.take()
                if profiler:
                    profiler.enable()
                began, cpu = time.perf_counter(), time.process_time()
                summary = run_tick(engine, config, as_of=hour + HOUR, notify=False, full_scan=args.full_scan)
                walls.append(time.perf_counter() - began)
                cpus.append(time.process_time() - cpu)
                if profiler:
                    profiler.disable()
                evals.append(evaluate.take())
                if any(m.errors for m in summary.models):
                    raise SystemExit(f"extra tick failed: {[m.errors for m in summary.models]}")
            if profiler:
                profiler.dump_stats(args.profile)
            engine.dispose()
            rows.append((days, statistics.median(walls), statistics.median(evals), walls,
                         f"{load_before} -> {load()}", history_seconds, statistics.median(cpus)))
            print(f"  {days:>4} days: history ingested in {history_seconds:.1f} s; extra ticks "
                  + ", ".join(f"{w:.2f}" for w in walls) + " s")
    finally:
        if args.keep:
            print(f"work directory kept: {work}" + (f", databases {', '.join(dbs.created)}" if dbs.created else ""))
        else:
            dbs.drop_all()
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'history':>9}{'tick s':>9}{'alerts s':>10}{'rest s':>9}{'vs 1st':>8}{'cpu s':>8}{'vs 1st':>8}"
          "   load 1/5 min")
    first, first_cpu = rows[0][1], rows[0][6]
    for days, wall, evals_median, _, load_text, _, cpu_median in rows:
        print(f"{days:>5} days{wall:>9.2f}{evals_median:>10.2f}{wall - evals_median:>9.2f}"
              f"{wall / first:>7.2f}x{cpu_median:>8.2f}{cpu_median / first_cpu:>7.2f}x   {load_text}")
    print(f"target: <= 0.3 s per tick, and the {rows[-1][0]}-day figure within 20% of the {rows[0][0]}-day one")


def age_files(root: Path, until: int, files_per_day: int) -> None:
    """Give each history file the mtime it would have in a deployment at `until`: the end of
    its slice of the day, as far before now as that is before `until` (the last day's files are
    recent, a year-old file is a year old), not the moment this benchmark wrote it."""
    now = time.time()
    for path in [*root.glob("predictions/*"), *root.glob("labels/*")]:
        found = re.search(r"_(\d{4}-\d{2}-\d{2})(?:_(\d+))?\.", path.name)
        if found is None:
            continue
        day = int(np.datetime64(found.group(1), "s").astype(np.int64))
        slice_end = day + (int(found.group(2) or 0) + 1) * DAY // files_per_day
        written = now - max(until - slice_end, 0)
        os.utime(path, (written, written))


if __name__ == "__main__":
    main()

"""Benchmark: ingestion throughput against a bare baseline, and the cost of one more tick.

    python bench/ingest.py [--rows 1000000] [--quick] [--repeat 1] [--db-url postgresql://...] [--profile FILE]
                           [--memory]

Data: `Scenario(n_numeric=8, n_categorical=2)` (10 features, 3 classes with scores, 3
segments), `--rows` predictions spread over 30 days (one CSV file per day), and the label
stream up to the end of day 30 (one CSV file per label day: late, duplicated and corrected
labels as the simulator makes them; labels of the last days' predictions are still to come).

(a) full pipeline: one `monitor.tick.run_tick(engine, config, as_of=<end of day 30>,
    notify=False)` on a fresh migrated database (SQLite in the temp dir, or a scratch database
    on the PostgreSQL server of `--db-url`): read, validate, dedupe, store, label join, counts,
    drift and estimation hooks, alert evaluation.
(b) baseline: pandas `read_csv` of the same files + `sqlite3` executemany of the same rows
    (every column) into two plain tables, in one transaction; with `--db-url`, psycopg COPY
    of the same rows into plain text tables of a scratch database on the same server.
    `--repeat N` measures (a), each time on a fresh database, then (b), N times in turn and
    prints the median ratio and its range (the baseline alone varies from run to run).
(c) extra tick: one more hour of predictions and of labels as new files, then one
    `run_tick`; measured after 1, 10 and 30 days of history (median of `--extra-ticks`).
    Target: under 1 s, and not growing with history (bench/tick.py measures 1 to 365 days).
    On PostgreSQL an untimed tick and VACUUM ANALYZE settle the history first (`settle`).

With a PostgreSQL server on this machine, each phase also prints the server's CPU seconds
(every postgres process, from /proc): the client waits on that work, so a ratio can never fall
below the server's CPU time over the floor's wall time.

Simulating and writing the files is not timed. The machine is shared: the load average is
printed next to every phase.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import load_config  # noqa: E402
from monitor.simulate import Scenario, simulate, write_config, write_logs  # noqa: E402
from monitor.simulate.generate import SimulatedData  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402
from monitor.tick import run_tick  # noqa: E402

DAY = 86_400
HOUR = 3_600
DAYS = 30


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def subset(data: SimulatedData, until: int) -> SimulatedData:
    """Predictions with a timestamp before `until` and labels that arrived before it."""
    p = data.prediction_epoch < until
    lab = data.label_epoch < until
    return replace(data, predictions=data.predictions.loc[p].reset_index(drop=True),
                   labels=data.labels.loc[lab].reset_index(drop=True),
                   prediction_epoch=data.prediction_epoch[p], label_epoch=data.label_epoch[lab])


def write_hour(data: SimulatedData, root: Path, start: int) -> tuple[int, int]:
    """One hour of predictions and labels from `start`, as two new CSV files."""
    stamp = pd.Timestamp(start, unit="s", tz="UTC").strftime("%Y-%m-%dT%H")
    p = (data.prediction_epoch >= start) & (data.prediction_epoch < start + HOUR)
    lab = (data.label_epoch >= start) & (data.label_epoch < start + HOUR)
    data.predictions.loc[p].to_csv(root / "predictions" / f"predictions_{stamp}h.csv", index=False)
    data.labels.loc[lab].to_csv(root / "labels" / f"labels_{stamp}h.csv", index=False)
    return int(p.sum()), int(lab.sum())


class Databases:
    """Fresh databases: SQLite files in the work dir, or scratch databases on a server."""

    def __init__(self, work: Path, server_url: str | None) -> None:
        self.work, self.server_url = work, server_url
        self.created: list[str] = []

    def fresh(self, name: str) -> str:
        if not self.server_url:
            return f"sqlite:///{self.work / name}.db"
        from sqlalchemy import create_engine, text

        admin = create_engine(self._psycopg(self.server_url), isolation_level="AUTOCOMMIT")
        db = f"bench_ingest_{name}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db}"'))
        admin.dispose()
        self.created.append(db)
        return self.server_url.rsplit("/", 1)[0] + "/" + db

    def drop_all(self) -> None:
        if not self.server_url or not self.created:
            return
        from sqlalchemy import create_engine, text

        admin = create_engine(self._psycopg(self.server_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for db in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()

    @staticmethod
    def _psycopg(url: str) -> str:
        return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def workspace(root: Path, data: SimulatedData, scenario: Scenario, db_url: str,  # type: ignore[no-untyped-def]
              files_per_day: int = 1):
    write_logs(data, root, fmt="csv", files_per_day=files_per_day)
    return load_config(write_config(root, scenario, database_url=db_url))


def server_cpu() -> float | None:
    """CPU seconds used so far by a PostgreSQL server on this machine (Linux /proc): every
    postgres process, plus the finished backends' time that the postmaster has reaped; None
    when no such server is visible (another machine, or not Linux)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, found = 0.0, False
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name != "postgres":
            continue
        found = True
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if fields[1] == "1" or not _is_postgres(fields[1]):  # the postmaster: its reaped children too
            total += (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime
    return total if found else None


def _is_postgres(pid: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.index("(") + 1:stat.rindex(")")] == "postgres"


class Clock:
    """Wall and CPU seconds: of this process (SQLite works in it), and of a local PostgreSQL
    server (`server`, None when it is not on this machine): the client waits on the server's
    work, so both count."""

    def __enter__(self) -> Clock:
        self.server = server_cpu()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        if self.server is not None:
            time.sleep(0.5)  # a backend that just closed is reaped (and its time added) a moment later
        after = server_cpu()
        self.server = after - self.server if after is not None and self.server is not None else None


def ratio_line(a: Clock, b: Clock) -> str:
    """The ratio row of (a) over (b), wall and CPU, under the phase table's columns."""
    return (f"{'    ratio (a) / (b), target <= 2':<46}{'':>11}{a.wall / b.wall:>9.2f}"
            f"{'':>10}{a.cpu / b.cpu:>8.2f}")


def median_line(ratios: list[tuple[float, float]]) -> str:
    """The median row of several (wall, CPU) ratios, with their ranges."""
    walls, cpus = sorted(r[0] for r in ratios), sorted(r[1] for r in ratios)
    return (f"{f'    median of {len(ratios)} ratios (range)':<46}{'':>11}{statistics.median(walls):>9.2f}"
            f"{'':>10}{statistics.median(cpus):>8.2f}   wall {walls[0]:.2f}-{walls[-1]:.2f}, "
            f"cpu {cpus[0]:.2f}-{cpus[-1]:.2f}")


class EvaluateTimer:
    """Wall seconds spent in alert evaluation (`monitor.alerts.engine.evaluate`, which
    `run_tick` calls after ingesting), to tell ingestion apart from it."""

    def __init__(self) -> None:
        import monitor.alerts.engine as alerts_engine

        self.module, self.original, self.seconds = alerts_engine, alerts_engine.evaluate, 0.0

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        alerts_engine.evaluate = timed
        import monitor.tick as tick  # run_tick holds its own reference, bound at import

        tick.evaluate = timed  # type: ignore[assignment]

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def warm_imports() -> float:
    """Import what the first tick would import (hooks: scikit-learn, scipy; alerts), timed."""
    started = time.perf_counter()
    from monitor.ingest import hooks

    hooks.reference_hooks()
    hooks.prediction_hooks()
    import monitor.alerts.engine  # noqa: F401
    import monitor.metrics.service  # noqa: F401

    return time.perf_counter() - started


def config_reading(folder: Path, root: Path, scenario: Scenario, db_url: str) -> Path:
    """A config file in `folder` that reads the files of `root` into the database `db_url`."""
    config = write_config(folder, scenario, database_url=db_url)
    text = config.read_text(encoding="utf-8")
    for relative in ('"predictions/', '"labels/', '"reference.parquet"'):  # the files of `root`
        text = text.replace(relative, f'"{root.as_posix()}/{relative[1:]}')
    config.write_text(text, encoding="utf-8")
    return config


def repeat_config(folder: Path, root: Path, scenario: Scenario, db_url: str):  # type: ignore[no-untyped-def]
    return load_config(config_reading(folder, root, scenario, db_url))


def full_pipeline(config, profile: str | None) -> tuple[Clock, object]:  # type: ignore[no-untyped-def]
    engine = make_engine(config.database_url)
    upgrade(engine)
    as_of = config_as_of(config)
    profiler = cProfile.Profile() if profile else None
    with Clock() as clock:
        if profiler:
            profiler.enable()
        summary = run_tick(engine, config, as_of=as_of, notify=False)
        if profiler:
            profiler.disable()
    if profiler:
        profiler.dump_stats(profile)
    engine.dispose()
    return clock, summary


_AS_OF: dict[str, int] = {}


def config_as_of(config) -> int:  # type: ignore[no-untyped-def]
    return _AS_OF[str(config.base_dir)]


def baseline(root: Path) -> tuple[Clock, int]:
    """pandas read_csv of every file + sqlite3 executemany of every row, one transaction."""
    path = root / "baseline.db"
    path.unlink(missing_ok=True)
    clock = Clock().__enter__()
    conn = sqlite3.connect(path, isolation_level=None)
    rows = 0
    try:
        conn.execute("BEGIN")
        for kind in ("predictions", "labels"):
            created = False
            for file in sorted((root / kind).glob("*.csv")):
                frame = pd.read_csv(file)
                if not created:
                    columns = ", ".join(f'"{c}"' for c in frame.columns)
                    conn.execute(f"CREATE TABLE {kind} ({columns})")
                    created = True
                sql = f"INSERT INTO {kind} VALUES ({', '.join('?' * frame.shape[1])})"  # noqa: S608
                conn.executemany(sql, frame.itertuples(index=False, name=None))
                rows += len(frame)
        conn.execute("COMMIT")
    finally:
        conn.close()
    clock.__exit__()
    return clock, rows


def read_any(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_parquet(path)


def floor_frames(root: Path) -> Iterator[tuple[str, pd.DataFrame, bool]]:
    """(kind, frame with None for missing values, first file of its kind) of every file of
    `root`, predictions then labels: what a floor writes."""
    for kind in ("predictions", "labels"):
        columns: list[str] | None = None
        for file in sorted((root / kind).iterdir()):
            frame = read_any(file)
            first = columns is None
            columns = list(frame.columns) if columns is None else columns
            yield kind, frame[columns].astype(object).where(frame[columns].notna(), None), first


def floor_postgres(root: Path, url: str) -> tuple[Clock, int]:
    """pandas read of every file + psycopg COPY of every row into plain text tables."""
    import psycopg
    from psycopg import sql

    rows = 0
    with Clock() as clock:
        with psycopg.connect(url) as conn, conn.cursor() as cursor:
            for kind, frame, first in floor_frames(root):
                if first:
                    cursor.execute(sql.SQL("CREATE TABLE {} ({})").format(
                        sql.Identifier(kind), sql.SQL(", ").join(
                            sql.SQL("{} text").format(sql.Identifier(c)) for c in frame.columns)))
                with cursor.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(kind))) as copy:
                    for record in frame.itertuples(index=False, name=None):
                        copy.write_row(record)
                rows += len(frame)
            conn.commit()
    return clock, rows


def floor(root: Path, dbs: Databases) -> tuple[Clock, int]:
    """(b): into SQLite, or with `--db-url` COPY into a scratch database on the same server."""
    if not dbs.server_url:
        return baseline(root)
    return floor_postgres(root, dbs.fresh("floor"))


def settle(engine, config, until: int) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL, untimed: what production does in the background after a history arrives.
    A backfill lands in the DEFAULT partitions (only this week and the next two exist ahead of
    it); the next tick moves it to weekly partitions, which costs seconds once (9 s after 365
    days of bench/tick.py, 5-7 s after this bench's 30 days) and is no hourly cost. And
    autovacuum vacuums and analyses the tables as they grow; this server runs with autovacuum
    off, so VACUUM ANALYZE stands in for it (without statistics the planner misjudges the
    partitions' sizes, and the emptied DEFAULT partitions keep their dead rows: their index
    alone cost 5-7 ms in every label lookup, and the tick's "is DEFAULT empty?" check as much)."""
    summary = run_tick(engine, config, as_of=until, notify=False)  # moves DEFAULT's rows
    if any(m.errors for m in summary.models):
        raise SystemExit(f"settling tick failed: {[m.errors for m in summary.models]}")
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE")


def extra_ticks(config, data: SimulatedData, root: Path, start: int, n: int,  # type: ignore[no-untyped-def]
                evaluate: EvaluateTimer) -> list[tuple[float, float]]:
    """(wall seconds of the tick, of which alert evaluation) for n consecutive hours."""
    engine = make_engine(config.database_url)
    if engine.dialect.name == "postgresql":
        settle(engine, config, start)
    times = []
    for k in range(n):
        hour = start + k * HOUR
        write_hour(data, root, hour)
        evaluate.take()
        began = time.perf_counter()
        summary = run_tick(engine, config, as_of=hour + HOUR, notify=False)
        times.append((time.perf_counter() - began, evaluate.take()))
        errors = [e for m in summary.models for e in m.errors]
        if errors:
            raise SystemExit(f"extra tick failed: {errors}")
    engine.dispose()
    return times


def peak_memory(root: Path, scenario: Scenario, database_url: str, as_of: int) -> tuple[float, float]:
    """(peak resident MiB, wall s) of `monitor ingest --as-of` of the same files into a fresh
    database, in a process of its own (the simulation's arrays stay out of its peak)."""
    import resource
    import subprocess
    import sys

    config = config_reading(root / "memory", root, scenario, database_url)
    upgrade_engine = make_engine(database_url)
    upgrade(upgrade_engine)
    upgrade_engine.dispose()
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, "--config", str(config), "ingest", "--as-of", str(as_of),
                           "--no-progress"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    wall = time.perf_counter() - began
    peaks = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("VmHWM ")]
    if peaks:
        return peaks[-1] / 1024, wall
    # no /proc: the children's ru_maxrss, which on Linux can also hold this process's own
    # peak (a child started by vfork inherits its parent's high-water mark at exec)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, wall


# runs `monitor ingest` and, at exit, prints its own peak resident memory (VmHWM, KiB)
PEAK_PROBE = """
import atexit, runpy, sys


def peak():
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    sys.stderr.write(f"VmHWM {line.split()[1]}\\n")
    except OSError:
        pass


atexit.register(peak)
sys.argv = ["monitor", *sys.argv[1:]]
runpy.run_module("monitor.cli", run_name="__main__", alter_sys=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="predictions over 30 days")
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--db-url", default=None,
                        help="a PostgreSQL server URL (e.g. postgresql://postgres@127.0.0.1:5432/test): "
                             "the pipeline runs in scratch databases created there and dropped after")
    parser.add_argument("--extra-ticks", type=int, default=3, help="extra hourly ticks per history length")
    parser.add_argument("--histories", default="1,10,30", help="days of history before the extra ticks")
    parser.add_argument("--profile", default=None, help="write cProfile stats of the full pipeline here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and the scratch databases")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure (a) then (b) this many times, each (a) on a fresh database, and print the "
                             "median ratio (the baseline alone varies from run to run)")
    parser.add_argument("--memory", action="store_true",
                        help="also run `monitor ingest` of the same files in a process of its own and print its peak memory")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    histories = sorted({int(h) for h in args.histories.split(",") if h.strip()})
    if any(h < 1 or h > DAYS for h in histories):
        parser.error(f"--histories must be within 1..{DAYS}")

    scenario = Scenario(days=DAYS + 1, rows_per_day=rows // DAYS, n_numeric=8, n_categorical=2,
                        start="2024-01-01")
    print(f"ingest benchmark: {rows:,} predictions over {DAYS} days, {len(scenario.features)} features, "
          f"{len(scenario.classes)} classes with scores, segments {', '.join(scenario.segments)}; "
          f"{os.cpu_count()} CPUs, load {load()} (1/5 min) at start")
    began = time.perf_counter()
    imports = warm_imports()
    evaluate = EvaluateTimer()
    data = simulate(scenario, seed=1)
    start = scenario.start_epoch
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    dbs = Databases(work, args.db_url)
    backend = "postgresql" if args.db_url else "sqlite"
    floor_name = "COPY" if args.db_url else "sqlite3 executemany"
    try:
        main_root = work / f"h{DAYS}"
        full = subset(data, start + DAYS * DAY)
        config = workspace(main_root, full, scenario, dbs.fresh(f"h{DAYS}"))
        _AS_OF[str(config.base_dir)] = start + DAYS * DAY
        n_pred, n_lab = len(full.predictions), len(full.labels)
        print(f"  simulated and wrote {n_pred:,} predictions + {n_lab:,} labels "
              f"({len(list((main_root / 'predictions').glob('*')))} + "
              f"{len(list((main_root / 'labels').glob('*')))} CSV files) in {time.perf_counter() - began:.0f} s; "
              f"imports of the hooks and alerts (scikit-learn, scipy) done first, in {imports:.1f} s")

        load_before = load()
        evaluate.take()
        full_clock, summary = full_pipeline(config, args.profile)
        full_evaluate = evaluate.take()
        model = summary.models[0]  # type: ignore[attr-defined]
        if model.errors:
            raise SystemExit(f"full pipeline failed: {model.errors}")
        load_full = f"{load_before} -> {load()}"
        load_before = load()
        base_clock, base_rows = floor(main_root, dbs)
        load_base = f"{load_before} -> {load()}"
        total = n_pred + n_lab
        assert base_rows == total, (base_rows, total)
        pairs = [(full_clock, base_clock, load_full, load_base)]
        for attempt in range(1, args.repeat):  # (a) on a fresh database of the same files, then (b)
            again = repeat_config(work / f"repeat{attempt}", main_root, scenario, dbs.fresh(f"repeat{attempt}"))
            _AS_OF[str(again.base_dir)] = start + DAYS * DAY
            load_before = load()
            clock_a, _ = full_pipeline(again, None)
            load_a = f"{load_before} -> {load()}"
            load_before = load()
            clock_b, _ = floor(main_root, dbs)
            pairs.append((clock_a, clock_b, load_a, f"{load_before} -> {load()}"))

        memory = peak_memory(main_root, scenario, dbs.fresh("memory"), start + DAYS * DAY) if args.memory else None

        ticks: dict[int, list[tuple[float, float]]] = {}
        tick_load: dict[int, str] = {}
        for days in histories:
            if days == DAYS:
                history_config, root = config, main_root
            else:
                root = work / f"h{days}"
                history_config = workspace(root, subset(data, start + days * DAY), scenario,
                                           dbs.fresh(f"h{days}"))
                _AS_OF[str(history_config.base_dir)] = start + days * DAY
                engine = make_engine(history_config.database_url)
                upgrade(engine)
                run_tick(engine, history_config, as_of=start + days * DAY, notify=False)
                engine.dispose()
            load_before = load()
            ticks[days] = extra_ticks(history_config, data, root, start + days * DAY, args.extra_ticks, evaluate)
            tick_load[days] = f"{load_before} -> {load()}"

        hour = (start + DAYS * DAY, start + DAYS * DAY + HOUR)
        hour_pred = int(((data.prediction_epoch >= hour[0]) & (data.prediction_epoch < hour[1])).sum())
        hour_lab = int(((data.label_epoch >= hour[0]) & (data.label_epoch < hour[1])).sum())
        print()
        print(f"{'phase':<46}{'rows':>11}{'wall s':>9}{'rows/s':>10}{'cpu s':>8}   load 1/5 min")
        for clock_a, clock_b, load_a, load_b in pairs:
            for name, clock, where in ((f"(a) full pipeline: run_tick, {backend}", clock_a, load_a),
                                       (f"(b) baseline: read_csv + {floor_name}", clock_b, load_b)):
                print(f"{name:<46}{total:>11,}{clock.wall:>9.1f}{total / clock.wall:>10,.0f}{clock.cpu:>8.1f}   "
                      + where + (f"; server cpu {clock.server:.1f} s" if args.db_url and clock.server is not None
                                 else ""))
            print(ratio_line(clock_a, clock_b))
            if args.db_url and clock_a.server is not None:
                print(f"    (a)'s server CPU alone is {clock_a.server / clock_b.wall:.2f}x (b)'s wall time: "
                      f"the lowest ratio any client-side change could reach")
        if len(pairs) > 1:
            print(median_line([(a.wall / b.wall, a.cpu / b.cpu) for a, b, _, _ in pairs]))
        print(f"    (a) includes {full_evaluate:.1f} s of alert evaluation at the end of the tick")
        print(f"(c) one extra tick of 1 hour (~{hour_pred:,} predictions + ~{hour_lab:,} labels, 2 new files), "
              f"target < 1 s and flat in history; wall s (of which alert evaluation):")
        for days in histories:
            each = ", ".join(f"{t:.2f} ({e:.2f})" for t, e in ticks[days])
            median = statistics.median(t for t, _ in ticks[days])
            ingest = statistics.median(t - e for t, e in ticks[days])
            print(f"    after {days:>2} days of history: median {median:.2f} s, without alert evaluation "
                  f"{ingest:.2f} s; each: {each}   load {tick_load[days]}")
        if memory is not None:
            print(f"peak memory of `monitor ingest` of the same files in a process of its own: {memory[0]:,.0f} MiB "
                  f"(target < 1 GiB), {memory[1]:.0f} s wall")
        print(f"  run_tick (a): {model.predictions:,} predictions and {model.labels:,} labels accepted, "
              f"{model.skipped:,} skipped (re-sent labels), {model.rejected} rejected")
        print(f"  total wall time {time.perf_counter() - began:.0f} s; work dir {work}"
              + ("" if args.keep else " (removed)"))
    finally:
        if args.keep:
            if dbs.created:
                print(f"  kept the scratch databases: {', '.join(dbs.created)}")
        else:
            dbs.drop_all()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

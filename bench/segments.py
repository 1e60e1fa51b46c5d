"""Benchmark: many segment values at the largest legal configuration.

    python bench/segments.py [--quick] [--days 30,90] [--per-hour 3000] [--values 50,500]
                             [--skews uniform,zipf] [--extra-ticks 4] [--db-url postgresql://...]
                             [--dashboard-repeat 10] [--profile FILE]

Data: the simulator's world (10 features, 3 classes with scores, the rare one at 3%, labels
arriving over days) with its segment columns replaced by 4 attributes of V values each
(`--values`; 500 is the default `limits.max_segment_values`), drawn uniformly or Zipf-skewed
(weight 1/k^1.1), `--per-hour` predictions an hour. For each (V, skew, history) a fresh
database ingests the history through `run_tick`, as bench/tick.py does (its helpers), then
one more hour arrives per extra tick and `run_tick(notify=False)` is timed, with
`intersections` off and on in turn (the counts are the same; only the series differ). Printed
per tick: wall seconds, of which alert evaluation, the series evaluated (alert_series rows per
rule and window end), the count tables' rows, and the peak resident memory of one
`monitor ingest` tick in a process of its own. Then the dashboard's Subgroups, Fairness and
Overview callbacks are called as Dash calls them (bench/dashboard.py's `measure`), cold and
warm, with the bytes of their JSON. Ratios are against the first (smallest) V of the same run.

`--quick`: 2 days of history at 1,000 an hour, V = 50 and 500, uniform only (about 3 minutes).
Only 127.0.0.1 is spoken to; scratch databases are created on the server and dropped after.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard import _jsonable, measure  # noqa: E402
from ingest import (  # noqa: E402
    DAY,
    HOUR,
    PEAK_PROBE,
    Databases,
    EvaluateTimer,
    load,
    settle,
    subset,
    warm_imports,
    workspace,
    write_hour,
)
from sqlalchemy import text  # noqa: E402

from monitor.config import load_config  # noqa: E402
from monitor.simulate import Scenario, simulate  # noqa: E402
from monitor.simulate.files import write_config  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402
from monitor.tick import run_tick  # noqa: E402

ATTRIBUTES = ("store", "product", "city", "channel")
TABLES = ("slices", "slice_values", "confusion_counts", "prediction_counts", "drift_histograms",
          "expected_counts", "alert_series", "alerts", "incidents")


def with_segments(data: Any, values: int, skew: str, seed: int) -> Any:
    """`data` with its segment columns replaced by ATTRIBUTES of `values` values each."""
    rng = np.random.default_rng(seed)
    weights = np.ones(values) if skew == "uniform" else 1.0 / np.arange(1, values + 1) ** 1.1
    weights = weights / weights.sum()

    def draw(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.drop(columns=[c for c in data.scenario.segments if c in frame.columns])
        for attribute in ATTRIBUTES:
            names = np.array([f"{attribute}_{i:03d}" for i in range(values)], dtype=object)
            frame[attribute] = names[rng.choice(values, size=len(frame), p=weights)]
        return frame

    return replace(data, predictions=draw(data.predictions), reference=draw(data.reference))


def configure(root: Path, scenario: Scenario, url: str, intersections: bool) -> Any:
    """A config for the files of `root` with ATTRIBUTES as segments (the rule on every set)."""
    folder = root / ("pairs" if intersections else "single")
    path = write_config(folder, scenario, database_url=url, model_extra={
        "segments": list(ATTRIBUTES), "intersections": intersections,
        "alerts": [{"name": "minority-recall", "metric": "recall", "classes": "minority",
                    "window": "7d", "min_support": 30, "min_drop": 0.10}]})  # every segment set
    body = path.read_text(encoding="utf-8")
    for relative in ('"predictions/', '"labels/', '"reference.parquet"'):
        body = body.replace(relative, f'"{root.as_posix()}/{relative[1:]}')
    path.write_text(body, encoding="utf-8")
    return load_config(path)


def table_rows(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())  # noqa: S608
                for name in TABLES}


class Observations:
    """Rows (series x window ends) that alert evaluation classifies (`engine.classify`)."""

    def __init__(self) -> None:
        import monitor.alerts.engine as alerts_engine

        self.rows, original = 0, alerts_engine.classify

        def counted(frame, rules):  # type: ignore[no-untyped-def]
            self.rows += len(frame)
            return original(frame, rules)

        alerts_engine.classify = counted

    def take(self) -> int:
        rows, self.rows = self.rows, 0
        return rows


def peak_tick(config_path: Path, as_of: int) -> float:
    """Peak resident MiB of one `monitor ingest --as-of` tick in a process of its own."""
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, "--config", str(config_path), "ingest",
                           "--as-of", str(as_of), "--no-progress"], check=False, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    peaks = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("VmHWM ")]
    if done.returncode != 0:
        print(f"    memory probe exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return peaks[-1] / 1024 if peaks else float("nan")


def dashboard(config: Any, repeat: int) -> list[tuple[str, float, float, float, float, int]]:
    """(callback, cold p50, cold p95, warm p50, warm p95 ms, JSON bytes) of the pages that
    list segment values, as bench/dashboard.py calls them."""
    import plotly.io

    from dashboards.app import create_app, freeze_startup_objects

    app = create_app(config)
    freeze_startup_objects()
    pages = {name: sys.modules[f"dashboards.pages.{name}"] for name in ("overview", "subgroups", "fairness")}
    model, window = config.models[0].name, "7d"
    calls: list[tuple[str, Any]] = [
        ("overview: update_overview", lambda: pages["overview"].update_overview(None, window, None, None)),
        *[(f"subgroups: {attribute}", (lambda a=attribute: pages["subgroups"].update_subgroups(
            None, model, window, None, None, "critical", a))) for attribute in (ATTRIBUTES[0],
                                                                                 f"{ATTRIBUTES[0]}&{ATTRIBUTES[1]}")],
        ("fairness: update_fairness", lambda: pages["fairness"].update_fairness(
            None, model, window, None, None, "critical", None, None, None, None)),
    ]
    out = []
    with app.server.test_request_context("/"):
        clear = app.server.extensions["monitor"].cache.clear
        for name, call in calls:
            try:
                size = len(plotly.io.json.to_json_plotly(_jsonable(call())))
                out.append((*measure(name, call, repeat, clear), size))
            except Exception as error:  # noqa: BLE001 - a page that fails is a finding, printed
                print(f"    {name}: {type(error).__name__}: {str(error)[:200]}")
    return out


def main() -> None:  # noqa: C901, PLR0915 - one bench, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 days, 1,000 an hour, uniform, V = 50 and 500")
    parser.add_argument("--days", default="30,90", help="days of history")
    parser.add_argument("--per-hour", type=int, default=3_000)
    parser.add_argument("--values", default="50,500", help="values per attribute; the first is the baseline")
    parser.add_argument("--skews", default="uniform,zipf")
    parser.add_argument("--extra-ticks", type=int, default=4, help="timed ticks, intersections off and on in turn")
    parser.add_argument("--db-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--dashboard-repeat", type=int, default=10)
    parser.add_argument("--profile", default=None, help="cProfile stats of the last history's timed ticks")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and the scratch databases")
    args = parser.parse_args()
    if args.quick:
        args.days, args.per_hour, args.skews, args.extra_ticks, args.dashboard_repeat = "2", 1_000, "uniform", 2, 1
    if urlsplit(args.db_url).hostname not in ("127.0.0.1", None):
        parser.error("--db-url must be on 127.0.0.1")
    histories = sorted({int(d) for d in args.days.split(",")})
    value_counts = [int(v) for v in args.values.split(",")]
    skews = args.skews.split(",")

    scenario = Scenario(days=histories[-1] + 1, rows_per_day=args.per_hour * 24, n_numeric=8, n_categorical=2,
                        start="2024-01-01", segments=("segment",))
    print(f"segments benchmark: {len(ATTRIBUTES)} attributes x {value_counts} values, {skews}, "
          f"{args.per_hour:,} predictions an hour, histories {histories} days; "
          f"{os.cpu_count()} CPUs, load {load()}")
    warm_imports()
    evaluate, observed = EvaluateTimer(), Observations()
    began = time.perf_counter()
    base = simulate(scenario, seed=5)
    print(f"  simulated {len(base.predictions):,} predictions in {time.perf_counter() - began:.0f} s")
    work = Path(tempfile.mkdtemp(prefix="bench-segments-"))
    dbs = Databases(work, args.db_url)
    results: list[dict[str, Any]] = []
    try:
        for skew in skews:
            for values in value_counts:
                data = with_segments(base, values, skew, seed=values)
                for days in histories:
                    results.append(one_history(work, dbs, scenario, data, values, skew, days, args, evaluate, observed))
    finally:
        if args.keep:
            print(f"kept: {work}, databases {', '.join(dbs.created)}")
        else:
            dbs.drop_all()
            shutil.rmtree(work, ignore_errors=True)
    report(results, value_counts[0])


def one_history(work: Path, dbs: Databases, scenario: Scenario, data: Any, values: int, skew: str, days: int,
                args: Any, evaluate: EvaluateTimer,
                observed: Observations) -> dict[str, Any]:
    root = work / f"{skew}{values}d{days}"
    until = scenario.start_epoch + days * DAY
    url = dbs.fresh(f"seg{values}{skew[0]}{days}")
    workspace(root, subset(data, until), scenario, url)
    configs = {False: configure(root, scenario, url, False), True: configure(root, scenario, url, True)}
    engine = make_engine(url)
    upgrade(engine)
    began = time.perf_counter()
    summary = run_tick(engine, configs[False], as_of=until, notify=False)
    history = time.perf_counter() - began
    if any(m.errors for m in summary.models):
        raise SystemExit(f"history ingest failed: {[m.errors for m in summary.models]}")
    settle(engine, configs[True], until)  # also evaluates the pair series' backlog, untimed
    print(f"  {skew} {values} values, {days} days: history ingested in {history:.0f} s (load {load()})")
    ticks: dict[bool, list[tuple[float, float, int]]] = {False: [], True: []}
    profiler = cProfile.Profile() if args.profile else None
    for k in range(args.extra_ticks):
        pairs = bool(k % 2)
        hour = until + k * HOUR
        write_hour(data, root, hour)
        evaluate.take()
        observed.take()
        if profiler:
            profiler.enable()
        began = time.perf_counter()
        summary = run_tick(engine, configs[pairs], as_of=hour + HOUR, notify=False, full_scan=False)
        wall = time.perf_counter() - began
        if profiler:
            profiler.disable()
        if any(m.errors for m in summary.models):
            raise SystemExit(f"extra tick failed: {[m.errors for m in summary.models]}")
        ticks[pairs].append((wall, evaluate.take(), observed.take()))
        print(f"    tick {k + 1} (intersections {'on' if pairs else 'off'}): {wall:.2f} s, "
              f"alerts {ticks[pairs][-1][1]:.2f} s, {ticks[pairs][-1][2]:,} series x ends classified")
    if profiler:
        profiler.dump_stats(args.profile)
    hour = until + args.extra_ticks * HOUR
    write_hour(data, root, hour)
    memory = peak_tick(root / "pairs" / "monitor.toml", hour + HOUR)
    rows = table_rows(engine)
    engine.dispose()
    pages = dashboard(configs[True], args.dashboard_repeat)
    return {"values": values, "skew": skew, "days": days, "history": history, "ticks": ticks, "rows": rows,
            "memory": memory, "pages": pages}


def report(results: list[dict[str, Any]], baseline_values: int) -> None:
    print()
    print(f"{'values':>7} {'skew':>8} {'days':>5} {'tick off':>9} {'tick on':>8} {'alerts off':>11} "
          f"{'alerts on':>10} {'on/off':>7} {'vs base':>8} {'series':>9} {'slices':>9} {'confusion':>10} "
          f"{'histograms':>11} {'peak MiB':>9}")
    base = {(r["skew"], r["days"]): r for r in results if r["values"] == baseline_values}
    for r in results:
        off = statistics.median(t[0] for t in r["ticks"][False]) if r["ticks"][False] else float("nan")
        on = statistics.median(t[0] for t in r["ticks"][True]) if r["ticks"][True] else float("nan")
        eval_off = statistics.median(t[1] for t in r["ticks"][False]) if r["ticks"][False] else float("nan")
        eval_on = statistics.median(t[1] for t in r["ticks"][True]) if r["ticks"][True] else float("nan")
        b = base.get((r["skew"], r["days"]))
        b_on = statistics.median(t[0] for t in b["ticks"][True]) if b and b["ticks"][True] else float("nan")
        rows = r["rows"]
        print(f"{r['values']:>7} {r['skew']:>8} {r['days']:>5} {off:>9.2f} {on:>8.2f} {eval_off:>11.2f} "
              f"{eval_on:>10.2f} {on / off:>6.2f}x {on / b_on:>7.2f}x {rows['alert_series']:>9,} "
              f"{rows['slices']:>9,} {rows['confusion_counts']:>10,} {rows['drift_histograms']:>11,} "
              f"{r['memory']:>9.0f}")
    print("  spreads (tick wall s, off | on): " + "; ".join(
        f"{r['values']}/{r['skew']}/{r['days']}d " + ",".join(f"{t[0]:.2f}" for t in r["ticks"][False]) + " | "
        + ",".join(f"{t[0]:.2f}" for t in r["ticks"][True]) for r in results))
    print()
    print(f"{'dashboard (ms)':>40} {'cold p50':>9} {'cold p95':>9} {'warm p95':>9} {'KiB':>8} {'vs base p95':>12}")
    for r in results:
        b = base.get((r["skew"], r["days"]))
        base_pages = {p[0]: p for p in b["pages"]} if b else {}
        for name, cold50, cold95, _warm50, warm95, size in r["pages"]:
            ratio = cold95 / base_pages[name][2] if name in base_pages else float("nan")
            flag = "" if cold95 < 300 else "  over 300 ms"
            print(f"{r['values']:>4} {r['skew'][:4]} {r['days']:>3}d {name:>28} {cold50:>9.0f} {cold95:>9.0f} "
                  f"{warm95:>9.0f} {size / 1024:>8.0f} {ratio:>11.2f}x{flag}")


if __name__ == "__main__":
    main()

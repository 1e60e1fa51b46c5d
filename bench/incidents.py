"""Benchmark: incidents (alerts grouped by cause) vs per-series alerts on seeded simulated faults.

Each scenario is simulated, written as log files and ingested by the real tick (rules, slice
search, grouping; no channel) into a fresh SQLite database, at a clock 10 days after the data
so that most labels have arrived. Prints, in one run:

- root-cause accuracy on single-cause faults (a region, an age band, an intersection
  sex=F & region=south): top-1 = the first incident names the true slice; top-3 = the true
  slice is among the first three slices the search ranks at the incident's window end;
- notifications per fault: incident events to send (opened, escalated, resolved) vs the
  events the member alerts would have sent on their own (today's per-series baseline), both
  from the fault's start on (incidents and alerts before it are the stream's own false ones);
- detection delay: the first incident's `fired_at` minus the fault's start vs the first
  alert's (incidents must not be later);
- incidents per 1,000 series-days on stable streams (no fault): false incidents.

    python bench/incidents.py            # 36 scenarios (6 seeds each), ~6 minutes on one core
    python bench/incidents.py --seeds 8  # more seeds
    python bench/incidents.py --quick    # 7 scenarios
    python bench/incidents.py --seeds 12 --start 6 --misses  # seeds 6-17, explain every miss
    python bench/incidents.py --jobs 2   # two scenarios at a time
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import select

from monitor.alerts.incidents import incidents_frame
from monitor.alerts.models import AlertEvent
from monitor.alerts.service import alerts_frame, series_frame
from monitor.config import load_config
from monitor.incidents.slices import slices_frame
from monitor.read.context import model_context
from monitor.simulate import Fault, Scenario, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.tick import run_tick
from monitor.timeutil import parse_time

DAY = 86400
FAULT_DAY = 14
DAYS = 21
LABEL_DAYS = 10


@dataclass
class Case:
    name: str
    truth: str | None  # "segment=value" of the true cause; "*" global; None stable
    faults: list[Fault]
    pair: bool = False


def base(**overrides) -> Scenario:  # type: ignore[no-untyped-def]
    values = dict(start="2024-01-01", days=DAYS, rows_per_day=1500, reference_rows=20_000, n_regions=4,
                  n_numeric=1, n_categorical=1)
    values.update(overrides)
    return Scenario(**values)


def single(segment: str, value: str) -> list[Fault]:
    return [Fault(start_day=FAULT_DAY, segment=segment, value=value, cls="critical", recall_factor=0.1)]


def break_pair(data, start: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    """A fault in sex=F & region=south only (90% of its critical cases missed from `start`)."""
    predictions = data.predictions
    truth = data.labels.drop_duplicates("prediction_id", keep="last").set_index("prediction_id")["label"]
    label = predictions["prediction_id"].map(truth)
    inside = np.array((predictions["region"] == "south") & (predictions["sex"] == "F") & (label == "critical")
                      & (data.prediction_epoch >= start), dtype=bool)
    inside &= np.random.default_rng(seed).random(len(inside)) < 0.9
    other = predictions.loc[~predictions["prediction"].eq("critical"), "prediction"].mode().iloc[0]
    predictions.loc[inside, "prediction"] = other


def run(case: Case, seed: int, folder: Path) -> dict[str, object]:
    scenario = base(faults=case.faults)
    data = simulate(scenario, seed=seed)
    fault_start = scenario.start_epoch + FAULT_DAY * DAY
    if case.pair:
        break_pair(data, fault_start, seed)
    write_logs(data, folder, fmt="csv")
    url = f"sqlite:///{folder / 'bench.db'}"
    config = load_config(write_config(folder, scenario, database_url=url))
    engine = make_engine(url)
    try:
        upgrade(engine)
        end = scenario.start_epoch + DAYS * DAY
        run_tick(engine, config, as_of=end + LABEL_DAYS * DAY, notify=False)
        with engine.connect() as conn:
            alerts = alerts_frame(conn)
            incidents = incidents_frame(conn).sort_values("id")
            series = len(series_frame(conn))
            after = fault_start if case.truth is not None else scenario.start_epoch
            kinds = conn.execute(select(AlertEvent.incident_id, AlertEvent.kind)
                                 .where(AlertEvent.data_time >= after)).all()
            # the fault's incidents: those holding an alert fired since the fault started (an
            # incident of the stream's own before it may absorb them; false incidents are
            # counted on the stable streams)
            alerts = alerts.loc[np.array([t is not None and parse_time(t) >= after for t in alerts["fired_at"]],
                                         dtype=bool)]
            incidents = incidents.loc[incidents["id"].isin(set(alerts["incident_id"].dropna().astype(int)))]
            ours = set(incidents["id"].astype(int))
            top3: list[str] = []
            detail: list[str] = []
            if len(incidents):
                first = incidents.iloc[0]
                ctx = model_context(conn, config.models[0])
                ranked = slices_frame(conn, ctx, cls=str(first["class"]), end=parse_time(first["fired_at"]),
                                      window=7 * DAY)
                top3 = [f"{s}={v}" for s, v in zip(ranked["segment"].iloc[1:4], ranked["segment_value"].iloc[1:4],
                                                    strict=True)]
                detail = _detail(incidents, ranked, fault_start)
    finally:
        engine.dispose()
    causes = [f"{s}={v}" for s, v in zip(incidents["segment"], incidents["segment_value"], strict=True)]
    causes = ["*" if c == "*=*" else c for c in causes]
    first_alert = min((parse_time(t) for t in alerts["fired_at"].dropna()), default=None)
    first_incident = min((parse_time(t) for t in incidents["fired_at"]), default=None)
    return {
        "case": case.name, "seed": seed, "truth": case.truth, "incidents": len(incidents), "causes": causes,
        "top1": bool(causes) and causes[0] == case.truth,
        "inside": bool(causes) and case.truth is not None and _inside(causes[0], case.truth),
        "top3": case.truth in causes[:1] + top3,
        # the events of the fault's incidents (an earlier incident of the stream's own that
        # resolves after the fault's start is no notification of the fault), and of every one
        "incident_events": sum(1 for incident_id, _ in kinds if incident_id in ours),
        "any_incident_events": sum(1 for incident_id, _ in kinds if incident_id is not None),
        "alert_events": sum(1 for incident_id, _ in kinds if incident_id is None),
        "incident_kinds": sorted(kind for incident_id, kind in kinds if incident_id in ours),
        "alert_delay": None if first_alert is None else (first_alert - fault_start) / DAY,
        "incident_delay": None if first_incident is None else (first_incident - fault_start) / DAY,
        "series_days": series * (DAYS - 7 + 1),
        "detail": detail,
    }


def _detail(incidents: pd.DataFrame, ranked: pd.DataFrame, fault_start: int) -> list[str]:
    """For --misses: the fault's incidents (cause, day after the fault's start, members) and
    the slice search at the first one's window end (the top rows with their numbers)."""
    lines = []
    for _, incident in incidents.iterrows():
        day = (parse_time(incident["fired_at"]) - fault_start) / DAY
        cause = f"{incident['segment']}={incident['segment_value']}"
        lines.append(f"  incident {incident['id']} {cause} {incident['severity']} at day {day:+.1f}: "
                     f"explains {', '.join(incident['explains'])}")
    for _, row in ranked.head(8).iterrows():
        lines.append(f"    {row['segment']}={row['segment_value']:24s} {row['status']:9s} n={row['support']:4d} "
                     f"recall {row['recall']:.2f} ref {row['reference_recall']:.2f} excess {row['excess_fn']:6.1f} "
                     f"share {row['share']:.2f} lift {row['lift']:.2f}")
    return lines


def _inside(cause: str, truth: str) -> bool:
    """The cause is the true slice or a slice inside it (region=south for sex&region=F&south
    is not; age_band&region=18-34&south for region=south is)."""
    def pairs(name: str) -> set[tuple[str, str]]:
        if name == "*":
            return set()
        segment, value = name.split("=", 1)
        return set(zip(segment.split("&"), value.split("&"), strict=True))
    return pairs(truth) <= pairs(cause)


CASES = [
    Case("region=south", "region=south", single("region", "south")),
    Case("region=north", "region=north", single("region", "north")),
    Case("age_band=55+", "age_band=55+", single("age_band", "55+")),
    Case("sex=F&south", "sex&region=F&south", [], pair=True),
    Case("global", "*", [Fault(start_day=FAULT_DAY, segment=None, value=None, cls="critical", recall_factor=0.3)]),
    Case("stable", None, []),
]


def _run_in_folder(case: Case, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-incidents-") as folder:
        return run(case, seed, Path(folder))


def _missed(row: dict[str, object]) -> bool:
    if row["truth"] is None:
        return bool(row["incidents"])
    return not row["top1"] or row["incidents"] != 1 or row["incident_events"] != 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed per case (plus a second stable one)")
    parser.add_argument("--seeds", type=int, default=6, help="seeds per case (default 6: 24 single-cause faults)")
    parser.add_argument("--start", type=int, default=1, help="first seed (default 1: seeds 1 to --seeds)")
    parser.add_argument("--misses", action="store_true",
                        help="explain every miss: the fault's incidents and the slice search at the first one")
    parser.add_argument("--cases", help="comma-separated case names to run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run at a time (processes)")
    args = parser.parse_args()
    seeds = [args.start] if args.quick else list(range(args.start, args.start + args.seeds))
    started = time.perf_counter()
    cases = [c for c in CASES if args.cases is None or c.name in args.cases.split(",")]
    todo = [(case, seed) for case in cases
            for seed in seeds + ([args.start + 1] if args.quick and case.truth is None else [])]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(_run_in_folder, case, seed) for case, seed in todo]
        rows = []
        for (case, seed), future in zip(todo, futures, strict=True):
            row = future.result()
            rows.append(row)
            mark = "  MISS" if _missed(row) else ""
            print(f"{case.name:14s} seed {seed}: {row['incidents']} incident(s) {row['causes']} "
                  f"notifications {row['incident_kinds']}{mark}", flush=True)
            if args.misses and mark:
                print("\n".join(cast(list[str], row["detail"])), flush=True)
    print(f"seeds {seeds[0]} to {seeds[-1]}")
    frame = pd.DataFrame(rows)
    faults = frame[frame["truth"].notna()]
    single_cause = faults[faults["truth"] != "*"]
    stable = frame[frame["truth"].isna()]
    print(f"\n{len(frame)} scenarios in {time.perf_counter() - started:.0f} s")
    print(f"root cause, single-cause faults ({len(single_cause)}): top-1 {single_cause['top1'].mean():.0%}, "
          f"top-3 {single_cause['top3'].mean():.0%}, the true slice or a slice inside it first "
          f"{single_cause['inside'].mean():.0%}; global shifts named global: "
          f"{(faults[faults['truth'] == '*']['top1']).mean():.0%}")
    print(f"incidents per fault: {faults['incidents'].mean():.2f} (exactly one: {(faults['incidents'] == 1).mean():.0%})")
    incident_events, alert_events = faults["incident_events"].sum(), faults["alert_events"].sum()
    print(f"notifications per fault: incidents {incident_events / len(faults):.2f} vs per-series alerts "
          f"{alert_events / len(faults):.2f} ({alert_events / max(incident_events, 1):.1f}x fewer); exactly one "
          f"notification: {(faults['incident_events'] == 1).mean():.0%} of faults; counting the events of every "
          f"incident since the fault's start: {faults['any_incident_events'].sum() / len(faults):.2f}")
    detected = faults.dropna(subset=["alert_delay", "incident_delay"])
    later = (detected["incident_delay"] > detected["alert_delay"]).sum()
    print(f"detection delay (days after the fault's start): incidents median {detected['incident_delay'].median():.1f}"
          f" vs first alert {detected['alert_delay'].median():.1f}; incidents later than the first alert: {later}")
    rate = 1000 * stable["incidents"].sum() / max(stable["series_days"].sum(), 1)
    print(f"stable streams: {stable['incidents'].sum()} incidents over {stable['series_days'].sum()} series-days "
          f"= {rate:.2f} per 1,000 series-days")


if __name__ == "__main__":
    main()

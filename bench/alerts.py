"""Benchmark: our alert rule vs the naive rule on many seeded simulated scenarios.

Prints, in one run:
- detection delay: days of faulty data from the fault's start to the first firing on the
  faulty subgroup (window end - fault start), median and 90th percentile, and the miss rate;
- false alerts per 1,000 series-days: firing onsets on series without the fault (and on every
  series before it), divided by the series-days evaluated.

"Ours" is the rule engine's decision path (`monitor.alerts.offline.replay`: one-sided test,
Benjamini-Hochberg per window end, min_drop, min_support, pending period, hysteresis) with the
default rule (7d window, min_support 30, min_drop 0.10). "Naive" fires whenever the window's
point recall is below the reference minus min_drop. Both see the same windows (every label
arrived) and the same per-subgroup reference.

    python bench/alerts.py            # 48 scenarios, ~3-4 minutes
    python bench/alerts.py --quick    # 12 scenarios, under a minute
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from monitor.alerts.offline import naive_onsets, replay, window_observations
from monitor.alerts.rules import default_rule
from monitor.simulate import Fault, Scenario, simulate

DAY = 86400


def rows_of(data) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    truth = data.truth.set_index("prediction_id")["label"]
    return pd.DataFrame({
        "ts": data.prediction_epoch,
        "prediction": data.predictions["prediction"].astype(str).to_numpy(),
        "label": truth.reindex(data.predictions["prediction_id"]).astype(str).to_numpy(),
        "region": data.predictions["region"].astype(str).to_numpy(),
    })


def scenarios(quick: bool) -> list[tuple[Scenario, int, Fault | None]]:
    rng = np.random.default_rng(2024)
    n = 6 if quick else 24
    out = []
    for index in range(n):  # stable streams
        regions = int(rng.choice([4, 8, 20]))
        out.append((Scenario(start="2024-01-01", days=90 if quick else 120, rows_per_day=2000,
                             segments=("region",), n_regions=regions), 100 + index, None))
    for index in range(n):  # a collapse of the rare class in one region
        regions = int(rng.choice([4, 8]))
        value = str(rng.choice(["north", "south", "east"]))
        fault = Fault(start_day=45, segment="region", value=value, cls="critical",
                      recall_factor=float(rng.choice([0.1, 0.3, 0.5])))
        out.append((Scenario(start="2024-01-01", days=75, rows_per_day=2000, segments=("region",),
                             n_regions=regions, faults=[fault]), 500 + index, fault))
    return out


def evaluate(scenario: Scenario, seed: int, fault: Fault | None) -> dict[str, float]:
    rule = default_rule()
    data = simulate(scenario, seed=seed)
    reference = data.reference.assign(region=data.reference["region"].astype(str),
                                      prediction=data.reference["prediction"].astype(str),
                                      label=data.reference["label"].astype(str))
    observations = window_observations(rows_of(data), reference, cls="critical", segments=["region"],
                                       start=scenario.start_epoch, days=scenario.days, rule=rule)
    ours = replay(observations, rule)
    ours = ours[ours["transition"] == "firing"][["segment", "segment_value", "end"]]
    naive = naive_onsets(observations, rule.min_drop)
    fault_start = scenario.start_epoch + (fault.start_day * DAY if fault else 10**12)
    affected = {("*", "*")} | ({("region", fault.value)} if fault else set())
    series = observations[["segment", "segment_value"]].apply(tuple, axis=1)
    clean = ~series.isin(affected) | (observations["end"] <= fault_start)
    result: dict[str, float] = {"series_days": float(clean.sum())}
    for name, onsets in (("ours", ours), ("naive", naive)):
        keys = onsets[["segment", "segment_value"]].apply(tuple, axis=1) if len(onsets) else pd.Series(dtype=object)
        false = (~keys.isin(affected)) | (onsets["end"] <= fault_start) if len(onsets) else pd.Series(dtype=bool)
        result[f"{name}_false"] = float(false.sum())
        if fault is not None:
            hits = onsets[(keys == ("region", fault.value)) & (onsets["end"] > fault_start)] if len(onsets) else onsets
            result[f"{name}_delay"] = float((hits["end"].min() - fault_start) / DAY) if len(hits) else np.nan
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 scenarios instead of 48")
    args = parser.parse_args()
    started = time.time()
    rows = []
    for scenario, seed, fault in scenarios(args.quick):
        result = evaluate(scenario, seed, fault)
        result["faulty"] = fault is not None
        result["recall_factor"] = fault.recall_factor if fault else np.nan
        rows.append(result)
    frame = pd.DataFrame(rows)
    series_days = frame["series_days"].sum()
    faulty = frame[frame["faulty"]]
    print(f"{len(frame)} scenarios ({int((~frame['faulty']).sum())} stable, {len(faulty)} with a collapse "
          f"in one region), {int(series_days)} clean series-days, {time.time() - started:.0f} s")
    print(f"{'rule':<6} {'false/1000 series-days':>23} {'delay median':>13} {'delay p90':>10} {'missed':>7}")
    for name in ("ours", "naive"):
        rate = 1000 * frame[f"{name}_false"].sum() / series_days
        delays = faulty[f"{name}_delay"]
        print(f"{name:<6} {rate:>23.3f} {np.nanmedian(delays):>12.1f}d {np.nanpercentile(delays, 90):>9.1f}d "
              f"{int(delays.isna().sum()):>4}/{len(delays)}")
    ours_rate = frame["ours_false"].sum() / series_days
    naive_rate = frame["naive_false"].sum() / series_days
    both = faulty.dropna(subset=["ours_delay", "naive_delay"])
    ratio = both["ours_delay"].mean() / both["naive_delay"].mean() if len(both) else np.nan
    print(f"false alerts: naive / ours = {naive_rate / ours_rate if ours_rate else float('inf'):.1f}x "
          f"(target >= 10x); mean detection delay ours / naive = {ratio:.2f} (target <= 1.5)")
    by_factor = faulty.groupby("recall_factor")[["ours_delay", "naive_delay"]].median()
    print("median delay by recall factor of the fault (days of data):")
    print(by_factor.to_string())


if __name__ == "__main__":
    main()

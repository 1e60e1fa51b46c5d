"""Benchmark: drift for 20 features on 1,000,000 rows (30 daily windows), this project vs
Evidently's DataDriftPreset on the same data, with the verdicts on seeded shifts compared.

    python bench/drift.py [--quick] [--evidently-python PATH] [--skip-evidently]

This project: the drift ingest hooks build histograms once (as the scheduler does, one batch
per day), then `drift_frame` computes every record (psi, js, ks, wasserstein, chi2) for the 30
daily windows from the stored counts. Evidently: one DataDriftPreset report per daily window on
the raw rows (its defaults for n > 1000: normed Wasserstein for numeric columns, Jensen-Shannon
for categorical ones, both at 0.1). Data simulation and loading are not timed on either side.
Evidently runs in the interpreter given by --evidently-python (default $EVIDENTLY_PYTHON, else
this one): it is a benchmark-only dependency, e.g. `python -m venv /tmp/evvenv &&
/tmp/evvenv/bin/pip install evidently "pandas<3" pyarrow`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import parse_config  # noqa: E402
from monitor.context import load_context  # noqa: E402
from monitor.drift import aggregate  # noqa: E402
from monitor.drift.service import drift_frame  # noqa: E402
from monitor.ingest.pipeline import slice_ids  # noqa: E402
from monitor.simulate import Fault, Scenario, simulate  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402
from monitor.store.windows import WindowSpec  # noqa: E402

DAY = 86400
SHIFT_DAY = 20
SHIFTED = ("num_0", "cat_0")

EVIDENTLY_SCRIPT = r'''
import json, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
folder, numeric, categorical = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
every = int(sys.argv[4])
reference = pd.read_parquet(f"{folder}/reference.parquet")
current = pd.read_parquet(f"{folder}/current.parquet")
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
days = sorted(current["day"].unique())[::every]
verdicts = {}
started, cpu = time.perf_counter(), time.process_time()
ref = Dataset.from_pandas(reference[numeric + categorical], data_definition=definition)
for day in days:
    cur = Dataset.from_pandas(current.loc[current["day"] == day, numeric + categorical], data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            value, threshold = float(metric["value"]), float(config["threshold"])
            pvalue = "p_value" in config["method"].lower() or "test" in config["method"].lower()
            verdicts[f"{day}|{config['column']}"] = [config["method"], value, threshold,
                                                      value < threshold if pvalue else value > threshold]
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "windows": len(days), "verdicts": verdicts}))
'''


def scenario(rows: int) -> Scenario:
    faults = [Fault(start_day=SHIFT_DAY, kind="covariate", segment=None, value=None,
                    drift_feature=name, shift=shift) for name, shift in (("num_0", 0.5), ("cat_0", 1.5))]
    return Scenario(days=30, rows_per_day=rows // 30, n_numeric=16, n_categorical=4,
                    reference_rows=50_000, faults=faults)


def canonical(conn, ctx, log: pd.DataFrame) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    frame = log.rename(columns={"prediction": "predicted"})
    if "timestamp" in frame:
        stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        frame = frame.assign(ts=((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("float64"))
    else:
        frame = frame.assign(ts=0.0)
    frame = frame.assign(**{s: frame[s].astype(object).where(frame[s].notna(), "(missing)") for s in ctx.segments})
    return frame.assign(slice_id=slice_ids(conn, ctx, frame).to_numpy())


def run_ours(data, sc: Scenario, workdir: Path, *, segments: bool) -> dict:  # type: ignore[no-untyped-def]
    """Histograms at ingest, then drift records. Without segments the work is Evidently's
    (overall drift); with the scenario's three segment attributes the histograms are per slice
    (24 combinations) and every segment value gets its own records too."""
    url = f"sqlite:///{workdir / ('segments.db' if segments else 'overall.db')}"
    engine = make_engine(url)
    upgrade(engine)
    model = parse_config({"models": [{"name": "bench", "classes": list(sc.classes),
                                      "segments": list(sc.segments) if segments else [],
                                      "features": sc.features}]}).models[0]
    day_index = (pd.to_datetime(data.predictions["timestamp"], utc=True) - pd.Timestamp(sc.start, tz="UTC")).dt.days
    with engine.begin() as conn:
        ctx = load_context(conn, model)
        reference = canonical(conn, ctx, data.reference)
        batches = [canonical(conn, ctx, part) for _, part in data.predictions.groupby(day_index.to_numpy())]
    started, cpu = time.perf_counter(), time.process_time()
    with engine.begin() as conn:
        aggregate.on_reference(conn, ctx, reference)
        for batch in batches:
            aggregate.on_predictions(conn, ctx, batch)
    ingest_seconds, ingest_cpu = time.perf_counter() - started, time.process_time() - cpu
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM drift_histograms").scalar_one()
        started, cpu = time.perf_counter(), time.process_time()
        overall = drift_frame(conn, ctx, WindowSpec(DAY, DAY), segment="*", features=sc.features)
        query_seconds, query_cpu = time.perf_counter() - started, time.process_time() - cpu
        all_seconds, everything = query_seconds, overall
        if segments:
            started = time.perf_counter()
            everything = drift_frame(conn, ctx, WindowSpec(DAY, DAY))
            all_seconds = time.perf_counter() - started
    engine.dispose()
    return {"ingest": ingest_seconds, "query": query_seconds, "all": all_seconds,
            "ingest_cpu": ingest_cpu, "query_cpu": query_cpu, "records": len(overall),
            "all_records": len(everything), "histogram_rows": rows, "frame": overall}


def run_evidently(data, sc: Scenario, workdir: Path, python: str, every: int) -> dict:  # type: ignore[no-untyped-def]
    day = (pd.to_datetime(data.predictions["timestamp"], utc=True) - pd.Timestamp(sc.start, tz="UTC")).dt.days
    data.reference[sc.features].to_parquet(workdir / "reference.parquet", index=False)
    data.predictions[sc.features].assign(day=day.to_numpy()).to_parquet(workdir / "current.parquet", index=False)
    script = workdir / "evidently_half.py"
    script.write_text(EVIDENTLY_SCRIPT)
    done = subprocess.run([python, str(script), str(workdir), ",".join(sc.numeric_features),
                           ",".join(sc.categorical_features), str(every)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the Evidently half failed ({python}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(ours: pd.DataFrame, evidently: dict, sc: Scenario) -> None:
    start = pd.Timestamp(sc.start, tz="UTC")
    ours = ours.assign(day=(pd.to_datetime(ours["end"], utc=True) - start).dt.days - 1)
    agree = total = 0
    seeded = {"ours": [0, 0], "evidently": [0, 0]}
    clean = {"ours": 0, "evidently": 0}
    for key, (method, _value, _threshold, flagged) in evidently["verdicts"].items():
        day, feature = key.split("|")
        ours_method = "wasserstein" if "wasserstein" in method.lower() else "js"
        row = ours[(ours.feature == feature) & (ours.day == int(day)) & (ours.method == ours_method)]
        mine = bool(row["drifted"].iloc[0])
        total += 1
        agree += mine == flagged
        if feature in SHIFTED and int(day) >= SHIFT_DAY:
            seeded["ours"][0] += mine
            seeded["evidently"][0] += flagged
            seeded["ours"][1] += 1
            seeded["evidently"][1] += 1
        elif feature not in SHIFTED:
            clean["ours"] += mine
            clean["evidently"] += flagged
    print(f"verdicts (same method and threshold as Evidently's choice): {agree}/{total} agree")
    for side in ("ours", "evidently"):
        hit, n = seeded[side]
        print(f"  {side:9s}: seeded shifts flagged {hit}/{n}; flags on unshifted features {clean[side]}")


def _draw(rng: np.random.Generator, kind: str, n: int, levels: list[str], probs: list[float]) -> pd.Series:
    return pd.Series(rng.normal(size=n)) if kind == "numeric" else pd.Series(rng.choice(levels, n, p=probs))


def _histogram(bins, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    codes, numbers = bins.assign(values)
    return (np.bincount(codes, minlength=bins.n_bins)[None].astype(float),
            np.bincount(codes, weights=numbers, minlength=bins.n_bins)[None])


def false_flags(seeds: int) -> None:
    """Same-distribution windows (1,000 rows vs a 5,000-row reference, a normal numeric and a
    6-level categorical feature) over many seeds: the share flagged by each method with the
    default fixed thresholds. Binned and compared exactly as the stored path does."""
    from monitor.drift.binning import categorical_bins, numeric_bins
    from monitor.drift.service import compare

    flags: dict[str, list[bool]] = {}
    levels, probs = list("abcdef"), [0.35, 0.25, 0.15, 0.12, 0.08, 0.05]
    thresholds = {"psi": 0.2, "js": 0.1, "ks": 0.1, "wasserstein": 0.1}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        for kind in ("numeric", "categorical"):
            ref, cur = (_draw(rng, kind, n, levels, probs) for n in (5000, 1000))
            bins = (numeric_bins("x", ref, position=0, fine_bins=50, bins=10) if kind == "numeric"
                    else categorical_bins("x", ref, position=0, top=20))
            (r, rt), (c, ct) = _histogram(bins, ref), _histogram(bins, cur)
            for method, value in compare(bins, r, c, rt, ct).items():
                flagged = value[0] < 0.01 if method == "chi2" else value[0] > thresholds[method]
                flags.setdefault(f"{kind} {method}", []).append(bool(flagged))
    for name, values in flags.items():
        print(f"false-flag rate {name:22s}: {np.mean(values):.3%} of {len(values)} same-distribution windows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--evidently-python", default=os.environ.get("EVIDENTLY_PYTHON", sys.executable))
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--no-segments", action="store_true", help="skip the per-segment run")
    parser.add_argument("--evidently-every", type=int, default=1, metavar="K",
                        help="run Evidently on every K-th daily window only and scale its time to 30 windows")
    parser.add_argument("--false-flags", type=int, metavar="SEEDS", default=0,
                        help="only measure the false-flag rate over this many seeds")
    args = parser.parse_args()
    if args.false_flags:
        false_flags(args.false_flags)
        return
    rows = 100_000 if args.quick else 1_000_000
    sc = scenario(rows)
    data = simulate(sc, seed=1)
    print(f"{len(data.predictions):,} rows, {len(sc.features)} features "
          f"({len(sc.numeric_features)} numeric), 30 daily windows, reference {len(data.reference):,} rows")
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as folder:
        ours = run_ours(data, sc, Path(folder), segments=False)
        print(f"this project, overall (Evidently's scope): histograms at ingest {ours['ingest']:.2f} s "
              f"(cpu {ours['ingest_cpu']:.2f} s, {ours['histogram_rows']:,} histogram rows), drift records "
              f"{ours['query']:.2f} s (cpu {ours['query_cpu']:.2f} s, {ours['records']:,} records)")
        if not args.no_segments:
            segmented = run_ours(data, sc, Path(folder), segments=True)
            print(f"this project, 3 segment attributes (24 slices): histograms at ingest {segmented['ingest']:.2f} s "
                  f"({segmented['histogram_rows']:,} histogram rows); overall records {segmented['query']:.2f} s; "
                  f"every segment value and pseudo-feature {segmented['all']:.2f} s ({segmented['all_records']:,} records)")
        if args.skip_evidently:
            return
        evidently = run_evidently(data, sc, Path(folder), args.evidently_python, args.evidently_every)
    windows = evidently["windows"]
    print(f"Evidently DataDriftPreset: {evidently['seconds']:.2f} s (cpu {evidently['cpu']:.2f} s; "
          f"{windows} reports, overall)")
    if windows < 30:  # scale to the 30 windows this project computed, and say so
        evidently["seconds"] *= 30 / windows
        evidently["cpu"] *= 30 / windows
        print(f"  scaled to 30 windows (x{30 / windows:.1f}): {evidently['seconds']:.1f} s (cpu {evidently['cpu']:.1f} s)")
    for label, key in (("wall", ""), ("cpu", "_cpu")):
        theirs = evidently["seconds" if not key else "cpu"]
        print(f"ratio Evidently / this project ({label} time): {theirs / ours['query' + key]:.1f}x on drift records, "
              f"{theirs / (ours['ingest' + key] + ours['query' + key]):.1f}x including building the histograms")
    compare(ours["frame"], evidently, sc)


if __name__ == "__main__":
    main()

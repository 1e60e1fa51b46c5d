"""Benchmark: our label-free per-class recall estimate vs NannyML's CBPE, on the same data.

    python bench/estimate.py            # 28 days x 20,000 predictions (560,000 rows)
    python bench/estimate.py --quick    # 14 days x 5,000 predictions
    python bench/estimate.py --nannyml-python /tmp/nmvenv/bin/python
    python bench/estimate.py --drift    # gradual concept drift: reference-only vs rolling calibration

Data: `monitor.simulate` with scores calibrated by construction (a 20,000-row labelled
reference, then production predictions without labels). Both sides answer the same
question: the estimated recall of each class per calendar day (UTC).

- ours: `on_reference` (per-class isotonic calibration when it helps) + `on_predictions`
  (expected counts per hour bucket and slice, into SQLite) + `estimated_frame` with 1-day
  windows on the overall series. Timed as a whole: fit, aggregation and read.
- NannyML: `CBPE(problem_type="classification_multiclass", metrics=["confusion_matrix"],
  normalize_confusion_matrix="true", chunk_period="D")`; the diagonal of the estimated
  row-normalised confusion matrix is the per-class recall. Timed over fit + estimate.

`--drift` (issue 18): 112 days in which P(critical | score) flattens (the simulator's
`gradual` fault), run as in production, a tick a week (the week's predictions and the labels
that arrived by then through the core ingest, then the tick hooks), twice: with the reference
calibration only (`recalibrate = false`, today's CBPE) and with rolling recalibration on
matured labels and the calibration check. Printed side by side for the critical class over
7-day windows (overall and per region, at least 10 true positives): mean absolute error of
the estimate against the realized recall (sklearn on the simulated truth), its bias, and the
share of windows whose realized recall fell inside the estimate's 95% interval; and, for the
newest window at each tick (its labels partly in), the distance to its final realized recall
of the realized value so far, of the estimate and of the blended value (`recall_best`).

NannyML is installed only for this benchmark, in its own virtualenv (it pins older plotly):
`python -m venv /tmp/nmvenv && /tmp/nmvenv/bin/pip install nannyml statsmodels`. Its half
runs in that interpreter as a subprocess (data passed as parquet); without it, only our side
is printed. The realized recall (sklearn on the simulated truth) is printed as a yardstick.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import recall_score

from monitor.config import EstimationSettings, ModelConfig
from monitor.context import load_context
from monitor.estimation import aggregate, service
from monitor.ingest.pipeline import slice_ids
from monitor.simulate import Scenario, simulate
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.windows import WindowSpec

DAY = 86_400
DEFAULT_NANNYML_PYTHON = "/tmp/nmvenv/bin/python"

NANNYML_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml
reference = pd.read_parquet(sys.argv[1]); analysis = pd.read_parquet(sys.argv[2])
classes = json.loads(sys.argv[3])
for frame in (reference, analysis):
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize(None)
analysis["label"] = None
started = time.perf_counter()
estimator = nml.CBPE(
    metrics=["confusion_matrix"], y_pred_proba={c: f"score_{c}" for c in classes},
    y_pred="prediction", y_true="label", problem_type="classification_multiclass",
    timestamp_column_name="timestamp", chunk_period="D", normalize_confusion_matrix="true",
)
estimator.fit(reference)
result = estimator.estimate(analysis).filter(period="analysis").to_df()
seconds = time.perf_counter() - started
rows = []
for _, chunk in result.iterrows():
    for c in classes:
        rows.append({"day": str(chunk[("chunk", "key")]), "class": c,
                     "recall": float(chunk[(f"true_{c}_pred_{c}", "value")])})
print(json.dumps({"seconds": seconds, "version": nml.__version__, "rows": rows}))
"""


def canonical(conn, ctx, frame: pd.DataFrame) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The ingest hooks' column shape (what the pipeline hands them)."""
    parsed = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    ts = ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("int64")
    out = pd.DataFrame({"prediction_id": frame["prediction_id"], "ts": ts,
                        "predicted": frame["prediction"].astype(str)})
    out["bucket_start"] = ts - ts % ctx.bucket
    for segment in ctx.segments:
        out[segment] = frame[segment].fillna("(missing)").astype(str)
    out["slice_id"] = slice_ids(conn, ctx, out)
    for column in ctx.score_columns:
        out[column] = frame[column].astype(float)
    if "label" in frame.columns:
        out["label"] = frame["label"].astype(str)
    return out


def ours(data, scenario: Scenario, database: Path) -> tuple[pd.DataFrame, float, float]:  # type: ignore[no-untyped-def]
    """Our per-day, per-class estimate; (frame, seconds for estimation, seconds to prepare)."""
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    classes = list(scenario.classes)
    config = ModelConfig(name="bench", classes=classes, segments=list(scenario.segments),
                         bucket="1h", estimation=EstimationSettings())
    with engine.begin() as conn:
        ctx = load_context(conn, config)
        prepare_started = time.perf_counter()
        reference = canonical(conn, ctx, data.reference)
        rows = canonical(conn, ctx, data.predictions)
        prepare = time.perf_counter() - prepare_started
        started = time.perf_counter()
        aggregate.on_reference(conn, ctx, reference)
        for start in range(0, len(rows), 50_000):  # batches, as ingestion hands them over
            aggregate.on_predictions(conn, ctx, rows.iloc[start : start + 50_000])
        frame = service.estimated_frame(conn, ctx, WindowSpec(window=DAY, step=DAY), segment_sets=[()])
        seconds = time.perf_counter() - started
    engine.dispose()
    frame["day"] = pd.to_datetime(frame["end"] - DAY, unit="s").dt.strftime("%Y-%m-%d")
    return frame[["day", "class", "recall_estimated", "recall_estimated_low", "recall_estimated_high"]], seconds, prepare


def nannyml(data, classes: list[str], python: str, workdir: Path) -> dict | None:  # type: ignore[no-untyped-def]
    """NannyML CBPE in its own interpreter; None (with the reason printed) when unavailable."""
    if not Path(python).exists() and shutil.which(python) is None:
        print(f"NannyML: interpreter {python} not found; only our side is shown")
        return None
    reference, analysis = workdir / "reference.parquet", workdir / "analysis.parquet"
    data.reference.to_parquet(reference)
    data.predictions.drop(columns=["label"], errors="ignore").to_parquet(analysis)
    script = workdir / "nannyml_cbpe.py"
    script.write_text(NANNYML_SCRIPT)
    done = subprocess.run([python, str(script), str(reference), str(analysis), json.dumps(classes)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        print("NannyML failed:", done.stderr.strip().splitlines()[-1:] or done.returncode)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def realized(data) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    truth = data.predictions[["prediction_id", "timestamp", "prediction"]].merge(data.truth, on="prediction_id")
    truth["day"] = truth["timestamp"].str[:10]
    classes = sorted(set(truth["label"]) | set(truth["prediction"]))
    out = []
    for day, rows in truth.groupby("day"):
        values = recall_score(rows["label"], rows["prediction"], labels=classes, average=None, zero_division=np.nan)
        out += [{"day": day, "class": c, "realized": v} for c, v in zip(classes, values, strict=True)]
    return pd.DataFrame(out)


def drift_run(data, recalibrate: bool, database: Path) -> tuple[pd.DataFrame, pd.DataFrame, float]:  # type: ignore[no-untyped-def]
    """Weekly ticks through a drifting scenario: (critical-class estimates per window, the
    blended values of the newest window seen at each tick, seconds)."""
    from monitor.estimation.blend import blended_frame
    from monitor.ingest.hooks import tick_hooks
    from monitor.ingest.pipeline import ingest_frame

    scenario = data.scenario
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    config = ModelConfig(name="bench", classes=list(scenario.classes), segments=list(scenario.segments), bucket="1h",
                         estimation=EstimationSettings(recalibrate=recalibrate))
    started = time.perf_counter()
    blended: list[pd.DataFrame] = []
    with engine.begin() as conn:
        ctx = load_context(conn, config)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, data.reference))
    week = 7 * DAY
    for low in range(scenario.start_epoch, scenario.start_epoch + scenario.days * DAY, week):
        with engine.begin() as conn:
            chosen = (data.prediction_epoch >= low) & (data.prediction_epoch < low + week)
            ingest_frame(conn, ctx, "predictions", data.predictions[chosen], as_of=low + week)
            arrived = (data.label_epoch >= low) & (data.label_epoch < low + week)
            ingest_frame(conn, ctx, "labels", data.labels[arrived], as_of=low + week)
            for hook in tick_hooks():
                hook(conn, ctx, low + week)
            seen = blended_frame(conn, ctx, WindowSpec(window=week, step=week), segment_sets=[(), ("region",)],
                                 ends=np.array([low + week]))  # the newest window, labels partly in
            blended.append(seen[seen["class"] == "critical"])
    with engine.begin() as conn:
        frame = service.estimated_frame(conn, ctx, WindowSpec(window=week, step=week), segment_sets=[(), ("region",)])
    seconds = time.perf_counter() - started
    engine.dispose()
    return frame[frame["class"] == "critical"].reset_index(drop=True), pd.concat(blended, ignore_index=True), seconds


def drift_realized(data, frame: pd.DataFrame) -> pd.Series:  # type: ignore[no-untyped-def]
    truth = data.predictions[["prediction_id", "prediction", "region"]].merge(data.truth, on="prediction_id")
    ts, region = data.prediction_epoch, truth["region"].to_numpy()
    positive, predicted = (truth["label"] == "critical").to_numpy(), (truth["prediction"] == "critical").to_numpy()
    out = []
    for record in frame.itertuples(index=False):
        mask = (ts >= record.end - 7 * DAY) & (ts < record.end)
        if record.segment == "region":
            mask &= region == record.segment_value
        enough = (positive[mask] & predicted[mask]).sum() >= 10
        out.append(recall_score(positive[mask], predicted[mask]) if enough else np.nan)
    return pd.Series(out, index=frame.index)


def drift_main(args: argparse.Namespace) -> None:
    from monitor.simulate import Fault

    rows_per_day = args.rows_per_day or (800 if args.quick else 2_000)
    fault = Fault(start_day=0, kind="gradual", segment=None, value=None, flatten=0.5)
    scenario = Scenario(days=args.days or 112, rows_per_day=rows_per_day, segments=("sex", "age_band", "region"),
                        faults=[fault])
    data = simulate(scenario, seed=args.seed)
    print(f"drift: {len(data.predictions):,} predictions over {scenario.days} days, P(critical | score) flattening "
          f"by half; weekly ticks; critical class, 7-day windows, overall and per region")
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, recalibrate in (("reference-only", False), ("rolling", True)):
            frame, newest, seconds = drift_run(data, recalibrate, Path(tmp) / f"{name}.db")
            frame["realized"] = drift_realized(data, frame)
            newest["final"] = drift_realized(data, newest)
            newest = newest[newest["final"].notna()]
            best_inside = (newest["final"] >= newest["recall_best_low"]) & (newest["final"] <= newest["recall_best_high"])
            frame = frame[frame["realized"].notna()]
            error = frame["recall_estimated"] - frame["realized"]
            inside = (frame["realized"] >= frame["recall_estimated_low"]) & (frame["realized"] <= frame["recall_estimated_high"])
            late = (frame["end"] - scenario.start_epoch) >= 56 * DAY
            table[name] = {
                "windows": len(frame), "mean |error|": error.abs().mean(), "bias": error.mean(),
                "coverage": inside.mean(), "coverage, last 8 weeks": inside[late].mean(),
                "coverage, overall series": inside[frame["segment"] == "*"].mean(),
                "mean interval width": (frame["recall_estimated_high"] - frame["recall_estimated_low"]).mean(),
                "newest windows (labels partly in)": len(newest),
                "  labelled share": newest["labelled_share"].mean(),
                "  |realized so far - final|": (newest["recall_realized"] - newest["final"]).abs().mean(),
                "  |estimate - final|": (newest["recall_estimated"] - newest["final"]).abs().mean(),
                "  |blended - final|": (newest["recall_best"] - newest["final"]).abs().mean(),
                "  blended interval coverage": best_inside.mean(),
                "seconds (ingest + estimate)": seconds,
            }
    pd.set_option("display.width", 160)
    print(pd.DataFrame(table).round(3).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="14 days x 5,000 rows")
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--rows-per-day", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--nannyml-python", default=os.environ.get("NANNYML_PYTHON", DEFAULT_NANNYML_PYTHON),
                        help="interpreter with nannyml installed (default: %(default)s)")
    parser.add_argument("--drift", action="store_true", help="gradual concept drift: reference-only vs rolling")
    args = parser.parse_args()
    if args.drift:
        drift_main(args)
        return
    days = args.days or (14 if args.quick else 28)
    rows_per_day = args.rows_per_day or (5_000 if args.quick else 20_000)
    scenario = Scenario(days=days, rows_per_day=rows_per_day, reference_rows=20_000)
    data = simulate(scenario, seed=args.seed)
    classes = list(scenario.classes)
    print(f"data: {len(data.predictions):,} predictions over {days} days, reference {len(data.reference):,} rows, "
          f"classes {classes}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        mine, our_seconds, prepare = ours(data, scenario, workdir / "bench.db")
        print(f"ours:    {our_seconds:7.2f} s  (calibrate + expected counts into SQLite + read; "
              f"{prepare:.2f} s more to shape rows as ingestion does)")
        theirs = nannyml(data, classes, args.nannyml_python, workdir)
    table = mine.merge(realized(data), on=["day", "class"], how="left")
    if theirs is not None:
        print(f"NannyML: {theirs['seconds']:7.2f} s  (CBPE {theirs['version']} fit + estimate, daily chunks)")
        table = table.merge(pd.DataFrame(theirs["rows"]).rename(columns={"recall": "nannyml"}),
                            on=["day", "class"], how="left")
    pd.set_option("display.width", 160)
    print("\nper-class recall, mean over days (realized = sklearn on the simulated truth):")
    columns = ["recall_estimated", "nannyml", "realized"] if theirs is not None else ["recall_estimated", "realized"]
    print(table.groupby("class")[columns].mean().round(4).to_string())
    inside = ((table["realized"] >= table["recall_estimated_low"]) & (table["realized"] <= table["recall_estimated_high"])).mean()
    print(f"\nours: realized recall inside our 95% interval in {inside:.1%} of {len(table)} (day, class) windows")
    print(f"ours: mean |estimate - realized| = {(table['recall_estimated'] - table['realized']).abs().mean():.4f}")
    if theirs is not None:
        difference = (table["recall_estimated"] - table["nannyml"]).abs()
        worst = table.loc[difference.idxmax()]
        print(f"NannyML: mean |estimate - realized| = {(table['nannyml'] - table['realized']).abs().mean():.4f}")
        print(f"largest |ours - NannyML| = {difference.max():.4f} (class {worst['class']}, day {worst['day']}); "
              f"mean {difference.mean():.4f}")
        print(f"time: ours {our_seconds:.2f} s, NannyML {theirs['seconds']:.2f} s "
              f"(NannyML / ours = {theirs['seconds'] / our_seconds:.1f}x)")


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: fairness gaps per day from stored counts vs fairlearn's MetricFrame on raw rows.

    python bench/fairness.py            # 1,000,000 rows over 30 days (about 3 minutes)
    python bench/fairness.py --quick    # 100,000 rows
    python bench/fairness.py --database-url postgresql://USER@HOST/EMPTY_DB   # migrated here

Simulated predictions with every label known are aggregated into the core count tables once
(as ingestion does, incrementally, in production; that time is printed but is not part of
the comparison). Then the same question is answered both ways: per day (1d windows), per
region, for the rare class one vs rest, tpr/fpr/precision/selection_rate by group with
difference and ratio:

- ours: `monitor.fairness.service.fairness_frame`, reading only `confusion_counts`;
- baseline: `fairlearn.metrics.MetricFrame(..., sensitive_features=region,
  control_features=day)` on the raw rows, plus `.difference()` and `.ratio()`.

Both are timed in this run on this machine; the printed ratio is baseline / ours. The values
are compared too (largest absolute difference). Our time for every attribute, class and
metric at once is printed as well; the baseline is not run for all of them (it would take
nine times as long) and is not extrapolated.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import precision_score

from monitor.config import ModelConfig
from monitor.context import load_context
from monitor.fairness.service import fairness_frame
from monitor.simulate import Scenario, simulate
from monitor.store.bulk import insert_frame
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import ConfusionCount, PredictionCount, Slice, SliceValue
from monitor.store.windows import WindowSpec

DAY = 86_400
SEGMENTS = ["sex", "age_band", "region"]


def store_counts(conn, model_id: int, frame: pd.DataFrame, bucket: int = 3600) -> None:  # type: ignore[no-untyped-def]
    """Slices and count tables for fully labelled rows (columns ts, prediction, label, segments)."""
    slices = frame[SEGMENTS].drop_duplicates().reset_index(drop=True)
    slices["slice_id"] = np.arange(1, len(slices) + 1)
    keys = slices[SEGMENTS].apply(lambda r: json.dumps(dict(r), sort_keys=True), axis=1)
    insert_frame(conn, Slice.__table__,
                 pd.DataFrame({"id": slices["slice_id"], "model_id": model_id, "key": keys}))
    values = slices.melt(id_vars="slice_id", value_vars=SEGMENTS, var_name="attribute")
    insert_frame(conn, SliceValue.__table__, values)
    rows = frame.merge(slices, on=SEGMENTS)
    rows["bucket_start"] = rows["ts"] - rows["ts"] % bucket
    rows["model_id"] = model_id
    keys = ["model_id", "bucket_start", "slice_id"]
    predicted = rows.groupby([*keys, "prediction"], as_index=False).size()
    insert_frame(conn, PredictionCount.__table__,
                 predicted.rename(columns={"prediction": "pred_class", "size": "n"}))
    confusion = rows.groupby([*keys, "label", "prediction"], as_index=False).size()
    insert_frame(conn, ConfusionCount.__table__, confusion.rename(
        columns={"label": "true_class", "prediction": "pred_class", "size": "n"}))


def fairlearn_by_day(frame: pd.DataFrame, cls: str, attribute: str) -> tuple[float, pd.DataFrame]:
    """Seconds for MetricFrame by (day, group) with difference and ratio, and its by_group."""
    metrics = {
        "tpr": functools.partial(true_positive_rate, pos_label=1),
        "fpr": functools.partial(false_positive_rate, pos_label=1),
        "precision": functools.partial(precision_score, pos_label=1, zero_division=np.nan),
        "selection_rate": functools.partial(selection_rate, pos_label=1),
    }
    started = time.perf_counter()
    metric_frame = MetricFrame(
        metrics=metrics,
        y_true=(frame["label"] == cls).astype(int).to_numpy(),
        y_pred=(frame["prediction"] == cls).astype(int).to_numpy(),
        sensitive_features=frame[attribute].rename(attribute),
        control_features=frame["day"].rename("day"),
    )
    metric_frame.difference()
    metric_frame.ratio()
    return time.perf_counter() - started, metric_frame.by_group


def best_of(runs: int, func):  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None, help="rows in total (overrides --quick)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    scenario = Scenario(days=args.days, rows_per_day=rows // args.days, reference_rows=1000)
    cls, attribute = scenario.minority_classes[0], "region"

    started = time.perf_counter()
    data = simulate(scenario, seed=1)
    frame = data.predictions[["prediction", *SEGMENTS]].copy()
    frame["ts"] = data.prediction_epoch.astype(np.int64)
    frame["label"] = data.truth["label"].to_numpy()
    frame["day"] = (frame["ts"] - scenario.start_epoch) // DAY
    print(f"rows: {len(frame):,} over {args.days} days "
          f"(simulated in {time.perf_counter() - started:.1f}s)")

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        upgrade(engine)
        config = ModelConfig(name=f"bench-{int(time.time())}", classes=list(scenario.classes),
                             segments=SEGMENTS, intersections=True)
        started = time.perf_counter()
        with engine.begin() as conn:
            ctx = load_context(conn, config)
            store_counts(conn, ctx.model_id, frame)
            stored = conn.execute(
                ConfusionCount.__table__.select().where(ConfusionCount.model_id == ctx.model_id)
            ).fetchall()
        print(f"aggregated into counts once: {len(stored):,} count rows "
              f"in {time.perf_counter() - started:.1f}s (not part of the comparison)")
        spec = WindowSpec(DAY, DAY)

        def ours_same_question() -> pd.DataFrame:
            with engine.connect() as conn:
                return fairness_frame(conn, ctx, spec, classes=cls, attribute=attribute)

        def ours_everything() -> pd.DataFrame:
            with engine.connect() as conn:
                return fairness_frame(conn, ctx, spec)

        ours_time, ours = best_of(3, ours_same_question)
        all_time, everything = best_of(1, ours_everything)
        engine.dispose()

    base_time, by_group = fairlearn_by_day(frame, cls, attribute)
    end = (pd.to_datetime(ours["end"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    ours = ours.assign(day=(end - DAY - scenario.start_epoch) // DAY)
    ours_wide = ours.pivot_table(index=["day", "group"], columns="metric", values="value",
                                 dropna=False)
    joined = by_group.reindex(ours_wide.index)
    gap = np.nanmax(np.abs(ours_wide[joined.columns].to_numpy() - joined.to_numpy()))
    tpr_null = int(ours_wide["tpr"].isna().sum())

    print(f"question: {cls!r} one vs rest, by {attribute} per day (1d windows, "
          f"{ours['end'].nunique()} windows x {ours['group'].nunique()} groups x 4 metrics)")
    print(f"  fairlearn MetricFrame on raw rows:   {base_time:8.3f} s")
    print(f"  monitor fairness_frame from counts:  {ours_time:8.3f} s  (best of 3)")
    print(f"  ratio fairlearn / ours:              {base_time / ours_time:8.1f} x")
    print(f"  largest |ours - fairlearn| over every value: {gap:.2e}"
          f" ({tpr_null} null tpr where fairlearn says 0: no positives)")
    print(f"everything ({everything['attribute'].nunique()} attributes incl. pairs, "
          f"{everything['class'].nunique()} classes, 4 metrics, {len(everything):,} records): "
          f"{all_time:.3f} s from counts")


if __name__ == "__main__":
    main()

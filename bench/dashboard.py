"""Server time of each dashboard page's callbacks on a large database (prints figures).

    python bench/dashboard.py            # one year of hourly data, 3 classes, 50 segment values
    python bench/dashboard.py --quick    # 90 days, fewer repetitions (about a minute)
    python bench/dashboard.py --db postgresql://postgres@127.0.0.1:5432/bench   # an empty database

The database is filled directly with the count tables the dashboard reads (confusion counts,
prediction counts, label arrival, reference counts: what ingestion would have written for a
model with ~100 predictions an hour spread over 50 regions, a rare class at 3%, labels arriving
over days), because replaying a year of raw rows through ingestion would take far longer than
the callbacks being measured (`insert_frame` keeps the daily roll-ups of those tables, as
ingestion does). Each callback is called as Dash calls it (inside a Flask request
context, outputs JSON-encoded with plotly's encoder) `--repeat` times with the default filters
(newest 90 days, 7d windows); p50/p95 wall time per callback is printed (40 calls by default,
so that p95 is not simply the slowest call), cold (the app's
result cache emptied: the first visit after new data) and warm (served from the cache until
the data version changes). Target: p95 < 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import parse_config  # noqa: E402
from monitor.context import ensure_model  # noqa: E402
from monitor.store.bulk import insert_frame  # noqa: E402
from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402
from monitor.store.models import (  # noqa: E402
    ConfusionCount,
    IngestedFile,
    LabelArrivalCount,
    PredictionCount,
    ReferenceCount,
    Slice,
    SliceValue,
)

CLASSES = ["routine", "urgent", "critical"]
PRIORS = np.array([0.77, 0.20, 0.03])
# P(predicted | true): critical recall 0.7, urgent 0.35
CONFUSION = np.array([[0.93, 0.06, 0.01], [0.60, 0.35, 0.05], [0.15, 0.15, 0.70]])
START = 1_704_067_200  # 2024-01-01T00:00:00Z


def build_config(url: str, regions: int) -> Any:
    return parse_config({
        "database_url": url,
        "models": [{"name": "bench", "classes": CLASSES, "minority_classes": ["critical"],
                    "segments": ["region"], "bucket": "1h",
                    "alerts": [{"name": "minority-recall", "segments": ["region"]}]}],
    })


def fill(url: str, *, days: int, regions: int, per_hour: int, seed: int = 0) -> dict[str, int]:
    """Write the count tables of `days` of hourly data into the (migrated) database at `url`."""
    rng = np.random.default_rng(seed)
    config = build_config(url, regions)
    engine = make_engine(url)
    upgrade(engine)
    hours = days * 24
    names = [f"region_{i:02d}" for i in range(regions)]
    weights = rng.dirichlet(np.full(regions, 2.0))
    with engine.begin() as conn:
        model_id = ensure_model(conn, config.models[0])
        insert_frame(conn, Slice.__table__, pd.DataFrame({
            "id": np.arange(1, regions + 1), "model_id": model_id,
            "key": [f'{{"region": "{n}"}}' for n in names]}))
        insert_frame(conn, SliceValue.__table__, pd.DataFrame({
            "slice_id": np.arange(1, regions + 1), "attribute": "region", "value": names}))
        # predictions per (hour, slice), then true class, then predicted class
        per_slice = rng.poisson(per_hour * weights[None, :], size=(hours, regions))
        truth = np.stack([rng.binomial(per_slice, p) for p in PRIORS[:2]], axis=-1)
        truth = np.concatenate([truth, np.maximum(per_slice - truth.sum(-1), 0)[..., None]], axis=-1)
        cells = np.zeros((hours, regions, 3, 3), dtype=np.int64)
        for t in range(3):
            cells[:, :, t, :] = _multinomial(rng, truth[:, :, t], CONFUSION[t])
        labelled = rng.binomial(cells, 0.9)  # 10% never labelled
        hour, region, true_index, pred_index = np.nonzero(labelled)
        buckets = START + hour.astype(np.int64) * 3600
        insert_frame(conn, ConfusionCount.__table__, pd.DataFrame({
            "model_id": model_id, "bucket_start": buckets, "slice_id": region + 1,
            "true_class": np.array(CLASSES)[true_index], "pred_class": np.array(CLASSES)[pred_index],
            "n": labelled[hour, region, true_index, pred_index]}))
        predicted = cells.sum(axis=2)
        hour, region, pred_index = np.nonzero(predicted)
        insert_frame(conn, PredictionCount.__table__, pd.DataFrame({
            "model_id": model_id, "bucket_start": START + hour.astype(np.int64) * 3600,
            "slice_id": region + 1, "pred_class": np.array(CLASSES)[pred_index],
            "n": predicted[hour, region, pred_index]}))
        labelled_per_hour = labelled.sum(axis=(1, 2, 3))
        delay_bins = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
        shares = rng.dirichlet(np.full(len(delay_bins), 3.0), size=hours)
        arrivals = np.floor(shares * labelled_per_hour[:, None]).astype(np.int64)
        hour, which = np.nonzero(arrivals)
        insert_frame(conn, LabelArrivalCount.__table__, pd.DataFrame({
            "model_id": model_id, "bucket_start": START + hour.astype(np.int64) * 3600,
            "delay_bin": delay_bins[which], "n": arrivals[hour, which]}))
        reference = (cells[: 24 * 30].sum(axis=0))  # a month's worth as the reference
        region, true_index, pred_index = np.nonzero(reference)
        insert_frame(conn, ReferenceCount.__table__, pd.DataFrame({
            "model_id": model_id, "slice_id": region + 1, "true_class": np.array(CLASSES)[true_index],
            "pred_class": np.array(CLASSES)[pred_index], "n": reference[region, true_index, pred_index]}))
        insert_frame(conn, IngestedFile.__table__, pd.DataFrame({
            "model_id": model_id, "kind": "predictions", "path": [f"predictions/day_{d:03d}.csv" for d in range(days)],
            "status": "done", "rows_read": per_hour * 24, "rows_accepted": per_hour * 24, "rows_rejected": 0,
            "rows_waiting": 0, "ingested_at": pd.Timestamp.now(tz="UTC")}))
    engine.dispose()
    return {"hours": hours, "predictions": int(cells.sum()), "confusion_rows": len(buckets)}


def _multinomial(rng: np.random.Generator, counts: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    first = rng.binomial(counts, probabilities[0])
    second = rng.binomial(counts - first, probabilities[1] / (1 - probabilities[0]))
    return np.stack([first, second, counts - first - second], axis=-1)


def measure(name: str, call: Callable[[], Any], repeat: int,
            clear: Callable[[], None]) -> tuple[str, float, float, float, float]:
    """(name, cold p50, cold p95, warm p50, warm p95) in ms. Cold: the app's result cache is
    emptied before each call (first visit after new data); warm: served from it (every other
    visit and refresh until the data changes)."""
    import plotly.io

    call()  # warm-up (imports)
    cold, warm = [], []
    for _ in range(repeat):
        clear()
        started = time.perf_counter()
        plotly.io.json.to_json_plotly(_jsonable(call()))
        cold.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        plotly.io.json.to_json_plotly(_jsonable(call()))
        warm.append((time.perf_counter() - started) * 1000)
    return (name, *_percentiles(cold), *_percentiles(warm))


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_plotly_json"):
        return value.to_plotly_json()
    return value


def run(url: str, repeat: int) -> list[tuple[str, float, float, float, float]]:
    from dashboards import layout
    from dashboards.app import create_app, freeze_startup_objects

    app = create_app(build_config(url, 0))
    freeze_startup_objects()  # as `monitor serve` and dashboards.wsgi do
    pages = {name: sys.modules[f"dashboards.pages.{name}"]
             for name in ("overview", "classes", "subgroups", "alerts", "data")}
    model, window = "bench", "7d"
    with app.server.test_request_context("/"):
        end_value = pages["classes"].update_classes(None, model, window, None, None, "critical", "recall", None)[3]
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("shell: sync_filters (URL -> filters)", lambda: layout.sync_filters(
                "?model=bench&window=7d&class=critical&segment=region", model, window, None, None, "critical", "*")),
            ("shell: refresh_version", lambda: layout.refresh_version(1, None)),
            ("overview: update_overview", lambda: pages["overview"].update_overview(None, window, None, None)),
            ("classes: update_classes", lambda: pages["classes"].update_classes(
                None, model, window, None, None, "critical", "recall", end_value)),
            ("classes: update_confusion", lambda: pages["classes"].update_confusion(end_value, model, window, None)),
            ("subgroups: update_subgroups (50 values)", lambda: pages["subgroups"].update_subgroups(
                None, model, window, None, None, "critical", "region")),
            ("alerts: update_alerts", lambda: pages["alerts"].update_alerts(None, model, "all", None)),
            ("data: update_data", lambda: pages["data"].update_data(None, model)),
        ]
        clear = app.server.extensions["monitor"].cache.clear
        return [measure(name, call, repeat, clear) for name, call in calls]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="90 days of data, 5 repetitions")
    parser.add_argument("--db", help="an empty database URL (default: a temporary SQLite file)")
    parser.add_argument("--days", type=int, help="days of hourly data (default 365, --quick 90)")
    parser.add_argument("--regions", type=int, default=50)
    parser.add_argument("--per-hour", type=int, default=100, help="predictions per hour")
    parser.add_argument("--repeat", type=int, help="calls per callback (default 40, --quick 5)")
    args = parser.parse_args(argv)
    days = args.days or (90 if args.quick else 365)
    repeat = args.repeat or (5 if args.quick else 40)
    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{folder}/bench.db"
        started = time.perf_counter()
        facts = fill(url, days=days, regions=args.regions, per_hour=args.per_hour)
        print(f"database: {url.split('@')[-1]}: {days} days hourly, {args.regions} segment values, 3 classes, "
              f"{facts['predictions']:,} predictions, {facts['confusion_rows']:,} confusion rows "
              f"(filled in {time.perf_counter() - started:.0f} s)")
        print(f"{'callback (ms, n=' + str(repeat) + ')':45s} {'cold p50':>9s} {'cold p95':>9s} "
              f"{'warm p50':>9s} {'warm p95':>9s}  (target p95 < 300 ms)")
        for name, cold50, cold95, warm50, warm95 in run(url, repeat):
            flag = "" if cold95 < 300 else "  cold over target"
            print(f"{name:45s} {cold50:9.0f} {cold95:9.0f} {warm50:9.0f} {warm95:9.0f}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

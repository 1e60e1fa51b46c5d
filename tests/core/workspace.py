"""Test helpers: a simulated workspace on a given database, and sklearn oracles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from monitor.config import MonitorConfig, load_config
from monitor.simulate import Scenario, SimulatedData, simulate, visible, write_config, write_logs
from monitor.store.db import make_engine
from monitor.timeutil import parse_time


def make_workspace(tmp_path: Path, db_url: str, scenario: Scenario, *, seed: int = 7, fmt: str = "csv",
                   gzip: bool = False, model_extra: dict | None = None) -> tuple[MonitorConfig, SimulatedData]:
    data = simulate(scenario, seed=seed)
    write_logs(data, tmp_path, fmt=fmt, gzip=gzip)
    path = write_config(tmp_path, scenario, database_url=db_url, model_extra=model_extra or {})
    return load_config(path), data


def engine_for(config: MonitorConfig):  # type: ignore[no-untyped-def]
    return make_engine(config.database_url)


def oracle_counts(data: SimulatedData, *, as_of: str | int | None, end: str | int, window: int, cls: str,
                  segment: str | None = None, value: str | None = None) -> dict[str, float]:
    """One-vs-rest counts and rates from sklearn on the raw rows the monitor can see."""
    clock = parse_time(as_of) if as_of is not None else 2**40
    predictions, labels = visible(data, clock)
    stamps = pd.to_datetime(predictions["timestamp"], utc=True, format="ISO8601")
    epochs = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    end_epoch = parse_time(end)
    inside = (epochs >= end_epoch - window) & (epochs < end_epoch)
    if segment is not None:
        inside &= predictions[segment].astype(str) == value
    current = predictions.loc[inside]
    joined = current.merge(labels, on="prediction_id", how="inner")
    y_true = (joined["label"] == cls).to_numpy()
    y_pred = (joined["prediction"] == cls).to_numpy()
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[False, True]).ravel() if len(joined) else (0, 0, 0, 0)
    return {"n_predictions": len(current), "n_labeled": len(joined), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def small_scenario(**overrides) -> Scenario:  # type: ignore[no-untyped-def]
    base = dict(start="2024-03-01", days=12, rows_per_day=400, reference_rows=3000, n_regions=3)
    base.update(overrides)
    return Scenario(**base)


def as_float(value) -> float:  # type: ignore[no-untyped-def]
    return float("nan") if value is None else float(value)


def assert_close(a, b, tol: float = 1e-9) -> None:  # type: ignore[no-untyped-def]
    a, b = as_float(a), as_float(b)
    assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol, (a, b)

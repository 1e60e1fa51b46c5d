"""Simulated logs go through the real engine as they are: every file is read, no row is
rejected, and the stored windows agree with sklearn on what `visible` says the monitor can
see at `as_of`. This pins the simulator's output to the ingestion contract (docs/contract.md §1-2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score

from monitor.config import load_config
from monitor.context import load_context
from monitor.metrics.service import metrics_frame
from monitor.simulate import Fault, Scenario, simulate, visible, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from monitor.timeutil import parse_time

AS_OF = "2024-01-08T06:00:00Z"
END = "2024-01-08T00:00:00Z"
WEEK = 7 * 86_400


def _scenario() -> Scenario:
    # a short label tail keeps the number of label files (one per label day) small
    return Scenario(
        days=8,
        rows_per_day=500,
        missing_segment_fraction=0.02,
        label_max_delay_days=10,
        faults=[Fault(start_day=3)],
    )


def test_simulated_csv_logs_ingest_cleanly_and_match_the_oracle(tmp_path, db_url):
    _round_trip(tmp_path, db_url, "csv", False)


def test_simulated_gzipped_jsonl_logs_ingest_cleanly_and_match_the_oracle(tmp_path, sqlite_url):
    _round_trip(tmp_path, sqlite_url, "jsonl", True)


def _round_trip(tmp_path, db_url, fmt, gzip):
    scenario = _scenario()
    data = simulate(scenario, seed=13)
    write_logs(data, tmp_path, fmt=fmt, gzip=gzip)
    config = load_config(write_config(tmp_path, scenario, database_url=db_url))
    engine = make_engine(config.database_url)
    try:
        summary = run_tick(engine, config, as_of=parse_time(AS_OF), notify=False)
        model = summary.models[0]
        assert model.errors == [] and model.files_failed == 0 and model.rejected == 0

        predictions, labels = visible(data, AS_OF)
        assert model.predictions == len(predictions)

        with engine.connect() as conn:
            ctx = load_context(conn, config.models[0])
            spec = WindowSpec(window=WEEK, step=86_400, start=parse_time(END), end=parse_time(END))
            ours = metrics_frame(conn, ctx, spec, classes=["critical"], as_of=parse_time(AS_OF))
    finally:
        engine.dispose()

    stamps = pd.to_datetime(predictions["timestamp"], utc=True)
    in_window = (stamps >= pd.Timestamp(END) - pd.Timedelta(days=7)) & (stamps < pd.Timestamp(END))
    rows = predictions[in_window].merge(labels, on="prediction_id")  # labelled rows only
    rows["region"] = rows["region"].fillna("(missing)")
    for region, group in rows.groupby("region"):
        got = ours[(ours["segment"] == "region") & (ours["segment_value"] == region)]
        assert len(got) == 1, region
        truth, predicted = group["label"] == "critical", group["prediction"] == "critical"
        assert int(got["support"].iloc[0]) == int(truth.sum())
        assert int(got["n_labeled"].iloc[0]) == len(group)
        if truth.any():
            expected = recall_score(truth, predicted)
            assert got["recall"].iloc[0] == pytest.approx(expected, abs=1e-12)
    overall = ours[ours["segment"] == "*"]
    assert int(overall["n_predictions"].iloc[0]) == int(in_window.sum())
    assert np.isfinite(overall["recall"].iloc[0])

"""The estimate under concept drift, rolling recalibration against the reference-only one.

The simulator's `gradual` fault moves P(critical | score) over months while the scores stay
as they were, so the reference calibration goes stale (the estimate turns optimistic, as on
real data in issue 18). The monitor is run as in production: a tick a week ingests that
week's predictions and the labels that arrived by then (`ingest_frame`, the core ingest) and
runs the tick hooks (the recalibration). Oracles: sklearn's recall on the simulated truth;
scipy's binomial test for the coverage claims.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.metrics import recall_score

from monitor.config import EstimationSettings, ModelConfig
from monitor.context import load_context
from monitor.estimation import aggregate, checks, service
from monitor.ingest.hooks import tick_hooks
from monitor.ingest.pipeline import ingest_frame
from monitor.simulate import Fault, Scenario, SimulatedData, simulate
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.windows import WindowSpec
from tests.estimation.helpers import canonical, epoch_seconds

DAY = 86400
WEEK = 7 * DAY
SEGMENT_SETS = [(), ("region",)]
WEEKLY = WindowSpec(window=WEEK, step=WEEK)


def run_weekly(url: str, data: SimulatedData, *, recalibrate: bool, tick: int = WEEK,
               spec: WindowSpec = WEEKLY, **settings: object) -> pd.DataFrame:
    """Tick every `tick` seconds through the scenario, then read the estimates of every
    window: each was computed at ingest with the calibration of its time."""
    scenario = data.scenario
    engine = make_engine(url)
    upgrade(engine)  # a no-op on the migrated fixture database
    config = ModelConfig(name="triage", classes=list(scenario.classes), segments=list(scenario.segments),
                         bucket="1h", estimation=EstimationSettings(recalibrate=recalibrate, **settings))
    predictions, labels = data.predictions, data.labels
    with engine.begin() as conn:
        ctx = load_context(conn, config)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, data.reference))
    start = scenario.start_epoch
    for low in range(start, start + scenario.days * DAY, tick):
        high = low + tick
        with engine.begin() as conn:
            ingest_frame(conn, ctx, "predictions",
                         predictions[(data.prediction_epoch >= low) & (data.prediction_epoch < high)], as_of=high)
            ingest_frame(conn, ctx, "labels", labels[(data.label_epoch >= low) & (data.label_epoch < high)], as_of=high)
            for hook in tick_hooks():
                hook(conn, ctx, high)
    with engine.begin() as conn:
        estimates = service.estimated_frame(conn, ctx, spec, segment_sets=SEGMENT_SETS)
        clock = checks.maturity_clock(conn, ctx)  # (last refit's clock, maturity age) or None
    engine.dispose()
    rows = with_realized(estimates, data, spec.window)
    rows.attrs["maturity_age"] = clock[1] if clock else None
    return rows


def with_realized(estimates: pd.DataFrame, data: SimulatedData, window: int) -> pd.DataFrame:
    """Critical-class rows with sklearn's realized recall on the truth and `inside`."""
    truth = data.predictions[["prediction_id", "timestamp", "prediction", "region"]].merge(data.truth, on="prediction_id")
    truth["ts"] = epoch_seconds(truth["timestamp"])
    rows = estimates[estimates["class"] == "critical"].copy()
    ts = truth["ts"].to_numpy()
    region = truth["region"].to_numpy()
    positive = (truth["label"] == "critical").to_numpy()
    predicted = (truth["prediction"] == "critical").to_numpy()
    realized = []
    for record in rows.itertuples(index=False):
        mask = (ts >= record.end - window) & (ts < record.end)
        if record.segment == "region":
            mask &= region == record.segment_value
        realized.append(recall_score(positive[mask], predicted[mask]) if positive[mask].sum() >= 10 else np.nan)
    rows["realized"] = realized
    rows = rows[rows["realized"].notna()]
    rows["inside"] = (rows["realized"] >= rows["recall_estimated_low"]) & (rows["realized"] <= rows["recall_estimated_high"])
    rows["day"] = (rows["end"] - data.scenario.start_epoch) // DAY
    return rows


@pytest.fixture(scope="module")
def gradual() -> SimulatedData:
    # P(critical | score) flattens over 16 weeks: realized critical recall 0.70 -> about 0.40
    fault = Fault(start_day=0, kind="gradual", segment=None, value=None, flatten=0.5)
    scenario = Scenario(days=112, rows_per_day=800, segments=("sex", "region"), faults=[fault])
    return simulate(scenario, seed=41)


def test_rolling_recalibration_keeps_the_interval_honest_under_gradual_drift(sqlite_url, gradual, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rolling = run_weekly(sqlite_url, gradual, recalibrate=True)
    reference = run_weekly(f"sqlite:///{tmp_path}/reference.db", gradual, recalibrate=False)
    overall = rolling[rolling["segment"] == "*"]
    assert overall["realized"].iloc[-4:].mean() < overall["realized"].iloc[:2].mean() - 0.2  # it drifts
    # with recalibration: realized recall inside the 95% interval in >= 85% of windows
    assert len(rolling) >= 60
    assert rolling["inside"].mean() >= 0.85
    # the reference-only calibration (no recalibration, no calibration check), same windows:
    # clearly worse; a binomial test rejects 85% coverage for it
    assert len(reference) == len(rolling)
    assert reference["inside"].mean() < rolling["inside"].mean() - 0.25
    assert binomtest(int(reference["inside"].sum()), len(reference), 0.85, alternative="less").pvalue < 0.001
    # and the rolling estimate is closer to the realized value
    late = rolling["day"] >= 56
    error_rolling = (rolling["recall_estimated"] - rolling["realized"]).abs()[late].mean()
    error_reference = (reference["recall_estimated"] - reference["realized"]).abs()[late.to_numpy()].mean()
    assert error_rolling < 0.7 * error_reference
    # every late window says which calibration it used, fitted strictly before it
    late_rows = rolling[late]
    assert (late_rows["calibration"] == "rolling").all()
    assert (late_rows["calibration_fit_end"] <= late_rows["end"] - WEEK).all()
    assert (late_rows["calibration_labels"] > 1000).all()
    assert (late_rows["calibration_error"] > 0).all()


def test_a_sudden_drop_is_never_hidden_once_labels_mature(sqlite_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # from day 28 every critical case gets a fifth of its critical score: recall collapses
    fault = Fault(start_day=28, segment=None, value=None, recall_factor=0.2)
    scenario = Scenario(days=70, rows_per_day=700, segments=("sex", "region"), faults=[fault])
    data = simulate(scenario, seed=42)
    rows = run_weekly(sqlite_url, data, recalibrate=True, tick=3 * DAY, spec=WindowSpec(window=WEEK, step=DAY))
    overall = rows[rows["segment"] == "*"]
    before = overall[(overall["day"] >= 14) & (overall["day"] <= 28)]
    after = overall[overall["day"] >= 35]
    assert before["realized"].mean() - after["realized"].mean() > 0.3
    # the maturity age the monitor learned from the label arrivals (about 10-16 days here)
    age = rows.attrs["maturity_age"]
    assert 5 * DAY < age < 20 * DAY
    visible = overall[overall["day"] * DAY >= 35 * DAY + age + WEEK]  # drop mature for a week
    assert len(visible) >= 8
    # the estimate never hides the drop: its interval reaches the realized value or it warns
    hidden = visible[~visible["inside"] & visible["estimation_warning"].isna()]
    assert hidden.empty, hidden[["day", "recall_estimated", "recall_estimated_low", "realized"]]
    # and once refitted on post-change labels the estimate itself follows the drop
    last = overall[overall["day"] >= 63]
    assert (last["recall_estimated"] - last["realized"]).abs().mean() < 0.1

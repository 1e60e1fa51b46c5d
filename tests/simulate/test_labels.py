"""The label stream: delays with a long tail, lost/duplicated/corrected labels, `visible`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.simulate import Scenario, simulate, visible

N = 100_000


@pytest.fixture(scope="module")
def data():
    scenario = Scenario(
        days=10, rows_per_day=N // 10, label_lost=0.08, label_duplicate=0.05, label_correction=0.04
    )
    return simulate(scenario, seed=21)


def _binomial_close(observed: float, rate: float, n: int) -> bool:
    return abs(observed - rate) <= 5 * np.sqrt(rate * (1 - rate) / n)


def test_lost_duplicated_and_corrected_labels_come_at_the_configured_rates(data):
    rows_per_id = data.labels["prediction_id"].value_counts()
    distinct = data.labels.groupby("prediction_id")["label"].nunique()
    lost = 1 - len(rows_per_id) / N
    corrected = (distinct > 1).sum() / N
    # a duplicate is a second row carrying the same final label
    extra_rows = len(data.labels) - len(rows_per_id) - (distinct > 1).sum()
    assert _binomial_close(lost, 0.08, N)
    assert _binomial_close(corrected, 0.04, N)
    assert _binomial_close(extra_rows / N, 0.05, N)


def test_labels_come_after_their_prediction_with_a_long_tail(data):
    first = data.labels.drop_duplicates("prediction_id", keep="first")
    when = pd.Series(data.prediction_epoch, index=data.predictions["prediction_id"])
    delay = (
        (
            pd.to_datetime(first["label_timestamp"], utc=True)
            - pd.to_datetime(when.loc[first["prediction_id"]].to_numpy(), unit="s", utc=True)
        )
        .dt.total_seconds()
        .to_numpy()
    )
    assert delay.min() >= 1
    assert np.median(delay) / 3600 == pytest.approx(24, rel=0.05)
    assert np.quantile(delay, 0.95) > 5 * 86_400  # some take a week ...
    assert np.quantile(delay, 0.999) > 14 * 86_400  # ... a few take weeks
    assert delay.max() <= 60 * 86_400


def test_labels_are_sorted_by_label_time(data):
    assert data.labels["label_timestamp"].is_monotonic_increasing
    assert np.all(np.diff(data.label_epoch) >= 0)


def test_a_correction_first_sends_a_wrong_label_then_the_truth(data):
    truth = data.truth.set_index("prediction_id")["label"]
    distinct = data.labels.groupby("prediction_id")["label"].transform("nunique")
    corrected = data.labels[distinct > 1]
    first = corrected.drop_duplicates("prediction_id", keep="first").set_index("prediction_id")
    last = corrected.drop_duplicates("prediction_id", keep="last").set_index("prediction_id")
    last = last.loc[first.index]
    assert len(first) > 1000
    assert (first["label"] != truth.loc[first.index]).all()
    assert (last["label"] == truth.loc[last.index]).all()
    assert (last["label_timestamp"] > first["label_timestamp"]).all()


def test_visible_at_the_end_resolves_every_label_to_the_truth(data):
    predictions, labels = visible(data, int(data.label_epoch.max()))
    assert len(predictions) == N
    merged = labels.merge(data.truth, on="prediction_id", suffixes=("", "_true"))
    assert len(merged) == len(labels) == data.labels["prediction_id"].nunique()
    assert (merged["label"] == merged["label_true"]).all()


def test_visible_mid_stream_hides_later_predictions_and_labels(data):
    as_of = "2024-01-05T12:00:00Z"
    predictions, labels = visible(data, as_of)
    cutoff = pd.Timestamp(as_of)
    assert (pd.to_datetime(predictions["timestamp"], utc=True) <= cutoff).all()
    assert len(predictions) == pytest.approx(4.5 * N / 10, rel=0.01)
    assert (pd.to_datetime(labels["label_timestamp"], utc=True) <= cutoff).all()
    assert labels["prediction_id"].is_unique
    assert set(labels["prediction_id"]) <= set(predictions["prediction_id"])
    # labels still in flight: coverage is below its final value, and some corrections are not
    # yet visible, so a few visible labels are still wrong
    assert len(labels) < 0.92 * len(predictions)
    wrong = labels.merge(data.truth, on="prediction_id", suffixes=("", "_true"))
    assert (wrong["label"] != wrong["label_true"]).sum() > 0


def test_a_cutoff_drops_labels_after_the_horizon():
    scenario = Scenario(days=3, rows_per_day=2000, label_cutoff_days=0)
    data = simulate(scenario, seed=2)
    assert data.label_epoch.max() < scenario.start_epoch + 3 * 86_400
    assert len(data.labels) < len(data.predictions)

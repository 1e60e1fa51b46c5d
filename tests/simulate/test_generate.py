"""The simulated world: determinism, class mix, calibration, recall, faults, segments.

Expected values come from sklearn.metrics and plain numpy on the raw rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score

from monitor.simulate import Fault, Scenario, simulate


@pytest.fixture(scope="module")
def large():
    """200k fault-free rows: enough for calibration bins and a stable rare-class recall."""
    return simulate(Scenario(days=20, rows_per_day=10_000), seed=11)


def _joined(data):
    return data.predictions.merge(data.truth, on="prediction_id", validate="one_to_one")


def test_it_is_deterministic_for_a_seed():
    scenario = Scenario(days=3, rows_per_day=300, faults=[Fault(start_day=1)])
    first, again = simulate(scenario, seed=5), simulate(scenario, seed=5)
    other = simulate(scenario, seed=6)
    for name in ("predictions", "labels", "truth", "reference"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(again, name))
    assert not first.predictions["score_critical"].equals(other.predictions["score_critical"])


def test_the_world_is_the_same_for_every_seed():
    """Seeds sample rows; the world (p(y|x) and the decision rule) is fixed by the scenario."""
    a, b = (
        simulate(Scenario(days=1, rows_per_day=50), seed=1),
        simulate(Scenario(days=1, rows_per_day=50), seed=2),
    )
    assert a.scenario.world is b.scenario.world


def test_the_rare_class_is_between_two_and_five_percent(large):
    share = (large.truth["label"] == "critical").mean()
    assert 0.02 <= share <= 0.05
    reference_share = (large.reference["label"] == "critical").mean()
    assert 0.02 <= reference_share <= 0.05


def test_it_writes_the_contract_columns(large):
    scenario = large.scenario
    expected = (
        ["prediction_id", "timestamp", "prediction"]
        + [f"score_{c}" for c in scenario.classes]
        + ["sex", "age_band", "region"]
        + ["num_0", "num_1", "num_2", "num_3", "cat_0", "cat_1", "model_version"]
    )
    assert list(large.predictions.columns) == expected
    assert list(large.reference.columns) == expected + ["label"]
    assert list(large.labels.columns) == ["prediction_id", "label", "label_timestamp"]
    assert large.predictions["prediction_id"].is_unique
    assert large.predictions["cat_0"].map(type).eq(str).all()


def test_scores_are_probabilities_that_sum_to_one(large):
    scores = large.predictions[large.scenario.score_columns].to_numpy()
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-9)


def _calibration_gaps(joined, classes, bins=10, min_rows=500):
    """Per class and score bin: |mean score - observed frequency| / its standard error."""
    worst = 0.0
    for cls in classes:
        score = joined[f"score_{cls}"].to_numpy()
        hit = (joined["label"] == cls).to_numpy()
        edges = np.quantile(score, np.linspace(0, 1, bins + 1))
        which = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, bins - 1)
        for b in range(bins):
            rows = which == b
            if rows.sum() < min_rows:
                continue
            mean_score, frequency = score[rows].mean(), hit[rows].mean()
            se = np.sqrt(max(mean_score * (1 - mean_score), 1e-4) / rows.sum())
            worst = max(worst, abs(mean_score - frequency) / se)
    return worst


def test_scores_are_calibrated_without_faults(large):
    """Reliability: in every score bin the frequency of the class is its mean score."""
    assert _calibration_gaps(_joined(large), large.scenario.classes) < 4.5


def test_uncalibrated_scenarios_are_visibly_miscalibrated():
    data = simulate(Scenario(days=20, rows_per_day=10_000, calibrated=False), seed=11)
    assert _calibration_gaps(_joined(data), data.scenario.classes) > 10


def test_the_rare_class_has_a_realistic_recall_and_is_predicted(large):
    joined = _joined(large)
    truth, predicted = joined["label"] == "critical", joined["prediction"] == "critical"
    assert 0.6 <= recall_score(truth, predicted) <= 0.8
    assert 0.01 <= predicted.mean() <= 0.10
    reference = large.reference
    assert (
        0.55
        <= recall_score(reference["label"] == "critical", reference["prediction"] == "critical")
        <= 0.85
    )


def _day(data):
    return (data.prediction_epoch - data.scenario.start_epoch) // 86_400


def test_a_concept_fault_collapses_the_subgroup_minority_recall():
    scenario = Scenario(days=20, rows_per_day=10_000, faults=[Fault(start_day=10)])
    data = simulate(scenario, seed=3)
    joined, after = _joined(data), _day(data) >= 10
    south = (joined["region"] == "south").to_numpy()

    def recall(mask):
        rows = joined[mask]
        return recall_score(rows["label"] == "critical", rows["prediction"] == "critical")

    before_south, after_south, after_other = (
        recall(~after & south),
        recall(after & south),
        recall(after & ~south),
    )
    assert before_south > 0.6 and after_other > 0.6
    assert after_south < before_south - 0.3
    # the collapse is specific to the faulted class
    rows = joined[after & south]
    assert recall_score(rows["label"] == "urgent", rows["prediction"] == "urgent") == pytest.approx(
        recall_score(joined[~after]["label"] == "urgent", joined[~after]["prediction"] == "urgent"),
        abs=0.05,
    )


def test_a_fault_ends_on_its_end_day():
    fault = Fault(start_day=5, end_day=10, segment=None, value=None)
    data = simulate(Scenario(days=15, rows_per_day=10_000, faults=[fault]), seed=4)
    joined, day = _joined(data), _day(data)

    def recall(mask):
        rows = joined[mask]
        return recall_score(rows["label"] == "critical", rows["prediction"] == "critical")

    assert recall(day < 5) > 0.6
    assert recall((day >= 5) & (day < 10)) < 0.4
    assert recall(day >= 10) > 0.6


def test_a_covariate_fault_shifts_the_feature_and_keeps_scores_calibrated():
    scenario = Scenario(
        days=20,
        rows_per_day=10_000,
        faults=[
            Fault(
                start_day=10,
                kind="covariate",
                segment=None,
                value=None,
                drift_feature="num_0",
                shift=1.5,
            )
        ],
    )
    data = simulate(scenario, seed=8)
    joined, after = _joined(data), _day(data) >= 10
    reference_sd = data.reference["num_0"].std()
    shift = (joined.loc[after, "num_0"].mean() - joined.loc[~after, "num_0"].mean()) / reference_sd
    assert shift == pytest.approx(1.5, abs=0.05)
    assert joined.loc[~after, "num_1"].mean() == pytest.approx(
        joined.loc[after, "num_1"].mean(), abs=0.05 * reference_sd + 0.1
    )
    assert _calibration_gaps(joined[after], scenario.classes) < 4.5


def test_a_label_shift_fault_moves_the_class_mix_and_nothing_given_the_class():
    # critical's prior odds x4 in region south from day 5: 3% -> about 11% there, no change elsewhere
    fault = Fault(start_day=5, kind="label_shift", segment="region", value="south", prior_factor=4.0)
    scenario = Scenario(days=10, rows_per_day=8000, segments=("sex", "region"), faults=[fault])
    data = simulate(scenario, seed=12)
    joined, after = _joined(data), (_day(data) >= 5)
    south = (joined["region"] == "south").to_numpy()
    critical = joined["label"].eq("critical")
    share, size = critical.groupby([after, south]).mean(), critical.groupby([after, south]).size()
    p = share[(False, True)]  # the prior in south before the fault, and the odds x4 of it
    expected = 4 * p / (4 * p + 1 - p)
    se = np.hypot(np.sqrt(expected * (1 - expected) / size[(True, True)]),  # both sides' sampling error
                  4 / (1 + 3 * p) ** 2 * np.sqrt(p * (1 - p) / size[(False, True)]))
    assert abs(share[(True, True)] - expected) < 3.5 * se and share[(True, True)] > 3 * p
    assert share[(True, False)] == pytest.approx(share[(False, False)], abs=0.006)
    # P(score, prediction | class) as before: same score distributions, same recall per class
    from scipy.stats import ks_2samp

    shifted, before = joined[after & south], joined[~after & south]
    for cls in scenario.classes:
        a, b = shifted[shifted["label"] == cls], before[before["label"] == cls]
        assert ks_2samp(a["score_critical"], b["score_critical"]).pvalue > 0.001
        assert recall_score(a["label"] == cls, a["prediction"] == cls) == pytest.approx(
            recall_score(b["label"] == cls, b["prediction"] == cls), abs=0.08)
    # and the segment of the redrawn rows is kept (south's share of rows unchanged)
    assert south[after].mean() == pytest.approx(south[~after].mean(), abs=0.01)


def test_a_categorical_drift_moves_mass_to_rare_levels():
    scenario = Scenario(
        days=10,
        rows_per_day=5000,
        faults=[
            Fault(
                start_day=5,
                kind="covariate",
                segment="sex",
                value="F",
                drift_feature="cat_0",
                shift=3,
            )
        ],
    )
    data = simulate(scenario, seed=9)
    day, preds = _day(data), data.predictions
    before = preds.loc[day < 5, "cat_0"].value_counts(normalize=True)
    after_f = preds.loc[(day >= 5) & (preds["sex"] == "F"), "cat_0"].value_counts(normalize=True)
    after_m = preds.loc[(day >= 5) & (preds["sex"] == "M"), "cat_0"].value_counts(normalize=True)
    assert after_f["a"] < before["a"] - 0.2
    assert after_m["a"] == pytest.approx(before["a"], abs=0.03)


def test_segments_have_the_expected_groups_and_sizes(large):
    preds = large.predictions
    assert preds["sex"].value_counts(normalize=True)["F"] == pytest.approx(0.5, abs=0.01)
    assert set(preds["age_band"]) == {"18-34", "35-54", "55+"}
    regions = preds["region"].value_counts(normalize=True)
    assert set(regions.index) == {"north", "south", "east", "west"}
    assert regions["north"] > regions["south"] > regions["east"] > regions["west"] > 0.1


def test_many_regions_are_skewed_and_missing_values_appear():
    scenario = Scenario(days=2, rows_per_day=20_000, n_regions=50, missing_segment_fraction=0.05)
    preds = simulate(scenario, seed=1).predictions
    counts = preds["region"].value_counts()
    assert len(counts) == 50 and counts.iloc[0] > 10 * counts.iloc[-1]
    assert preds["sex"].isna().mean() == pytest.approx(0.05, abs=0.005)


def test_feature_counts_and_names_are_configurable():
    scenario = Scenario(days=1, rows_per_day=100, n_numeric=15, n_categorical=5)
    preds = simulate(scenario, seed=1).predictions
    assert scenario.features == [f"num_{i}" for i in range(15)] + [f"cat_{i}" for i in range(5)]
    assert set(scenario.features) <= set(preds.columns)


def test_timestamps_are_iso_utc_and_spread_over_each_day(large):
    preds = large.predictions
    assert preds["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    parsed = pd.to_datetime(preds["timestamp"], utc=True)
    epochs = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1s")
    assert (epochs.to_numpy() == large.prediction_epoch).all()
    assert parsed.dt.date.value_counts().eq(10_000).all()
    hours = parsed.dt.hour.value_counts(normalize=True)
    assert hours.min() > 1 / 24 * 0.9
    reference_time = pd.to_datetime(large.reference["timestamp"], utc=True)
    assert reference_time.max() < pd.Timestamp("2024-01-01", tz="UTC")


def test_id_prefixes_keep_two_simulations_apart():
    a = simulate(Scenario(days=1, rows_per_day=100, id_prefix="a-"), seed=1)
    b = simulate(Scenario(days=1, rows_per_day=100, id_prefix="b-"), seed=1)
    ids = pd.concat(
        [
            a.predictions["prediction_id"],
            b.predictions["prediction_id"],
            a.reference["prediction_id"],
        ]
    )
    assert ids.is_unique


def test_bad_scenarios_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="Fault.cls"):
        Scenario(faults=[Fault(start_day=1, cls="nope")])
    with pytest.raises(ValueError, match="drift_feature"):
        Scenario(faults=[Fault(start_day=1, drift_feature="num_99")])
    with pytest.raises(ValueError, match="Fault.value 'nowhere'"):
        Scenario(faults=[Fault(start_day=1, value="nowhere")])
    with pytest.raises(ValueError, match="Fault.segment"):
        Scenario(segments=("sex",), faults=[Fault(start_day=1)])
    with pytest.raises(ValueError, match="kind"):
        Fault(start_day=1, kind="other")  # type: ignore[arg-type]

"""BBSE (label shift) as a second estimator of prevalence and precision, on SQLite and
PostgreSQL. Pure label shift is made by resampling simulated rows by their true class (P(x | y)
kept, P(y) moved). Oracles: sklearn's confusion matrix of the reference with numpy's solver;
the true class mix and sklearn's precision on the simulated truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, precision_score

from monitor.config import ModelConfig
from monitor.context import load_context
from monitor.estimation.label_shift import LABEL_SHIFT_COLUMNS, label_shift_frame
from monitor.ingest.pipeline import ingest_frame
from monitor.ingest.reference import prepare_reference
from monitor.simulate import Fault, Scenario, simulate
from monitor.store.windows import WindowSpec
from tests.estimation.helpers import epoch_seconds

DAY = 86400


def test_bbse_recovers_a_shifted_class_mix_that_cbpe_misses(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(days=4, rows_per_day=4000, segments=("sex", "region"), reference_rows=20_000)
    data = simulate(scenario, seed=61)
    data.reference.to_parquet(tmp_path / "reference.parquet")
    rows = data.predictions.merge(data.truth, on="prediction_id")
    day = (epoch_seconds(rows["timestamp"]) - scenario.start_epoch) // DAY
    rng = np.random.default_rng(62)
    # days 2-3: keep a quarter of the routine cases only (critical prevalence about 3% -> 10%)
    dropped = (day >= 2) & (rows["label"] == "routine") & (rng.random(len(rows)) > 0.25)
    rows = rows[~dropped.to_numpy()]
    with engine.begin() as conn:
        config = ModelConfig(name="triage", classes=list(scenario.classes), segments=["sex", "region"],
                             bucket="1h", reference=str(tmp_path / "reference.parquet"))
        ctx = load_context(conn, config)
        prepare_reference(conn, ctx, tmp_path)
        ingest_frame(conn, ctx, "predictions", rows.drop(columns=["label"]), as_of=scenario.start_epoch + 4 * DAY)
        frame = label_shift_frame(conn, ctx, WindowSpec(window=2 * DAY, step=2 * DAY), segment_sets=[()],
                                  ends=scenario.start_epoch + np.array([2 * DAY, 4 * DAY]))
    assert list(frame.columns) == LABEL_SHIFT_COLUMNS and len(frame) == 2 * 3
    classes = list(scenario.classes)
    reference = data.reference
    matrix = confusion_matrix(reference["label"], reference["prediction"], labels=classes)  # [true, predicted]
    conditional = matrix.T / matrix.sum(axis=1)  # P(predicted | true), columns by true class
    ts = epoch_seconds(rows["timestamp"]).to_numpy()
    for end, window in frame.groupby("end"):
        inside = rows[(ts >= end - 2 * DAY) & (ts < end)]
        shares = inside["prediction"].value_counts(normalize=True).reindex(classes, fill_value=0).to_numpy()
        oracle = np.linalg.solve(conditional, shares)
        window = window.set_index("class").loc[classes]
        np.testing.assert_allclose(window["prevalence_bbse"], oracle / oracle.sum(), rtol=1e-9, atol=1e-12)
        truth = inside["label"].value_counts(normalize=True).reindex(classes, fill_value=0).to_numpy()
        # statistically right: within 3.5 standard errors of the true class mix
        assert (np.abs(window["prevalence_bbse"].to_numpy() - truth) < 3.5 * window["prevalence_bbse_se"].to_numpy()).all()
        precision = precision_score(inside["label"] == "critical", inside["prediction"] == "critical")
        assert window.loc["critical", "precision_bbse"] == pytest.approx(precision, abs=0.06)
        shifted = end > scenario.start_epoch + 2 * DAY
        cbpe_error = abs(window.loc["critical", "prevalence_cbpe"] - truth[classes.index("critical")])
        if shifted:  # CBPE's calibrated-on-the-reference scores miss the new class mix; it is flagged
            assert cbpe_error > 0.02
            assert window["label_shift_warning"].notna().any()
        else:
            assert cbpe_error < 0.01
            assert window["label_shift_warning"].isna().all()


def test_without_a_reference_there_is_no_label_shift_estimate(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        ctx = load_context(conn, ModelConfig(name="triage", classes=["a", "b"], segments=[], bucket="1h"))
        frame = label_shift_frame(conn, ctx, WindowSpec(window=DAY, step=DAY), segment_sets=[()])
    assert frame.empty and list(frame.columns) == LABEL_SHIFT_COLUMNS
    assert isinstance(frame, pd.DataFrame)


def _two_day_windows(engine, tmp_path, scenario: Scenario, *, seed: int):  # type: ignore[no-untyped-def]
    """A simulated stream with its reference, ingested whole; the label_shift records of its
    consecutive two-day windows (all rows, no segment)."""
    data = simulate(scenario, seed=seed)
    data.reference.to_parquet(tmp_path / "reference.parquet")
    with engine.begin() as conn:
        config = ModelConfig(name="triage", classes=list(scenario.classes), segments=["sex", "region"],
                             bucket="1h", reference=str(tmp_path / "reference.parquet"))
        ctx = load_context(conn, config)
        prepare_reference(conn, ctx, tmp_path)
        ingest_frame(conn, ctx, "predictions", data.predictions, as_of=scenario.start_epoch + scenario.days * DAY)
        frame = label_shift_frame(conn, ctx, WindowSpec(window=2 * DAY, step=2 * DAY), segment_sets=[()],
                                  ends=scenario.start_epoch + np.arange(2, scenario.days + 1, 2) * DAY)
    return data, frame


def test_the_simulator_label_shift_bbse_follows_the_mix_and_the_warning_marks_what_changed(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Three two-day phases of one simulated stream: stable; label shift (critical's prior odds
    x4, P(x | class) unchanged: the simulator's `label_shift` fault); a concept change (critical
    cases lose four fifths of their score). BBSE follows the true class mix under label shift,
    where CBPE (scores calibrated on the reference) cannot; the two agree on the stable stream
    (no warning) and disagree under both changes (a warning). Oracles: numpy's class shares
    and sklearn's precision on the simulated truth."""
    faults = [Fault(start_day=2, end_day=4, kind="label_shift", segment=None, value=None, prior_factor=4.0),
              Fault(start_day=4, segment=None, value=None, recall_factor=0.2)]
    scenario = Scenario(days=6, rows_per_day=3000, segments=("sex", "region"), reference_rows=20_000, faults=faults)
    data, frame = _two_day_windows(engine, tmp_path, scenario, seed=63)
    rows = data.predictions.merge(data.truth, on="prediction_id")
    day = (data.prediction_epoch - scenario.start_epoch) // DAY
    phases = {}
    for name, first in (("stable", 0), ("label shift", 2), ("concept change", 4)):
        inside = rows[(day >= first) & (day < first + 2)]
        truth = (inside["label"] == "critical").to_numpy()
        window = frame[frame["end"] == scenario.start_epoch + (first + 2) * DAY].set_index("class")
        phases[name] = (window, truth.mean(), precision_score(truth, inside["prediction"] == "critical"))
    window, realized, precision = phases["stable"]
    assert window["label_shift_warning"].isna().all()
    assert abs(window.loc["critical", "prevalence_bbse"] - window.loc["critical", "prevalence_cbpe"]) < 0.005
    assert abs(window.loc["critical", "prevalence_bbse"] - realized) < 3.5 * window.loc["critical", "prevalence_bbse_se"]
    # label shift: critical 3% -> about 11%; BBSE within its error of the realized share, CBPE far off
    window, realized, precision = phases["label shift"]
    critical = window.loc["critical"]
    assert realized > 0.09 and abs(critical["prevalence_bbse"] - realized) < 3.5 * critical["prevalence_bbse_se"]
    assert abs(critical["prevalence_bbse"] - realized) < 0.015 < realized - critical["prevalence_cbpe"]
    assert critical["precision_bbse"] == pytest.approx(precision, abs=0.05)
    assert abs(critical["precision_cbpe"] - precision) > 0.1
    assert critical["label_shift_warning"] is not None and "disagree" in critical["label_shift_warning"]
    assert "not label shift alone" not in critical["label_shift_warning"]  # the mix is one C explains
    # a concept change breaks BBSE's assumption too: the two disagree, and the warning says so
    window, realized, _ = phases["concept change"]
    critical = window.loc["critical"]
    assert abs(critical["prevalence_bbse"] - realized) > 3 * critical["prevalence_bbse_se"]
    assert critical["label_shift_warning"] is not None


def test_under_covariate_shift_cbpe_holds_and_the_warning_says_bbse_does_not(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The simulator's covariate fault (num_0 moves 1.5 reference sd, P(y | x) unchanged) moves
    the class mix and P(x | class): CBPE's calibrated scores follow the true mix; the predicted
    mix is one no class mix gives under the reference's confusion matrix, and the warning says
    BBSE does not hold there. Precisions stay in [0, 1]. Oracle: numpy's class shares."""
    fault = Fault(start_day=2, kind="covariate", segment=None, value=None, drift_feature="num_0", shift=1.5)
    scenario = Scenario(days=4, rows_per_day=3000, segments=("sex", "region"), reference_rows=20_000, faults=[fault])
    data, frame = _two_day_windows(engine, tmp_path, scenario, seed=64)
    assert frame["precision_bbse"].between(0, 1).all()
    rows = data.predictions.merge(data.truth, on="prediction_id")
    day = (data.prediction_epoch - scenario.start_epoch) // DAY
    for first, shifted in ((0, False), (2, True)):
        window = frame[frame["end"] == scenario.start_epoch + (first + 2) * DAY].set_index("class")
        truth = rows["label"][(day >= first) & (day < first + 2)]
        realized = truth.value_counts(normalize=True).reindex(window.index, fill_value=0)
        assert (window["prevalence_cbpe"] - realized).abs().max() < 0.02  # CBPE holds
        flagged = window["label_shift_warning"].dropna()
        if shifted:
            assert (window["prevalence_bbse"] - realized).abs().max() > 0.1  # BBSE does not
            assert len(flagged) and all("not label shift alone" in text for text in flagged)
        else:
            assert flagged.empty

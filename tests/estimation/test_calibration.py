"""Calibration on the reference: ECE, isotonic maps, the auto decision, renormalisation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from monitor.estimation.calibration import (
    apply_map,
    calibrate_matrix,
    expected_calibration_error,
    fit_class,
    fit_isotonic,
)


def binary_scores(n: int, seed: int, *, sharpen: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Rare-class scores: truth ~ Bernoulli(p); logged score p**... sharpened in logit space."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-3.0, 1.5, n)
    p = 1 / (1 + np.exp(-logit))
    truth = (rng.random(n) < p).astype(np.int8)
    logged = 1 / (1 + np.exp(-sharpen * logit))
    return logged, truth


def test_ece_is_the_mass_weighted_gap_of_equal_mass_bins() -> None:
    scores, truth = binary_scores(5000, 1, sharpen=2.0)
    order = np.argsort(scores, kind="stable")
    # oracle: ten equal-size chunks of the sorted rows
    gaps = [abs(scores[i].mean() - truth[i].mean()) * len(i) for i in np.array_split(order, 10)]
    assert expected_calibration_error(scores, truth) == pytest.approx(sum(gaps) / len(scores))


def test_ece_of_perfect_scores_is_zero() -> None:
    truth = np.array([0, 0, 1, 1] * 50)
    assert expected_calibration_error(truth.astype(float), truth) == 0.0


def test_stored_map_predicts_as_sklearn_isotonic_regression() -> None:
    scores, truth = binary_scores(3000, 2, sharpen=2.0)
    x, y = fit_isotonic(scores, truth)
    oracle = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, truth)
    fresh = np.r_[np.linspace(-0.1, 1.1, 101), scores[:200]]
    np.testing.assert_allclose(apply_map(fresh, x.tolist(), y.tolist()), oracle.predict(fresh), atol=1e-12)


def test_auto_keeps_calibrated_scores_unflagged() -> None:
    scores, truth = binary_scores(20000, 3)
    fitted = fit_class("critical", scores, truth, mode="auto", max_ece=0.05)
    assert not fitted.badly_calibrated
    assert fitted.ece_before < 0.01
    assert fitted.n_positive == truth.sum() and fitted.n_reference == len(truth)


def test_auto_calibrates_over_confident_scores_and_flags_them() -> None:
    scores, truth = binary_scores(20000, 4, sharpen=0.35)  # under-dispersed: far from calibrated
    fitted = fit_class("critical", scores, truth, mode="auto", max_ece=0.05)
    assert fitted.badly_calibrated
    assert fitted.applied
    assert fitted.ece_after < fitted.ece_before / 3
    # the applied map turns the logged score into the true probability, on fresh rows too
    fresh, fresh_truth = binary_scores(50000, 5, sharpen=0.35)
    calibrated = apply_map(fresh, fitted.x, fitted.y)
    assert abs(calibrated.sum() - fresh_truth.sum()) < 0.05 * fresh_truth.sum()
    assert abs(fresh.sum() - fresh_truth.sum()) > 0.5 * fresh_truth.sum()


def test_mode_none_never_applies_and_isotonic_always_does() -> None:
    scores, truth = binary_scores(5000, 6)
    assert not fit_class("c", scores, truth, mode="none").applied
    assert fit_class("c", scores, truth, mode="isotonic").applied


def test_a_class_with_too_few_positives_keeps_raw_scores() -> None:
    scores = np.linspace(0, 0.1, 1000)
    truth = np.zeros(1000, dtype=np.int8)
    truth[:3] = 1
    fitted = fit_class("c", scores, truth, mode="isotonic")
    assert not fitted.applied and fitted.x is None


def test_calibrated_rows_are_renormalised_to_one() -> None:
    rng = np.random.default_rng(7)
    raw = rng.dirichlet([5, 2, 0.3], size=2000)
    truth = (rng.random(2000)[:, None] > np.cumsum(raw, axis=1)).sum(axis=1)
    fitted = [fit_class(str(c), raw[:, c] ** 0.5, (truth == c).astype(np.int8), mode="isotonic")
              for c in range(3)]
    out = calibrate_matrix(raw**0.5, fitted)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert (out >= 0).all()
    # a row whose calibrated scores are all 0 keeps its raw (renormalised) scores
    zero = calibrate_matrix(np.array([[0.0, 0.0, 0.0], [0.2, 0.2, 0.6]]), [None, None, None])
    assert np.isfinite(zero).all()

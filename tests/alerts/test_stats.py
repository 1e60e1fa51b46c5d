"""The alert statistics agree with statsmodels and scipy, also at the edges."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from monitor.alerts.stats import benjamini_hochberg, drop_p_value, wilson_interval


def test_wilson_interval_matches_statsmodels() -> None:
    successes = np.array([0, 1, 5, 17, 30, 99, 100])
    n = np.array([30, 7, 40, 31, 30, 100, 100])
    low, high = wilson_interval(successes, n)
    expected_low, expected_high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(low, expected_low, atol=1e-12)
    np.testing.assert_allclose(high, expected_high, atol=1e-12)


def test_wilson_interval_is_null_without_a_denominator() -> None:
    low, high = wilson_interval([0, 3], [0, 10])
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert 0 < low[1] < 0.3 < high[1] < 1


@pytest.mark.parametrize(
    ("x", "n", "x_ref", "n_ref"),
    [(10, 40, 300, 400), (25, 30, 700, 1000), (38, 40, 700, 1000), (3, 35, 80, 100), (12, 50, 60, 100)],
)
def test_drop_p_value_matches_the_one_sided_statsmodels_z_test(x: int, n: int, x_ref: int, n_ref: int) -> None:
    _, expected = proportions_ztest([x, x_ref], [n, n_ref], alternative="smaller")
    assert drop_p_value(x, n, x_ref, n_ref)[0] == pytest.approx(expected, rel=1e-10)


def test_a_window_that_never_predicts_the_class_is_the_strongest_evidence_not_a_nan() -> None:
    p = drop_p_value(0, 40, 800, 1000)[0]
    _, expected = proportions_ztest([0, 800], [40, 1000], alternative="smaller")
    assert p == pytest.approx(expected) and p < 1e-20


def test_a_rise_in_recall_is_not_evidence_of_a_drop() -> None:
    assert drop_p_value(39, 40, 700, 1000)[0] > 0.99


def test_empty_samples_are_not_tested_and_identical_extremes_are_no_evidence() -> None:
    p = drop_p_value([0, 5, 30, 0], [0, 10, 30, 30], [80, 0, 1000, 0], [100, 0, 1000, 1000])
    assert np.isnan(p[0]) and np.isnan(p[1])
    assert p[2] == 1.0 and p[3] == 1.0


def test_benjamini_hochberg_matches_statsmodels() -> None:
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.002, size=5)])
    expected = multipletests(p, alpha=0.05, method="fdr_bh")[1]
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=1e-12)


def test_benjamini_hochberg_skips_untested_series() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan])
    adjusted = benjamini_hochberg(p)
    expected = multipletests([0.01, 0.04, 0.03], method="fdr_bh")[1]
    assert np.isnan(adjusted[1]) and np.isnan(adjusted[4])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], expected)


@pytest.mark.parametrize(("x", "n", "margin"), [(30, 100, 0.05), (55, 100, 0.05), (60, 120, 0.1), (0, 40, 0.05)])
def test_the_drop_test_against_a_margin_matches_the_statsmodels_wald_test(x: int, n: int, margin: float) -> None:
    from statsmodels.stats.proportion import test_proportions_2indep

    expected = test_proportions_2indep(x, n, 700, 1000, value=-margin, compare="diff",
                                       alternative="smaller", method="wald").pvalue
    assert drop_p_value(x, n, 700, 1000, margin)[0] == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_a_margin_asks_for_more_evidence_than_any_drop() -> None:
    plain, with_margin = drop_p_value([58, 58], [100, 100], 700, 1000, [0.0, 0.05])
    assert plain < 0.01 < with_margin


@pytest.mark.parametrize(("x", "n", "level"), [(0, 26, 0.61), (1, 5, 0.7), (3, 12, 0.5), (12, 12, 0.9)])
def test_exact_below_matches_scipy_binomtest(x: int, n: int, level: float) -> None:
    from scipy.stats import binomtest

    from monitor.alerts.stats import exact_below

    expected = binomtest(x, n, level, alternative="less").pvalue
    assert exact_below(x, n, level)[0] == pytest.approx(expected, rel=1e-9)
    assert np.isnan(exact_below(0, 0, level)[0]) and np.isnan(exact_below(0, 5, np.nan)[0])

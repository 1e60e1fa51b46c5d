"""The statistics behind an alert and an incident: intervals, a one-sided drop test, false
discovery control. A leaf (numpy and scipy only): `monitor.alerts` and `monitor.incidents` both
use it, and `monitor.alerts.stats` re-exports it for older imports.

All functions are vectorised over numpy arrays (one element per series) and pure.

- `wilson_interval(successes, n)`: the 95% Wilson score interval of a proportion; NaN where
  n == 0 (a rate without a denominator has no interval).
- `drop_p_value(x, n, x_ref, n_ref)`: one-sided two-proportion z-test (pooled variance) of
  H1: p < p_ref, i.e. "the window's rate is below the reference's". Only drops are evidence;
  a rise gives a p-value near 1. NaN where either sample is empty.
- `exact_below(x, n, level)`: exact one-sided binomial p-value of H1: rate < level (the
  reference taken as known), for windows too small for the z-test.
- `benjamini_hochberg(p_values)`: BH-adjusted p-values (q-values); a series is a discovery at
  false discovery rate q when its adjusted p-value is <= q. NaN entries are not tested and
  stay NaN (they do not count in the number of hypotheses).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, norm

Z95 = float(norm.ppf(0.975))


def _as_float(values: object) -> np.ndarray:
    return np.atleast_1d(np.asarray(values, dtype=np.float64))


def wilson_interval(successes: object, n: object, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the Wilson score interval for successes/n; NaN where n == 0."""
    x, total = _as_float(successes), _as_float(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / total
        denominator = 1.0 + z * z / total
        centre = (p + z * z / (2.0 * total)) / denominator
        half = z * np.sqrt(p * (1.0 - p) / total + z * z / (4.0 * total * total)) / denominator
    empty = ~(total > 0)
    low = np.where(empty, np.nan, np.clip(centre - half, 0.0, 1.0))
    high = np.where(empty, np.nan, np.clip(centre + half, 0.0, 1.0))
    return low, high


def drop_p_value(x: object, n: object, x_ref: object, n_ref: object, margin: object = 0.0) -> np.ndarray:
    """One-sided p-value that the rate x/n is below the reference rate x_ref/n_ref by more
    than `margin` (H0: p >= p_ref - margin).

    margin 0: the pooled two-proportion z-test, the same as
    `statsmodels.stats.proportion.proportions_ztest([x, x_ref], [n, n_ref], alternative="smaller")`;
    when both samples are all successes or all failures there is no evidence (p = 1).
    margin > 0: the Wald test of the difference against -margin with unpooled variance, as
    `statsmodels.stats.proportion.test_proportions_2indep(..., value=-margin, compare="diff",
    alternative="smaller", method="wald")`; it asks for evidence that the drop is larger than
    the margin, not merely larger than zero.
    A window with positives and recall 0 is a valid, usually tiny, p-value: total failure is
    the strongest evidence there is, never a NaN.
    """
    x, n, x_ref, n_ref, delta = (_as_float(v) for v in (x, n, x_ref, n_ref, margin))
    delta = np.broadcast_to(delta, x.shape) if x.shape != delta.shape else delta
    with np.errstate(divide="ignore", invalid="ignore"):
        p, p_ref = x / n, x_ref / n_ref
        pooled = (x + x_ref) / (n + n_ref)
        se_pooled = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n + 1.0 / n_ref))
        se_wald = np.sqrt(p * (1.0 - p) / n + p_ref * (1.0 - p_ref) / n_ref)
        shifted = delta > 0
        se = np.where(shifted, se_wald, se_pooled)
        z = (p - p_ref + delta) / se
        result = norm.cdf(z)
    # no variance: pooled extremes carry no evidence; a Wald difference is then exact
    exact = np.where(p - p_ref + delta < 0, 0.0, 1.0)
    result = np.where(se > 0, result, np.where(shifted, exact, 1.0))
    return np.where((n > 0) & (n_ref > 0), result, np.nan)


def exact_below(x: object, n: object, level: object) -> np.ndarray:
    """P(X <= x) for X ~ Binomial(n, level): the exact one-sided p-value that the rate x/n is
    below `level` (`scipy.stats.binomtest(x, n, level, alternative="less")`). NaN where n is
    0 or the level unknown; a level at or below 0 admits no drop (p = 1)."""
    x, n, level = np.broadcast_arrays(_as_float(x), _as_float(n), _as_float(level))
    valid = (n > 0) & ~np.isnan(level) & ~np.isnan(x)
    p = binom.cdf(np.where(valid, x, 0), np.where(valid, n, 1), np.clip(np.nan_to_num(level), 0.0, 1.0))
    return np.where(valid, np.where(level > 0, p, 1.0), np.nan)


def benjamini_hochberg(p_values: object) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN inputs are skipped and stay NaN."""
    p = _as_float(p_values)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m == 0:
        return adjusted
    order = tested[np.argsort(p[tested], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    # step-up: the adjusted value of rank i is the smallest ranked value at or above i
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted[order] = np.minimum(ranked, 1.0)
    return adjusted

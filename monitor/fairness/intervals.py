"""The score interval for a ratio of two independent proportions, vectorised (pure numpy).

Miettinen-Nurminen's score interval for p1 / p2 (statsmodels'
`confint_proportions_2indep(x1, n1, x2, n2, compare="ratio", method="score")`, which solves
one root at a time; here every element is solved at once by bisection on log(ratio)). Unlike
Katz's log interval it needs no correction at zero counts: 0 of 70 against 14 of 20 gives
[0, 0.075], and 0 of 2 against 50 of 70 gives [0, 0.94] (two cases can prove nothing).

For a candidate ratio t, the counts' maximum likelihood under p1 = t * p2 (Farrington and
Manning's closed form) gives the variance of p1_hat - t * p2_hat; the interval is every t whose
score z = (p1_hat - t * p2_hat) / sd lies within +-z. z decreases in t, so each bound is one
bisection. The lower bound is 0 when x1 = 0; the upper bound is infinite when x2 = 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

Z95 = float(norm.isf(0.025))
_STEPS = 52  # bisection steps on log(t) in [-30, 30]: 60 / 2**52 ~ 1e-14
_LOG_RANGE = 30.0


def _score_z(t: np.ndarray, x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    total = n1 + n2
    a = total * t
    b = -(n1 * t + x1 + n2 + x2 * t)
    c = x1 + x2
    root = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
    p2 = np.clip((-b - root) / (2.0 * a), 0.0, np.minimum(1.0, 1.0 / t))
    p1 = np.clip(t * p2, 0.0, 1.0)
    variance = (p1 * (1.0 - p1) / n1 + t * t * p2 * (1.0 - p2) / n2) * total / (total - 1.0)
    gap = x1 / n1 - t * x2 / n2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = gap / np.sqrt(variance)
    # no variance left: the estimate either is t (z = 0) or lies infinitely far from it
    return np.where(variance > 0, z, np.where(gap == 0, 0.0, np.sign(gap) * np.inf))


def _bound(target: np.ndarray, x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """The t where the score z crosses `target` (z decreases in t)."""
    low = np.full(x1.shape, -_LOG_RANGE)
    high = np.full(x1.shape, _LOG_RANGE)
    with np.errstate(all="ignore"):
        for _ in range(_STEPS):
            middle = (low + high) / 2.0
            above = _score_z(np.exp(middle), x1, n1, x2, n2) > target
            low, high = np.where(above, middle, low), np.where(above, high, middle)
    return np.exp((low + high) / 2.0)


def _prepared(x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, z: ArrayLike
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts and totals as broadcast float arrays, `z` per element, and where the ratio is
    undefined (a total of 0, both counts 0, NaN); there the counts hold quiet placeholders."""
    c1, t1, c2, t2 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.float64))
                                          for a in (x1, n1, x2, n2)))
    level = np.broadcast_to(np.asarray(z, dtype=np.float64), c1.shape)
    undefined = ~(t1 > 0) | ~(t2 > 0) | ((c1 == 0) & (c2 == 0)) | np.isnan(c1) | np.isnan(c2)
    c1, c2 = np.where(undefined, 1.0, c1), np.where(undefined, 1.0, c2)
    t1, t2 = np.where(undefined, 2.0, t1), np.where(undefined, 2.0, t2)
    return c1, t1, c2, t2, level, undefined


def beyond(x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, ratio: float,
           z: ArrayLike, *, above: bool) -> np.ndarray:
    """Does the score interval at `z` lie wholly above `ratio` (above=True) or wholly below it?

    z decreases in the candidate ratio, so the lower bound exceeds r exactly when z(r) > z,
    and the upper bound is below r exactly when z(r) < -z: one evaluation, no bisection.
    False where the ratio is undefined."""
    c1, t1, c2, t2, level, undefined = _prepared(x1, n1, x2, n2, z)
    with np.errstate(all="ignore"):
        score = _score_z(np.full(c1.shape, float(ratio)), c1, t1, c2, t2)
    result = score > level if above else score < -level
    return np.asarray(result & ~undefined)


def ratio_interval(x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike,
                   z: ArrayLike = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Score interval of (x1/n1) / (x2/n2), elementwise; `z` may be one value per element.

    NaN where n1 or n2 is 0, or where both counts are 0 (0/0 has no ratio)."""
    c1, t1, c2, t2, level, undefined = _prepared(x1, n1, x2, n2, z)
    low = np.where(c1 == 0, 0.0, _bound(level, c1, t1, c2, t2))
    high = np.where(c2 == 0, np.inf, _bound(-level, c1, t1, c2, t2))
    return np.where(undefined, np.nan, low), np.where(undefined, np.nan, high)

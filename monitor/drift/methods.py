"""Drift statistics on histograms, vectorised over many (window, series) rows at once.

Every function takes a reference count matrix and a current count matrix of the same shape
(rows = comparisons, columns = bins) and returns one value per row, NaN where a side has no
counts (an empty window or a segment value absent from the reference).

- `psi`: sum((q - p) * ln(q / p)) over bins, with proportions of 0 replaced by 1e-4 (as
  Evidently does) so that a bin empty on one side gives a large but finite value.
- `js`: Jensen-Shannon *distance* with base-2 logarithms (0 = same, 1 = disjoint), the same
  as `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
- `ks`: the two-sample Kolmogorov-Smirnov statistic from cumulative proportions at the bin
  edges (exact when each distinct value has its own bin, else within the bin mass).
- `wasserstein`: W1 between the two histograms with each bin's mass at that bin's mean value
  (`totals / counts`), divided by the reference standard deviation (NaN when it is 0).
- `chi2`: p-value of Pearson's chi-squared test of homogeneity on the 2 x bins table, bins
  empty on both sides dropped, no continuity correction; 1.0 when fewer than two bins are used.

Each is registered in `monitor.registry.DRIFT_METHODS` through a `<name>_of(Histograms)`
adapter below; `compute` runs every method of a feature kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import stats

from monitor.registry import DRIFT_METHODS

PSI_EPSILON = 1e-4


def _proportions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        props = counts / totals
    return props, totals[:, 0]


def _void(reference_n: np.ndarray, current_n: np.ndarray) -> np.ndarray:
    return (reference_n <= 0) | (current_n <= 0)


def psi(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    p, n_ref = _proportions(reference)
    q, n_cur = _proportions(current)
    p = np.where(p == 0, PSI_EPSILON, p)
    q = np.where(q == 0, PSI_EPSILON, q)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.sum((q - p) * np.log(q / p), axis=1)
    return np.where(_void(n_ref, n_cur), np.nan, value)


def js(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    p, n_ref = _proportions(reference)
    q, n_cur = _proportions(current)
    m = (p + q) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0)
        right = np.where(q > 0, q * np.log2(q / m), 0.0)
    divergence = np.clip((left.sum(axis=1) + right.sum(axis=1)) / 2, 0.0, 1.0)
    return np.where(_void(n_ref, n_cur), np.nan, np.sqrt(divergence))


def ks(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Inputs exclude the missing bin: columns are the ordered value bins."""
    p, n_ref = _proportions(reference)
    q, n_cur = _proportions(current)
    value = np.max(np.abs(np.cumsum(p, axis=1) - np.cumsum(q, axis=1)), axis=1)
    return np.where(_void(n_ref, n_cur), np.nan, value)


def wasserstein(reference: np.ndarray, current: np.ndarray, reference_totals: np.ndarray,
                current_totals: np.ndarray, reference_std: float | None) -> np.ndarray:
    """Inputs exclude the missing bin; totals are the sums of the values in each bin."""
    p, n_ref = _proportions(reference)
    q, n_cur = _proportions(current)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_pos = np.where(reference > 0, reference_totals / reference, 0.0)
        cur_pos = np.where(current > 0, current_totals / current, 0.0)
    positions = np.concatenate([ref_pos, cur_pos], axis=1)
    weights = np.concatenate([np.nan_to_num(p), -np.nan_to_num(q)], axis=1)
    order = np.argsort(positions, axis=1, kind="stable")
    positions = np.take_along_axis(positions, order, axis=1)
    weights = np.take_along_axis(weights, order, axis=1)
    # integral of |F_ref - F_cur|: zero-weight points only split intervals, so they are harmless
    distance = np.sum(np.abs(np.cumsum(weights, axis=1)[:, :-1]) * np.diff(positions, axis=1), axis=1)
    if not reference_std or not np.isfinite(reference_std) or reference_std <= 0:
        return np.full(len(distance), np.nan)
    return np.where(_void(n_ref, n_cur), np.nan, distance / reference_std)


def chi2_pvalue(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    observed = np.stack([np.asarray(reference, float), np.asarray(current, float)], axis=1)  # (G, 2, B)
    rows = observed.sum(axis=2, keepdims=True)
    columns = observed.sum(axis=1, keepdims=True)
    total = rows.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = rows * columns / total
        terms = np.where(expected > 0, (observed - expected) ** 2 / expected, 0.0)
    statistic = terms.sum(axis=(1, 2))
    dof = (columns[:, 0, :] > 0).sum(axis=1) - 1
    value = np.where(dof > 0, stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
    return np.where(_void(rows[:, 0, 0], rows[:, 1, 0]), np.nan, value)


# --- the registered methods (monitor.registry.DRIFT_METHODS): one Histograms in, values out ---

@dataclass(frozen=True)
class Histograms:
    """Aligned rows of one feature's fine-bin counts and value sums (column 0: missing), and
    how fine bins merge into the coarse bins that psi and js compare."""

    reference: np.ndarray
    current: np.ndarray
    reference_totals: np.ndarray
    current_totals: np.ndarray
    coarse: np.ndarray  # fine bin -> coarse bin
    n_coarse: int
    reference_std: float | None = None

    @cached_property
    def _onehot(self) -> np.ndarray:
        onehot = np.zeros((len(self.coarse), self.n_coarse))
        onehot[np.arange(len(self.coarse)), self.coarse] = 1.0
        return onehot

    @cached_property
    def coarse_reference(self) -> np.ndarray:
        return self.reference @ self._onehot

    @cached_property
    def coarse_current(self) -> np.ndarray:
        return self.current @ self._onehot


def psi_of(h: Histograms) -> np.ndarray:
    return psi(h.coarse_reference, h.coarse_current)


def js_of(h: Histograms) -> np.ndarray:
    return js(h.coarse_reference, h.coarse_current)


def ks_of(h: Histograms) -> np.ndarray:
    return ks(h.reference[:, 1:], h.current[:, 1:])


def wasserstein_of(h: Histograms) -> np.ndarray:
    return wasserstein(h.reference[:, 1:], h.current[:, 1:], h.reference_totals[:, 1:],
                       h.current_totals[:, 1:], h.reference_std)


def chi2_of(h: Histograms) -> np.ndarray:
    return chi2_pvalue(h.reference, h.current)


DISTANCE_METHODS = DRIFT_METHODS.names(test="distance")
PVALUE_METHODS = DRIFT_METHODS.names(test="pvalue")  # drifted below the threshold


def methods_for(kind: str) -> tuple[str, ...]:
    """The registered methods for a feature kind ("numeric" or "categorical"), in order."""
    return DRIFT_METHODS.names(kinds=kind)


def compute(histograms: Histograms, kind: str) -> dict[str, np.ndarray]:
    """Every registered method of `kind` on `histograms`."""
    return {name: DRIFT_METHODS.load(name)(histograms) for name in methods_for(kind)}

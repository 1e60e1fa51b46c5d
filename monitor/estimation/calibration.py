"""Score calibration on the reference: pure functions, no database.

Confidence-based estimation (NannyML's CBPE) is only as good as the scores' calibration:
expected counts are sums of probabilities, so a score of 0.8 must mean "true 80% of the time".
Per class, one-vs-rest, we fit an isotonic regression of the 0/1 truth on the raw score and
keep it only when it lowers the expected calibration error (ECE) on a held-out part of the
reference (`auto`), so that well-calibrated scores are not made worse by an over-fitted map.
Calibrated multiclass scores are renormalised to sum to one per row.

A fitted map is a pair of increasing threshold arrays; applying it is `np.interp`, which is
what `IsotonicRegression(out_of_bounds="clip").predict` does, so it is stored as JSON and a
restart does not refit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression

ECE_BINS = 10
HOLDOUT_FRACTION = 0.5
MIN_POSITIVES_TO_FIT = 10  # fewer positives than this: an isotonic map is noise, keep raw
SPLIT_SEED = 20261128  # fixed: the same reference always gives the same calibrators


@dataclass(frozen=True)
class ClassCalibration:
    """What was learned for one class. `x`/`y` are the isotonic thresholds (None: identity)."""

    class_name: str
    applied: bool
    x: list[float] | None
    y: list[float] | None
    ece_before: float | None
    ece_after: float | None
    badly_calibrated: bool
    n_reference: int
    n_positive: int

    @property
    def ece_used(self) -> float | None:
        """ECE of the scores as the estimation uses them (after calibration when applied)."""
        return self.ece_after if self.applied else self.ece_before


def expected_calibration_error(scores: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-mass bins: sum over bins of (bin share) x |mean score - mean truth|.

    Equal-mass (quantile) bins rather than equal-width ones, because the scores of a rare
    class crowd near 0 and equal-width bins would put almost every row in the first bin.
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    n = len(scores)
    if n == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    bin_of_rank = (np.arange(n) * bins) // n
    bin_index = np.empty(n, dtype=np.int64)
    bin_index[order] = bin_of_rank
    score_sums = np.bincount(bin_index, weights=scores, minlength=bins)
    truth_sums = np.bincount(bin_index, weights=truth, minlength=bins)
    return float(np.abs(score_sums - truth_sums).sum() / n)


def noise_ece(scores: np.ndarray, bins: int = ECE_BINS) -> float:
    """The ECE that perfectly calibrated scores would show on average, from sampling alone.

    Per bin, sum(y) - sum(p) has variance sum p (1 - p) when y ~ Bernoulli(p), and
    E|N(0, s^2)| = s sqrt(2 / pi); an observed ECE near this value is no evidence of
    miscalibration.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if n == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    bin_index = np.empty(n, dtype=np.int64)
    bin_index[order] = (np.arange(n) * bins) // n
    variances = np.bincount(bin_index, weights=scores * (1.0 - scores), minlength=bins)
    return float(np.sqrt(2.0 / np.pi) * np.sqrt(variances).sum() / n)


def fit_isotonic(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Increasing isotonic map from raw score to P(class | score), as threshold arrays."""
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.float64))
    return np.asarray(model.X_thresholds_, dtype=np.float64), np.asarray(model.y_thresholds_, dtype=np.float64)


def apply_map(
    scores: np.ndarray, x: Sequence[float] | np.ndarray | None, y: Sequence[float] | np.ndarray | None
) -> np.ndarray:
    """Calibrated scores; identity when there is no map."""
    scores = np.asarray(scores, dtype=np.float64)
    if x is None or y is None or len(x) == 0:
        return scores
    if len(x) == 1:
        return np.full_like(scores, float(y[0]))
    return np.interp(scores, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def _holdout_mask(truth: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified random held-out mask, so a rare class has positives on both sides."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(truth), dtype=bool)
    for value in (0, 1):
        index = np.flatnonzero(truth == value)
        chosen = rng.permutation(index)[: int(round(len(index) * fraction))]
        mask[chosen] = True
    return mask


def fit_class(
    class_name: str,
    scores: np.ndarray,
    truth: np.ndarray,
    *,
    mode: str = "auto",
    max_ece: float = 0.05,
) -> ClassCalibration:
    """Decide and fit the calibration of one class (one-vs-rest).

    `mode`: "auto" applies isotonic calibration when the raw scores' held-out ECE is more
    than twice what sampling noise gives calibrated scores (`noise_ece`) and the map lowers
    it: an isotonic map fitted to already calibrated scores only adds its own fitting error,
    the same in every window, which would bias every estimate. "isotonic" always applies
    it, "none" never. `badly_calibrated` flags raw scores whose held-out ECE
    exceeds `max_ece` (the warning shown next to estimates: with such scores the estimate
    rests on the calibration map, which only holds while P(y | score) stays as on the
    reference). ECEs are measured on the held-out half; an applied map is then refitted on
    the whole reference.
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int8)
    n_positive = int(truth.sum())
    holdout = _holdout_mask(truth, HOLDOUT_FRACTION, SPLIT_SEED)
    ece_before = expected_calibration_error(scores[holdout], truth[holdout])
    enough = n_positive >= MIN_POSITIVES_TO_FIT and n_positive < len(truth)
    ece_after: float | None = None
    if mode != "none" and enough:
        x_fit, y_fit = fit_isotonic(scores[~holdout], truth[~holdout])
        ece_after = expected_calibration_error(apply_map(scores[holdout], x_fit, y_fit), truth[holdout])
    miscalibrated = ece_before > 2.0 * noise_ece(scores[holdout])
    applied = ece_after is not None and (
        mode == "isotonic" or (miscalibrated and ece_after < ece_before)
    )
    x = y = None
    if applied:
        x_all, y_all = fit_isotonic(scores, truth)
        x, y = x_all.tolist(), y_all.tolist()
    return ClassCalibration(
        class_name=class_name,
        applied=applied,
        x=x,
        y=y,
        ece_before=ece_before,
        ece_after=ece_after,
        badly_calibrated=bool(ece_before > max_ece),
        n_reference=len(truth),
        n_positive=n_positive,
    )


def calibrate_matrix(
    scores: np.ndarray, calibrations: Sequence[ClassCalibration | None]
) -> np.ndarray:
    """Apply each class's map to its column and renormalise rows to sum to one.

    `scores` is (rows, classes) in the order of `calibrations` (None: identity). A row whose
    calibrated scores sum to 0 keeps its raw scores (renormalised), never a division by 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    out = np.empty_like(scores)
    for column, calibration in enumerate(calibrations):
        if calibration is not None and calibration.applied:
            out[:, column] = apply_map(scores[:, column], calibration.x, calibration.y)
        else:
            out[:, column] = scores[:, column]
    if out.shape[1] < 2:
        return np.clip(out, 0.0, 1.0)
    totals = out.sum(axis=1)
    zero = totals <= 0
    if zero.any():
        out[zero] = scores[zero]
        totals = out.sum(axis=1)
    totals = np.where(totals > 0, totals, 1.0)
    return out / totals[:, None]

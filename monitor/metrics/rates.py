"""Rates from confusion counts, with 95% Wilson intervals. Pure numpy, no I/O.

A rate whose denominator is 0 is NaN (null in records), never 0: an empty window says
nothing, and a class the model never predicts while positives exist has recall exactly 0.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

Z95 = float(norm.ppf(0.975))


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def wilson_interval(successes: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion; NaN where n == 0."""
    successes = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
        denominator = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
        low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    # exact bounds at the edges (floating point can leave 1e-17 instead of 0)
    low = np.where((n > 0) & (successes <= 0), 0.0, low)
    high = np.where((n > 0) & (successes >= n), 1.0, high)
    return low, high


def one_vs_rest(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """precision, recall, f1 and their intervals from one-vs-rest counts."""
    precision = safe_divide(tp, tp + fp)
    recall = safe_divide(tp, tp + fn)
    f1 = safe_divide(2 * np.asarray(tp, dtype=np.float64), 2 * np.asarray(tp) + fp + fn)
    recall_low, recall_high = wilson_interval(tp, tp + fn)
    precision_low, precision_high = wilson_interval(tp, tp + fp)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "recall_low": recall_low,
        "recall_high": recall_high,
        "precision_low": precision_low,
        "precision_high": precision_high,
    }

"""Rates from confusion counts, with 95% Wilson intervals. Pure numpy, no I/O.

A leaf module: it imports nothing from the metrics or estimation packages (both use it), only
the registry of metrics, whose `Rate` entries say which counts make each rate.

A rate whose denominator is 0 is NaN (null in records), never 0: an empty window says
nothing, and a class the model never predicts while positives exist has recall exactly 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from scipy.stats import norm

from monitor.registry import Rate, rate_metrics

Z95 = float(norm.ppf(0.975))
# the order of the built-in rates in the metrics records (docs/contract.md); rates registered
# later follow, each as value, low, high
CONTRACT_RATE_COLUMNS = ("precision", "recall", "f1", "recall_low", "recall_high", "precision_low",
                         "precision_high")


class Columns(Protocol):
    """Arrays by count name: a dict of arrays or a DataFrame."""

    def __getitem__(self, name: str) -> Any: ...


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


def weighted_sum(weights: Mapping[str, int], counts: Columns) -> np.ndarray:
    """sum(weight x count) in float64 (exact for counts below 2**53)."""
    total: np.ndarray | None = None
    for name, weight in weights.items():
        if counts[name] is None:
            raise ValueError(f"this rate needs the {name} counts")
        term = np.asarray(counts[name], dtype=np.float64) * weight
        total = term if total is None else total + term
    assert total is not None, "a rate needs at least one count"
    return total


def rate_counts(rate: Rate, counts: Columns) -> tuple[np.ndarray, np.ndarray]:
    """(successes, trials) of `rate` from arrays of tp, fp, fn, tn."""
    return weighted_sum(rate.successes, counts), weighted_sum(rate.trials, counts)


def rate_columns() -> list[str]:
    """The rate columns of a metrics record, in order."""
    columns = list(CONTRACT_RATE_COLUMNS)
    for entry in rate_metrics():
        bands = (f"{entry.name}_low", f"{entry.name}_high") if entry.options["rate"].interval else ()
        columns += [name for name in (entry.name, *bands) if name not in columns]
    return columns


def one_vs_rest(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray,
                tn: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every registered rate (precision, recall, f1, ...) and the intervals of those that are
    proportions, from one-vs-rest counts (`tn` only for rates that use it)."""
    counts = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    out: dict[str, np.ndarray] = {}
    for entry in rate_metrics():
        rate: Rate = entry.options["rate"]
        successes, trials = rate_counts(rate, counts)
        out[entry.name] = safe_divide(successes, trials)
        if rate.interval:
            out[f"{entry.name}_low"], out[f"{entry.name}_high"] = wilson_interval(successes, trials)
    return {name: out[name] for name in rate_columns()}  # the records' order

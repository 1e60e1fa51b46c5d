"""Fixed bins per feature, defined once from the reference, and vectorised bin assignment.

Numeric features get *fine* bins at reference quantiles (`DriftSettings.fine_bins`, plus the
reference minimum and just above its maximum, so that the two open ends hold only values outside
the reference range; a feature with few distinct values gets one edge per value, which makes
KS exact),
so that KS and Wasserstein computed from histograms stay close to the raw-data statistics.
PSI and JS use *coarse* bins (`DriftSettings.bins`): adjacent fine bins merged by reference
mass. Categorical features get the top categories of the reference plus "other" (which also
receives categories never seen in the reference). Every feature has a bin for missing
values (NaN, None, empty, and non-finite numbers).

Bin codes: 0 missing; numeric 1..E+1 for E edges (`v < e0` -> 1, `e[i-1] <= v < e[i]` -> i+1,
`v >= e[-1]` -> E+1); categorical 1..C for the categories, C+1 "other".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PREDICTION = "__prediction__"
MISSING_LABEL = "(missing)"
OTHER_LABEL = "(other)"


def score_feature(cls: str) -> str:
    return f"__score_{cls}__"


@dataclass
class FeatureBins:
    """The bins of one feature. `coarse[code]` is the coarse bin of fine bin `code`."""

    feature: str
    kind: str  # "numeric" | "categorical"
    position: int
    edges: np.ndarray | None
    categories: list[str] | None
    coarse: np.ndarray
    reference_mean: float | None = None
    reference_std: float | None = None
    source: str = "reference"

    @property
    def _edges(self) -> np.ndarray:
        return self.edges if self.edges is not None else np.empty(0)

    @property
    def n_bins(self) -> int:
        if self.kind == "numeric":
            return len(self.edges) + 2  # type: ignore[arg-type]
        return len(self.categories) + 2  # type: ignore[arg-type]

    @property
    def n_coarse(self) -> int:
        return int(self.coarse.max()) + 1

    def assign(self, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(bin codes, numeric values with 0 where missing) for a column, vectorised."""
        if self.kind == "numeric":
            numbers = numeric_values(values)
            finite = np.isfinite(numbers)
            codes = np.where(finite, 1 + np.searchsorted(self._edges, numbers, side="right"), 0)
            return codes.astype(np.int64), np.where(finite, numbers, 0.0)
        text, missing = text_values(values)
        categories = self.categories or []
        found = pd.Index(np.asarray(categories, dtype=object)).get_indexer(pd.Index(text)).astype(np.int64)
        codes = np.where(missing, 0, np.where(found < 0, len(categories) + 1, found + 1))
        return codes, np.zeros(len(codes))

    def labels(self) -> list[str]:
        """A readable label per fine bin code."""
        if self.kind == "categorical":
            return [MISSING_LABEL, *self.categories, OTHER_LABEL]  # type: ignore[misc]
        edges = [_fmt(e) for e in self.edges]  # type: ignore[union-attr]
        if not edges:
            return [MISSING_LABEL, "all values"]
        middle = [f"[{a}, {b})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        return [MISSING_LABEL, f"< {edges[0]}", *middle, f">= {edges[-1]}"]

    def coarse_labels(self) -> list[str]:
        """A readable label per coarse bin (the union of its fine bins)."""
        if self.kind == "categorical":
            return self.labels()
        edges = self._edges
        out = [MISSING_LABEL]
        for group in range(1, self.n_coarse):
            members = np.flatnonzero(self.coarse == group)
            low_code, high_code = int(members[0]), int(members[-1])
            low = _fmt(edges[low_code - 2]) if low_code >= 2 else "-inf"
            high = _fmt(edges[high_code - 1]) if high_code <= len(edges) else "+inf"
            out.append(f"[{low}, {high})")
        return out


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def numeric_values(values: pd.Series) -> np.ndarray:
    """Floats with NaN for missing or unparsable values."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def text_values(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Strings (as the reference saw them) and a mask of missing values (NaN, None, '')."""
    text = values.astype("string")
    missing = (text.isna() | (text.str.strip() == "")).to_numpy(dtype=bool, na_value=True)
    return text.fillna("").to_numpy(dtype=object), missing


def infer_kind(values: pd.Series) -> str:
    """numeric when the column is numeric (not boolean) or every present value parses as a
    number; categorical otherwise."""
    if pd.api.types.is_bool_dtype(values):
        return "categorical"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    _, missing = text_values(values)
    present = values[~missing]
    if len(present) == 0:
        return "numeric"
    parsed = pd.to_numeric(present, errors="coerce")
    return "numeric" if parsed.notna().all() else "categorical"


def numeric_bins(feature: str, values: pd.Series, *, position: int, fine_bins: int,
                 bins: int, source: str = "reference") -> FeatureBins:
    numbers = numeric_values(values)
    present = np.sort(numbers[np.isfinite(numbers)])
    distinct = np.unique(present)
    if len(distinct) <= fine_bins:
        edges = distinct
    else:
        edges = np.quantile(present, np.linspace(0, 1, fine_bins + 1)[1:-1])
    if len(distinct):
        # the open ends hold only values outside the reference range, so a value beyond it
        # (or a constant feature that changes) is visible to every method
        edges = np.unique(np.concatenate([[distinct[0]], edges, [np.nextafter(distinct[-1], np.inf)]]))
    fine = FeatureBins(feature, "numeric", position, edges.astype(np.float64), None,
                       np.zeros(len(edges) + 2, dtype=np.int64), source=source)
    codes, _ = fine.assign(pd.Series(present))
    counts = np.bincount(codes, minlength=fine.n_bins)[1:].astype(np.float64)
    fine.coarse = np.concatenate([[0], 1 + _merge_by_mass(counts, bins)])
    if len(present):
        fine.reference_mean = float(present.mean())
        fine.reference_std = float(present.std())
    return fine


def _merge_by_mass(counts: np.ndarray, bins: int) -> np.ndarray:
    """Coarse group (0..) of each fine bin: adjacent bins merged into ~`bins` equal-mass groups."""
    total = counts.sum()
    if total == 0:
        return np.zeros(len(counts), dtype=np.int64)
    middle = (np.cumsum(counts) - counts / 2) / total
    groups = np.minimum((middle * bins).astype(np.int64), bins - 1)
    _, dense = np.unique(groups, return_inverse=True)  # no empty coarse groups
    return dense.astype(np.int64)


def categorical_bins(feature: str, values: pd.Series, *, position: int, top: int,
                     categories: list[str] | None = None, source: str = "reference") -> FeatureBins:
    """Top `top` reference categories (most frequent first; ties by name) + other + missing.
    `categories` fixes the list instead (the predicted-class mix uses the model's classes)."""
    if categories is None:
        text, missing = text_values(values)
        counts = pd.Series(text[~missing]).value_counts()
        ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
        categories = [str(name) for name, _ in ordered[:top]]
    n_bins = len(categories) + 2
    return FeatureBins(feature, "categorical", position, None, list(categories),
                       np.arange(n_bins, dtype=np.int64), source=source)

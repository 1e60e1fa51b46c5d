"""Estimated (label-free) performance per window, class and series; calibration report.

The estimate of a window is a ratio of expected counts summed over its buckets and slices:

    recall_estimated    = E[tp] / (E[tp] + E[fn])
    precision_estimated = E[tp] / n_predicted

Its interval is a 95% interval for the *realized* value the labels will give, assuming the
scores are calibrated: tp and fn are independent Poisson-binomial counts whose variances are
the stored sums of p (1 - p); the delta method gives the variance of the ratio, and a Wilson
interval at the matching effective sample size n_eff = r (1 - r) / var keeps it inside
[0, 1] and asymmetric near the edges. It does not include the uncertainty of the calibration
map itself; `checks` adds the calibration error measured on mature days. Concept drift
(P(y | x) changing) shows only through labels: see docs/estimation.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation import checks
from monitor.estimation.aggregate import CALIBRATORS, EXPECTED_COUNTS, VALUE_COLUMNS
from monitor.rates import safe_divide, wilson_interval
from monitor.store.windows import WindowSpec, windowed_counts

ESTIMATE_COLUMNS = [
    "end", "segment", "segment_value", "class", "recall_estimated", "recall_estimated_low",
    "recall_estimated_high", "precision_estimated", "precision_estimated_low",
    "precision_estimated_high", "f1_estimated", "support_estimated", "n_scored",
    "estimation_warning", *checks.TRACE_COLUMNS, *checks.CHECK_COLUMNS,
]

REPORT_COLUMNS = [
    "class", "method", "applied", "ece_before", "ece_after", "badly_calibrated", "n_reference",
    "n_positive", "warning",
]


def ratio_interval(
    estimate: np.ndarray, variance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson interval for a proportion estimate with the given variance.

    The effective sample size is the binomial one with that variance; a zero variance (every
    score 0 or 1) gives the point itself, a NaN estimate gives NaN bounds.
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where(variance > 0, estimate * (1.0 - estimate) / variance, np.nan)
    usable = np.isfinite(n_eff) & (n_eff > 0)
    low, high = wilson_interval(np.where(usable, estimate * n_eff, 0.0), np.where(usable, n_eff, 0.0))
    exact = np.isfinite(estimate) & ~usable  # no variance: the realized value is known
    low = np.where(exact, estimate, low)
    high = np.where(exact, estimate, high)
    return low, high


def _recall_arrays(counts: pd.DataFrame, extra_variance: np.ndarray | float = 0.0) -> dict[str, np.ndarray]:
    """recall_estimated and its interval (from exp_tp, exp_fn, var_tp, var_fn only);
    `extra_variance` (the calibration's, `checks`) is added to the sampling variance."""
    tp = counts["exp_tp"].to_numpy(dtype=np.float64)
    fn = counts["exp_fn"].to_numpy(dtype=np.float64)
    var_tp = counts["var_tp"].to_numpy(dtype=np.float64)
    var_fn = counts["var_fn"].to_numpy(dtype=np.float64)
    positives = tp + fn
    recall = safe_divide(tp, positives)
    # delta method for tp / (tp + fn) with independent tp and fn
    recall_variance = safe_divide(fn * fn * var_tp + tp * tp * var_fn, positives**4)
    recall_low, recall_high = ratio_interval(recall, recall_variance + extra_variance)
    return {"recall_estimated": recall, "recall_estimated_low": recall_low, "recall_estimated_high": recall_high}


def _rate_arrays(counts: pd.DataFrame, extra_variance: np.ndarray | float = 0.0) -> dict[str, np.ndarray]:
    """The columns of `estimate_rates` as arrays, in its order."""
    tp = counts["exp_tp"].to_numpy(dtype=np.float64)
    fn = counts["exp_fn"].to_numpy(dtype=np.float64)
    var_tp = counts["var_tp"].to_numpy(dtype=np.float64)
    n_predicted = counts["n_predicted"].to_numpy(dtype=np.float64)
    precision = safe_divide(tp, n_predicted)
    precision_low, precision_high = ratio_interval(precision, safe_divide(var_tp, n_predicted**2))
    return {
        **_recall_arrays(counts, extra_variance),
        "precision_estimated": precision,
        "precision_estimated_low": precision_low,
        "precision_estimated_high": precision_high,
        "f1_estimated": safe_divide(2 * tp, tp + n_predicted + fn),
        "support_estimated": tp + fn,
    }


def estimate_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """Rates and intervals from summed expected counts (pure; columns of VALUE_COLUMNS)."""
    return pd.DataFrame(_rate_arrays(counts), index=counts.index)


# blanked where the window holds no scored prediction (support_estimated included)
BLANKED_COLUMNS = [c for c in ESTIMATE_COLUMNS if c.endswith(("_estimated", "_low", "_high"))]


@dataclass(frozen=True)
class WindowEstimates:
    """What `estimated_frame` is made of, as arrays aligned with `counts` (the window sums
    of expected counts per end, series and class, with a fresh index): the class names as
    strings, the rates (NaN where nothing was scored), n_scored, and the calibration warning
    of each row's class (None when fine)."""

    counts: pd.DataFrame
    classes: pd.Series
    rates: dict[str, np.ndarray]
    n_scored: np.ndarray
    warnings: np.ndarray
    calibration_error: np.ndarray | None = None  # tau (recall scale) added to the interval
    interval_coverage: np.ndarray | None = None  # measured on mature days (NaN: not measured)
    coverage_days: np.ndarray | None = None


# what the recall estimate needs of VALUE_COLUMNS (n_scored: whether anything was scored;
# n_predicted: the blended best value of `monitor metrics`)
RECALL_VALUE_COLUMNS = ["n_scored", "n_predicted", "exp_tp", "exp_fn", "var_tp", "var_fn"]


def window_estimates(conn: Connection, ctx: ModelContext, spec: WindowSpec, *,
                     segment_sets: Sequence[tuple[str, ...]], ends=None,  # type: ignore[no-untyped-def]
                     recall_only: bool = False) -> WindowEstimates | None:
    """The estimates of `estimated_frame` before they are put in a frame; None without
    expected counts in the windows. `recall_only`: only the recall columns (reads 6 of the
    8 sums; the same rows and the same recall values)."""
    counts = windowed_counts(
        conn,
        EXPECTED_COUNTS,
        model_id=ctx.model_id,
        spec=spec,
        segment_sets=segment_sets,
        key_columns=["class_name"],
        value_columns=RECALL_VALUE_COLUMNS if recall_only else VALUE_COLUMNS,
        ends=ends,
        bucket=ctx.bucket,
    )
    if counts.empty:
        return None
    counts = counts.reset_index(drop=True)
    classes = counts["class_name"].astype(str)
    ends_of_rows = counts["end"].to_numpy(np.int64)
    tau2 = np.zeros(len(counts))
    coverage = np.full(len(counts), np.nan)
    days = np.zeros(len(counts), dtype=np.int64)
    clock = checks.maturity_clock(conn, ctx)
    if clock is not None and len(counts):
        as_of, age = clock
        per_class = checks.daily_checks(conn, ctx, int(ends_of_rows.min()), as_of, age)
        tau2, coverage, days = checks.window_checks(per_class, classes, ends_of_rows, age)
    rates = _recall_arrays(counts, tau2) if recall_only else _rate_arrays(counts, tau2)
    n_scored = counts["n_scored"].astype(np.int64).to_numpy()
    empty = n_scored == 0  # no scored prediction in the window: nothing to estimate
    if empty.any():
        for name in BLANKED_COLUMNS:
            if name in rates:
                rates[name] = np.where(empty, np.nan, rates[name])
    codes, names = pd.factorize(classes)
    found = class_warnings(conn, ctx)
    by_class = np.array([None, *(found.get(name) for name in names)], dtype=object)
    warnings = by_class[codes + 1]
    failing = np.flatnonzero(np.isfinite(coverage) & (coverage < checks.MIN_COVERAGE) & ~empty)
    for row in failing:  # few rows: the windows whose interval has been failing
        text = checks.coverage_warning(float(coverage[row]), int(days[row]))
        warnings[row] = text if warnings[row] is None else f"{warnings[row]}; {text}"
    return WindowEstimates(counts, classes, rates, n_scored, warnings, np.sqrt(tau2), coverage, days)


def estimated_frame(
    conn: Connection,
    ctx: ModelContext,
    spec: WindowSpec,
    *,
    segment_sets: Sequence[tuple[str, ...]],
    ends=None,  # type: ignore[no-untyped-def]
) -> pd.DataFrame:
    """Estimated performance per (end, segment, segment_value, class); empty without scores.

    `segment_sets` as for `windowed_counts` (`()` is the overall series); `ends` (epoch
    seconds) aligns the windows with the realized metrics. Columns: ESTIMATE_COLUMNS, `end`
    as epoch seconds. Rates are NaN where the window holds no scored prediction (or, for
    precision, none predicted as the class). `estimation_warning` is set on every row of a
    class whose reference scores were badly calibrated, and where the recall interval's
    measured coverage fell below 85% (`checks`). The recall interval includes the
    calibration error (`calibration_error`); `calibration*` name the calibration most of the
    window's predictions were estimated with (`checks.calibration_trace`).
    """
    found = window_estimates(conn, ctx, spec, segment_sets=segment_sets, ends=ends)
    if found is None:
        return pd.DataFrame(columns=ESTIMATE_COLUMNS)
    counts = found.counts
    columns: dict[str, object] = {
        "end": counts["end"].astype(np.int64),
        "segment": counts["segment"],
        "segment_value": counts["segment_value"],
        "class": found.classes,
        **found.rates,
        "n_scored": found.n_scored,
        "estimation_warning": pd.Series(found.warnings, dtype=object),  # not inferred as str
        "calibration_error": found.calibration_error,
        "interval_coverage": found.interval_coverage,
        "coverage_days": found.coverage_days,
    }
    frame = pd.DataFrame(columns)
    trace = checks.calibration_trace(conn, ctx, np.unique(frame["end"].to_numpy(np.int64)), spec.window)
    frame = frame.merge(trace, on="end", how="left")
    return frame[ESTIMATE_COLUMNS]


def _warning(record: Mapping[str, Any] | pd.Series) -> str | None:
    if not record["badly_calibrated"]:
        return None
    before = f"{record['ece_before']:.3f}"
    if record["applied"]:
        return (
            f"scores of {record['class']!r} are badly calibrated on the reference (ECE {before}); "
            f"estimates use an isotonic calibration fitted on the reference (ECE "
            f"{record['ece_after']:.3f}), valid only while P(class | score) stays as there"
        )
    return (
        f"scores of {record['class']!r} are badly calibrated on the reference (ECE {before}) "
        "and no calibration is applied: estimated values are unreliable"
    )


def calibration_report(conn: Connection, ctx: ModelContext) -> pd.DataFrame:
    """Per class: calibration method, held-out ECE before/after, applied, badly_calibrated,
    reference sizes and the warning text (None when the scores are fine). Empty when no
    calibrators are stored (no reference with scores)."""
    table = CALIBRATORS
    rows = conn.execute(
        select(
            table.c.class_name.label("class"), table.c.method, table.c.applied,
            table.c.ece_before, table.c.ece_after, table.c.badly_calibrated,
            table.c.n_reference, table.c.n_positive,
        ).where(table.c.model_id == ctx.model_id)
    ).mappings().all()
    report = pd.DataFrame([dict(r) for r in rows], columns=REPORT_COLUMNS[:-1])
    if report.empty:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    order = {name: i for i, name in enumerate(ctx.classes)}
    report = report.sort_values("class", key=lambda s: s.map(order).fillna(len(order))).reset_index(drop=True)
    report["applied"] = report["applied"].astype(bool)
    report["badly_calibrated"] = report["badly_calibrated"].astype(bool)
    report["warning"] = pd.Series([_warning(row) for _, row in report.iterrows()], dtype=object)  # one row per class
    return report[REPORT_COLUMNS]


def class_warnings(conn: Connection, ctx: ModelContext) -> dict[str, str | None]:
    """The `warning` column of `calibration_report` per class (classes without a stored
    calibrator are absent), without building the report."""
    table = CALIBRATORS
    rows = conn.execute(
        select(
            table.c.class_name, table.c.applied, table.c.ece_before, table.c.ece_after,
            table.c.badly_calibrated,
        ).where(table.c.model_id == ctx.model_id)
    ).all()
    nan = float("nan")
    return {
        name: _warning({  # as in the report: flags as bool, a missing ECE as NaN
            "class": name, "applied": bool(applied), "badly_calibrated": bool(badly),
            "ece_before": nan if before is None else before, "ece_after": nan if after is None else after,
        })
        for name, applied, before, after, badly in rows
    }

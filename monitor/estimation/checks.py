"""What the estimate's interval must also cover, and the trace of the calibration it used.

**Calibration check (issue 18).** The sampling interval of `service.ratio_interval` assumes
the calibration is right. Whether it was can be measured once labels mature: per class, on
the overall series, each UTC day whose labels are mature (it ended at least the maturity
age before the clock) gives a residual r - e between the realized recall of its labelled
rows and the estimate, whose sampling variance v is the estimate's delta-method variance
divided by the day's labelled share. The calibration error variance is estimated by the
method of moments over the last CHECK_DAYS mature days:

    tau^2 = max(0, mean((r - e)^2 - v), mean(r - e)^2 - mean(v) / n)

and added to every window's sampling variance. For a window ending at t only days mature at t
count (ended by t - age), so the interval is the one that could have been shown at t, and
the calibration check never uses the labels of the window it widens. The measured coverage of
a window is the share of those check days whose realized recall fell inside their own
interval (itself widened with the tau of its time); below MIN_COVERAGE the estimate carries
a warning. Without a rolling calibration (no maturity age known yet) tau is 0 and nothing is
measured: the interval is the sampling one.

**Trace.** `calibration_usage` holds scored predictions per (bucket, calibration); a window's
calibration is the one most of its predictions were estimated with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation.recalibrate import CALIBRATIONS, NO_CALIBRATION, USAGE
from monitor.rates import safe_divide
from monitor.store.models import ConfusionCount
from monitor.store.windows import WindowSpec, windowed_counts

DAY = 86_400
CHECK_DAYS = 28  # mature days the calibration error is estimated from
MIN_CHECK_DAYS = 7  # fewer: no widening, no coverage figure
MIN_COVERAGE = 0.85  # measured coverage below this: the estimate carries a warning
MIN_DAY_POSITIVES = 5  # a day with fewer labelled positives of the class is not a check
Z95 = 1.959963984540054
CONFUSION = cast(Table, ConfusionCount.__table__)

TRACE_COLUMNS = ["calibration", "calibration_id", "calibration_fit_start", "calibration_fit_end", "calibration_labels"]
CHECK_COLUMNS = ["calibration_error", "interval_coverage", "coverage_days"]


@dataclass(frozen=True)
class ClassCheck:
    """Per mature day of one class: day end, residual statistic and whether it was covered."""

    day_end: np.ndarray
    residual: np.ndarray  # realized - estimated
    variance: np.ndarray  # sampling variance of the residual
    covered: np.ndarray  # bool: r inside e +- z sqrt(v + tau^2 of its time)


def maturity_clock(conn: Connection, ctx: ModelContext) -> tuple[int, int] | None:
    """(clock, maturity age in seconds) of the latest rolling calibration; None without one."""
    table = CALIBRATIONS
    row = conn.execute(
        select(table.c.as_of, table.c.fit_end).where(table.c.model_id == ctx.model_id, table.c.kind == "rolling")
        .order_by(table.c.as_of.desc(), table.c.id.desc()).limit(1)
    ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return int(row[0]), int(row[0]) - int(row[1])


def _window_sum(values: np.ndarray, begin: np.ndarray, stop: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    return cumulative[stop] - cumulative[begin]


def _tau2(day_end: np.ndarray, residual: np.ndarray, variance: np.ndarray, until: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """(tau^2, number of check days) from the last CHECK_DAYS days with day_end <= until:
    the larger of two moment estimates, mean((r - e)^2 - v) (any error of the calibration)
    and mean(r - e)^2 - mean(v) / n (its bias, which a steady drift makes one-signed and
    which this one detects with less noise)."""
    stop = np.searchsorted(day_end, until, side="right")
    begin = np.maximum(stop - CHECK_DAYS, 0)
    count = (stop - begin).astype(np.float64)
    mean_variance = safe_divide(_window_sum(variance, begin, stop), count)
    spread = safe_divide(_window_sum(residual**2, begin, stop), count) - mean_variance
    bias = safe_divide(_window_sum(residual, begin, stop), count) ** 2 - safe_divide(mean_variance, count)
    enough = count >= MIN_CHECK_DAYS
    tau2 = np.maximum(np.nan_to_num(np.maximum(spread, bias)), 0.0)
    return np.where(enough, tau2, 0.0), np.where(enough, stop - begin, 0)


def daily_checks(conn: Connection, ctx: ModelContext, first_end: int, clock: int, age: int) -> dict[str, ClassCheck]:
    """Per class, the mature days (ending in (first_end - age - CHECK_DAYS days, clock - age])
    with their residual statistics and coverage."""
    from monitor.estimation.service import EXPECTED_COUNTS, RECALL_VALUE_COLUMNS

    last = (clock - age) // DAY * DAY
    first = max((first_end - age) // DAY * DAY - (CHECK_DAYS + MIN_CHECK_DAYS) * DAY, last - 3650 * DAY)
    if last <= first:
        return {}
    ends = np.arange(first + DAY, last + 1, DAY, dtype=np.int64)
    spec = WindowSpec(window=DAY, step=DAY)
    expected = windowed_counts(conn, EXPECTED_COUNTS, model_id=ctx.model_id, spec=spec, segment_sets=[()],
                               key_columns=["class_name"], value_columns=RECALL_VALUE_COLUMNS, ends=ends,
                               bucket=ctx.bucket, float_columns=["exp_tp", "exp_fn", "var_tp", "var_fn"])
    realized = windowed_counts(conn, CONFUSION, model_id=ctx.model_id, spec=spec, segment_sets=[()],
                               key_columns=["true_class", "pred_class"], ends=ends, bucket=ctx.bucket)
    if expected.empty or realized.empty:
        return {}
    labelled = realized.groupby("end")["n"].sum()
    out: dict[str, ClassCheck] = {}
    for name in ctx.classes:
        mine = expected[expected["class_name"] == name].set_index("end").reindex(ends)
        cells = realized[realized["true_class"] == name]
        positives = cells.groupby("end")["n"].sum().reindex(ends, fill_value=0).to_numpy(np.float64)
        tp = cells[cells["pred_class"] == name].groupby("end")["n"].sum().reindex(ends, fill_value=0).to_numpy(np.float64)
        filled = mine.fillna(0.0)
        exp_tp, exp_fn = filled["exp_tp"].to_numpy(np.float64), filled["exp_fn"].to_numpy(np.float64)
        expected_positives = exp_tp + exp_fn
        estimate = safe_divide(exp_tp, expected_positives)
        variance_all = safe_divide(exp_fn**2 * filled["var_tp"].to_numpy(np.float64)
                                   + exp_tp**2 * filled["var_fn"].to_numpy(np.float64), expected_positives**4)
        share = safe_divide(labelled.reindex(ends, fill_value=0).to_numpy(np.float64),
                            filled["n_scored"].to_numpy(np.float64))
        # the realized recall of the labelled share of the day varies around the estimate
        # as the whole day's would, with 1 / share the variance
        sampling = safe_divide(variance_all, np.minimum(share, 1.0))
        observed = safe_divide(tp, positives)
        keep = (positives >= MIN_DAY_POSITIVES) & np.isfinite(estimate) & np.isfinite(sampling) & np.isfinite(observed)
        day_end = ends[keep]
        residual = (observed - estimate)[keep]
        variance = sampling[keep]
        tau2, _ = _tau2(day_end, residual, variance, day_end - age)  # each day's interval as shown in its time
        covered = np.abs(residual) <= Z95 * np.sqrt(variance + tau2)
        out[name] = ClassCheck(day_end, residual, variance, covered)
    return out


def window_checks(checks: dict[str, ClassCheck], classes: pd.Series, ends: np.ndarray, age: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tau^2, measured coverage, check days) per row (class, window end); 0 / NaN / 0 without checks."""
    tau2 = np.zeros(len(ends))
    coverage = np.full(len(ends), np.nan)
    days = np.zeros(len(ends), dtype=np.int64)
    names = classes.to_numpy()
    for name, check in checks.items():
        rows = np.flatnonzero(names == name)
        if len(rows) == 0 or len(check.day_end) == 0:
            continue
        until = ends[rows] - age
        tau2[rows], days[rows] = _tau2(check.day_end, check.residual, check.variance, until)
        covered_sum = np.concatenate([[0.0], np.cumsum(check.covered.astype(np.float64))])
        stop = np.searchsorted(check.day_end, until, side="right")
        begin = np.maximum(stop - CHECK_DAYS, 0)
        count = stop - begin
        coverage[rows] = np.where(count >= MIN_CHECK_DAYS, safe_divide(covered_sum[stop] - covered_sum[begin], count.astype(np.float64)), np.nan)
    return tau2, coverage, days


def coverage_warning(coverage: float, days: int) -> str | None:
    if not np.isfinite(coverage) or coverage >= MIN_COVERAGE:
        return None
    return (f"the estimate's 95% interval covered the realized recall on only {coverage:.0%} of the last {days} "
            "mature days: the calibration is failing (P(class | score) is changing faster than it is refitted)")


def calibration_trace(conn: Connection, ctx: ModelContext, ends: np.ndarray, window: int) -> pd.DataFrame:
    """Per window end: the calibration most of its scored predictions were estimated with
    (TRACE_COLUMNS; kind "reference" for id 0, predictions ingested before calibrations
    were recorded or without a reference calibration)."""
    ends = np.asarray(ends, dtype=np.int64)
    empty = pd.DataFrame({"end": ends, "calibration": None, "calibration_id": pd.array([None] * len(ends), dtype="Int64"),
                          "calibration_fit_start": pd.array([None] * len(ends), dtype="Int64"),
                          "calibration_fit_end": pd.array([None] * len(ends), dtype="Int64"),
                          "calibration_labels": pd.array([None] * len(ends), dtype="Int64")})
    if len(ends) == 0:
        return empty
    usage = conn.execute(select(USAGE.c.bucket_start, USAGE.c.calibration_id, USAGE.c.n_scored).where(
        USAGE.c.model_id == ctx.model_id, USAGE.c.bucket_start >= int(ends.min()) - window,
        USAGE.c.bucket_start < int(ends.max()))).all()
    if not usage:
        return empty
    frame = pd.DataFrame(usage, columns=["bucket_start", "calibration_id", "n"])
    table = frame.pivot_table(index="bucket_start", columns="calibration_id", values="n", aggfunc="sum", fill_value=0).sort_index()
    cumulative = np.vstack([np.zeros((1, table.shape[1])), np.cumsum(table.to_numpy(np.float64), axis=0)])
    buckets = table.index.to_numpy(np.int64)
    sums = cumulative[np.searchsorted(buckets, ends, side="left")] - cumulative[np.searchsorted(buckets, ends - window, side="left")]
    ids = table.columns.to_numpy(np.int64)[sums.argmax(axis=1)]
    has = sums.sum(axis=1) > 0
    found = conn.execute(select(CALIBRATIONS.c.id, CALIBRATIONS.c.kind, CALIBRATIONS.c.fit_start, CALIBRATIONS.c.fit_end,
                                CALIBRATIONS.c.n_labels).where(CALIBRATIONS.c.model_id == ctx.model_id,
                                                               CALIBRATIONS.c.id.in_([int(i) for i in set(ids)]))).all()
    info: dict[int, tuple] = {int(r[0]): tuple(r) for r in found}
    info.setdefault(NO_CALIBRATION, (NO_CALIBRATION, "reference", None, None, None))
    pick = [info.get(int(i)) if ok else None for i, ok in zip(ids, has, strict=True)]
    return pd.DataFrame({
        "end": ends,
        "calibration": pd.Series([p[1] if p else None for p in pick], dtype=object),
        "calibration_id": pd.array([int(p[0]) if p else None for p in pick], dtype="Int64"),
        "calibration_fit_start": pd.array([p[2] if p else None for p in pick], dtype="Int64"),
        "calibration_fit_end": pd.array([p[3] if p else None for p in pick], dtype="Int64"),
        "calibration_labels": pd.array([p[4] if p else None for p in pick], dtype="Int64"),
    })

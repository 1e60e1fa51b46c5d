"""The metrics read path as it was before the numpy rewrite (commit 976bca1), kept verbatim as
the oracle of tests/core/test_metrics_frame_speedups.py: the rewritten `metrics_frame`,
`reference_metrics`, `confusion_matrix`, `expected_coverage` and `estimated_frame` must give
exactly these frames (columns, dtypes, row order, values). It reads the count tables through
the live `monitor.store.windows.windowed_counts`, so both sides see the same window sums.
Only the imports differ from the original modules (monitor/metrics/service.py,
monitor/metrics/maturity.py, monitor/estimation/service.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation.aggregate import CALIBRATORS, EXPECTED_COUNTS, VALUE_COLUMNS
from monitor.metrics.rates import one_vs_rest, safe_divide, wilson_interval
from monitor.store.models import (
    ConfusionCount,
    LabelArrivalCount,
    PredictionCount,
    ReferenceCount,
    SliceValue,
)
from monitor.store.windows import (
    OVERALL,
    SEPARATOR,
    WindowSpec,
    parse_segment_option,
    segment_label,
    windowed_counts,
)
from monitor.timeutil import format_duration, iso_series, now_epoch, parse_time

# --- monitor/metrics/maturity.py ---------------------------------------------------------------

MATURE_AGE = 60 * 86400  # buckets older than this are taken as complete
CURVE_SPAN = 90 * 86400  # how much mature history the arrival curve is drawn from


def coverage_curve(conn: Connection, ctx: ModelContext, as_of: int) -> tuple[np.ndarray, np.ndarray]:
    """(delay bins in hours, share of predictions labelled within that delay)."""
    arrivals = LabelArrivalCount.__table__
    predictions = PredictionCount.__table__
    # Use the oldest buckets available, up to MATURE_AGE before as_of; with little history,
    # take everything older than the median label delay seen so far (a best effort).
    horizon = as_of - MATURE_AGE
    first = conn.execute(select(func.min(predictions.c.bucket_start)).where(predictions.c.model_id == ctx.model_id)).scalar()
    if first is None:
        return np.array([0]), np.array([0.0])
    cutoff = horizon if first < horizon else first + (as_of - first) // 2
    # the curve of the last CURVE_SPAN of mature history: recent enough to reflect how labels
    # arrive now, and a bounded read however long the history grows
    latest = conn.execute(select(func.max(predictions.c.bucket_start)).where(
        predictions.c.model_id == ctx.model_id, predictions.c.bucket_start < cutoff)).scalar()
    since = (latest if latest is not None else cutoff) - CURVE_SPAN
    total = conn.execute(select(func.sum(predictions.c.n)).where(
        predictions.c.model_id == ctx.model_id, predictions.c.bucket_start < cutoff,
        predictions.c.bucket_start >= since)).scalar() or 0
    rows = conn.execute(
        select(arrivals.c.delay_bin, func.sum(arrivals.c.n))
        .where(arrivals.c.model_id == ctx.model_id, arrivals.c.bucket_start < cutoff,
               arrivals.c.bucket_start >= since)
        .group_by(arrivals.c.delay_bin).order_by(arrivals.c.delay_bin)
    ).all()
    if not rows or total == 0:
        return np.array([0]), np.array([0.0])
    bins = np.array([r[0] for r in rows], dtype=np.float64)
    shares = np.cumsum([float(r[1]) for r in rows]) / float(total)
    return bins, np.minimum(shares, 1.0)


def expected_coverage(conn: Connection, ctx: ModelContext, ends: np.ndarray, window: int, as_of: int) -> np.ndarray:
    """Usual label coverage of windows ending at `ends` when seen at `as_of` (0..1)."""
    ends = np.asarray(ends, dtype=np.float64)
    if len(ends) == 0:
        return np.array([])
    bins, shares = coverage_curve(conn, ctx, as_of)
    if shares[-1] == 0:
        return np.zeros(len(ends))

    def curve(age_hours: np.ndarray) -> np.ndarray:
        # share labelled within `age` hours: step function over the power-of-two bins
        index = np.searchsorted(bins, age_hours, side="right") - 1
        return np.where(index >= 0, shares[np.clip(index, 0, len(shares) - 1)], 0.0)

    samples = np.linspace(0.0, 1.0, 9)
    youngest = (as_of - ends) / 3600.0
    ages = youngest[:, None] + samples[None, :] * (window / 3600.0)
    return np.where(youngest[:] < 0, 0.0, curve(np.maximum(ages, 0)).mean(axis=1))


def coverage_by_age(conn: Connection, ctx: ModelContext, as_of: int | None = None) -> pd.DataFrame:
    """The label arrival curve for the Data page: share labelled within `delay_hours`."""
    bins, shares = coverage_curve(conn, ctx, as_of if as_of is not None else now_epoch())
    return pd.DataFrame({"delay_hours": bins, "coverage": shares})

# --- monitor/estimation/service.py -------------------------------------------------------------

ESTIMATE_COLUMNS = [
    "end", "segment", "segment_value", "class", "recall_estimated", "recall_estimated_low",
    "recall_estimated_high", "precision_estimated", "precision_estimated_low",
    "precision_estimated_high", "f1_estimated", "support_estimated", "n_scored",
    "estimation_warning",
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


def estimate_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """Rates and intervals from summed expected counts (pure; columns of VALUE_COLUMNS)."""
    tp = counts["exp_tp"].to_numpy(dtype=np.float64)
    fn = counts["exp_fn"].to_numpy(dtype=np.float64)
    var_tp = counts["var_tp"].to_numpy(dtype=np.float64)
    var_fn = counts["var_fn"].to_numpy(dtype=np.float64)
    n_predicted = counts["n_predicted"].to_numpy(dtype=np.float64)
    positives = tp + fn
    recall = safe_divide(tp, positives)
    # delta method for tp / (tp + fn) with independent tp and fn
    recall_variance = safe_divide(fn * fn * var_tp + tp * tp * var_fn, positives**4)
    recall_low, recall_high = ratio_interval(recall, recall_variance)
    precision = safe_divide(tp, n_predicted)
    precision_low, precision_high = ratio_interval(precision, safe_divide(var_tp, n_predicted**2))
    return pd.DataFrame(
        {
            "recall_estimated": recall,
            "recall_estimated_low": recall_low,
            "recall_estimated_high": recall_high,
            "precision_estimated": precision,
            "precision_estimated_low": precision_low,
            "precision_estimated_high": precision_high,
            "f1_estimated": safe_divide(2 * tp, tp + n_predicted + fn),
            "support_estimated": positives,
        },
        index=counts.index,
    )


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
    class whose reference scores were badly calibrated.
    """
    counts = windowed_counts(
        conn,
        EXPECTED_COUNTS,
        model_id=ctx.model_id,
        spec=spec,
        segment_sets=segment_sets,
        key_columns=["class_name"],
        value_columns=VALUE_COLUMNS,
        ends=ends,
        bucket=ctx.bucket,
    )
    if counts.empty:
        return pd.DataFrame(columns=ESTIMATE_COLUMNS)
    counts = counts.reset_index(drop=True)
    out = pd.concat([counts[["end", "segment", "segment_value"]], estimate_rates(counts)], axis=1)
    out.insert(3, "class", counts["class_name"].astype(str))
    out["n_scored"] = counts["n_scored"].astype(np.int64)
    empty = out["n_scored"] == 0  # no scored prediction in the window: nothing to estimate
    rate_columns = [c for c in ESTIMATE_COLUMNS if c.endswith(("_estimated", "_low", "_high"))]
    out.loc[empty, rate_columns] = np.nan
    warnings = calibration_report(conn, ctx).set_index("class")["warning"]
    out["estimation_warning"] = out["class"].map(warnings).astype(object)
    out["estimation_warning"] = out["estimation_warning"].where(out["estimation_warning"].notna(), None)
    out["end"] = out["end"].astype(np.int64)
    return out[ESTIMATE_COLUMNS]


def _warning(record: pd.Series) -> str | None:
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

# --- monitor/metrics/service.py ----------------------------------------------------------------

METRIC_COLUMNS = [
    "model", "window", "end", "class", "segment", "segment_value", "n_predictions", "n_labeled",
    "label_coverage", "tp", "fp", "fn", "tn", "support", "precision", "recall", "f1", "recall_low",
    "recall_high", "precision_low", "precision_high", "recall_estimated",
]
EXTRA_COLUMNS = ["provisional", "expected_coverage", "recall_estimated_low", "recall_estimated_high", "estimation_warning"]
CONFUSION = ConfusionCount.__table__
PREDICTION_COUNTS = PredictionCount.__table__


def _per_class(confusion: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """One-vs-rest tp/fp/fn per (end, segment, segment_value, class) from summed cells."""
    keys = ["end", "segment", "segment_value"]
    totals = confusion.groupby(keys, as_index=False)["n"].sum().rename(columns={"n": "n_labeled"})
    diagonal = confusion.loc[confusion["true_class"] == confusion["pred_class"]]
    tp = diagonal.groupby([*keys, "true_class"])["n"].sum()
    actual = confusion.groupby([*keys, "true_class"])["n"].sum()
    predicted = confusion.groupby([*keys, "pred_class"])["n"].sum()
    series = totals[keys].drop_duplicates()
    grid = series.merge(pd.DataFrame({"class": list(classes)}), how="cross")
    index = pd.MultiIndex.from_frame(grid[[*keys, "class"]])
    grid["tp"] = tp.reindex(index, fill_value=0).to_numpy()
    grid["support"] = actual.reindex(index, fill_value=0).to_numpy()
    grid["predicted_positive"] = predicted.reindex(index, fill_value=0).to_numpy()
    grid = grid.merge(totals, on=keys, how="left")
    grid["fn"] = grid["support"] - grid["tp"]
    grid["fp"] = grid["predicted_positive"] - grid["tp"]
    grid["tn"] = grid["n_labeled"] - grid["tp"] - grid["fn"] - grid["fp"]
    return grid.drop(columns=["predicted_positive"])


def _classes_present(ctx: ModelContext, confusion: pd.DataFrame) -> list[str]:
    if ctx.classes:
        return list(ctx.classes)
    seen = set(confusion.get("true_class", pd.Series(dtype=object))) | set(confusion.get("pred_class", pd.Series(dtype=object)))
    return sorted(str(c) for c in seen)


def metrics_frame(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, classes: Sequence[str] | None = None,
                  segment: str | None = None, as_of: int | None = None) -> pd.DataFrame:
    """CONTRACT `metrics` records (+ provisional, expected_coverage), ordered by end, class, series.

    `segment`: the --segment option (None: overall and every configured attribute). Every
    window end from the first data to the last gets a record per class and series, with nulls
    where a denominator is 0. `as_of` is the clock for maturity (default: now).
    """
    segment_sets = parse_segment_option(segment, ctx.segment_sets)
    unknown = set(classes or []) - set(ctx.classes) if ctx.classes else set()
    if unknown:
        raise ValueError(f"unknown class {sorted(unknown)[0]!r} (known: {', '.join(ctx.classes)})")
    predictions = windowed_counts(conn, PREDICTION_COUNTS, model_id=ctx.model_id, spec=spec,
                                  segment_sets=segment_sets, value_columns=["n"], bucket=ctx.bucket)
    if predictions.empty:
        return pd.DataFrame(columns=METRIC_COLUMNS + EXTRA_COLUMNS)
    ends = np.sort(predictions["end"].unique())
    keys = ["end", "segment", "segment_value"]
    n_predictions = predictions.groupby(keys, as_index=False)["n"].sum().rename(columns={"n": "n_predictions"})
    confusion = windowed_counts(conn, CONFUSION, model_id=ctx.model_id, spec=spec, segment_sets=segment_sets,
                                key_columns=["true_class", "pred_class"], value_columns=["n"], ends=ends)
    all_classes = _classes_present(ctx, confusion)
    if confusion.empty:
        confusion = pd.DataFrame({"end": pd.Series(dtype="int64"), "segment": [], "segment_value": [],
                                  "true_class": [], "pred_class": [], "n": pd.Series(dtype="int64")})
    per_class = _per_class(confusion, all_classes)
    frame = n_predictions.merge(pd.DataFrame({"class": all_classes}), how="cross")
    frame = frame.merge(per_class, on=[*keys, "class"], how="left")
    for column in ("tp", "fp", "fn", "tn", "support", "n_labeled"):
        frame[column] = frame[column].fillna(0).astype("int64")
    frame = frame.loc[frame["n_predictions"] > 0].reset_index(drop=True)
    rates = one_vs_rest(frame["tp"].to_numpy(), frame["fp"].to_numpy(), frame["fn"].to_numpy())
    for name, values in rates.items():
        frame[name] = values
    frame["label_coverage"] = safe_divide(frame["n_labeled"].to_numpy(), frame["n_predictions"].to_numpy())
    frame = _add_estimates(conn, ctx, spec, segment_sets, ends, frame)
    clock = as_of if as_of is not None else now_epoch()
    coverage = expected_coverage(conn, ctx, frame["end"].to_numpy(), spec.window, clock)
    frame["expected_coverage"] = coverage
    frame["provisional"] = (frame["label_coverage"].fillna(0) + 1e-9 < 0.9 * frame["expected_coverage"])
    if classes:
        frame = frame.loc[frame["class"].isin(classes)]
    frame = frame.sort_values(["end", "class", "segment", "segment_value"], kind="stable").reset_index(drop=True)
    frame["model"] = ctx.name
    frame["window"] = format_duration(spec.window)
    frame["end"] = iso_series(frame["end"])
    return frame[METRIC_COLUMNS + EXTRA_COLUMNS]


def _add_estimates(conn: Connection, ctx: ModelContext, spec: WindowSpec, segment_sets: list[tuple[str, ...]],
                   ends: np.ndarray, frame: pd.DataFrame) -> pd.DataFrame:
    estimates = estimated_frame(conn, ctx, spec, segment_sets=segment_sets, ends=ends)
    carried = ["recall_estimated", "recall_estimated_low", "recall_estimated_high", "estimation_warning"]
    if estimates is None or estimates.empty:
        for column in carried:
            frame[column] = None if column == "estimation_warning" else np.nan
        return frame
    for column in carried:
        if column not in estimates.columns:
            estimates[column] = None if column == "estimation_warning" else np.nan
    keep = ["end", "segment", "segment_value", "class", *carried]
    estimates = estimates[keep].assign(end=estimates["end"].astype("int64"))
    return frame.merge(estimates, on=["end", "segment", "segment_value", "class"], how="left")


def reference_metrics(conn: Connection, ctx: ModelContext, segment_sets: Sequence[tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Reference one-vs-rest metrics per (segment, segment_value, class): tp, fp, fn, tn,
    support, precision, recall, f1 and intervals. From the reference file's counts, or with
    `reference_period` from the production counts of that period."""
    sets = [(), *ctx.segment_sets] if segment_sets is None else list(segment_sets)
    if ctx.config.reference_period:
        start, end = (parse_time(v) for v in ctx.config.reference_period)
        spec = WindowSpec(window=end - start, step=end - start)
        cells = windowed_counts(conn, CONFUSION, model_id=ctx.model_id, spec=spec, segment_sets=sets,
                                key_columns=["true_class", "pred_class"], ends=np.array([end]))
    else:
        cells = _reference_cells(conn, ctx, sets)
    if cells.empty:
        return pd.DataFrame(columns=["segment", "segment_value", "class", "tp", "fp", "fn", "tn", "support",
                                     "precision", "recall", "f1", "recall_low", "recall_high",
                                     "precision_low", "precision_high"])
    cells = cells.assign(end=0)
    per_class = _per_class(cells, _classes_present(ctx, cells)).drop(columns=["end", "n_labeled"])
    rates = one_vs_rest(per_class["tp"].to_numpy(), per_class["fp"].to_numpy(), per_class["fn"].to_numpy())
    for name, values in rates.items():
        per_class[name] = values
    return per_class.reset_index(drop=True)


def _reference_cells(conn: Connection, ctx: ModelContext, sets: Sequence[tuple[str, ...]]) -> pd.DataFrame:
    table = ReferenceCount.__table__
    frames = []
    for attributes in sets:
        columns, source = [], table
        for index, attribute in enumerate(attributes):
            alias = SliceValue.__table__.alias(f"sv{index}")
            source = source.join(alias, (alias.c.slice_id == table.c.slice_id) & (alias.c.attribute == attribute))
            columns.append(alias.c.value)
        query = (select(*columns, table.c.true_class, table.c.pred_class, func.sum(table.c.n))
                 .select_from(source).where(table.c.model_id == ctx.model_id)
                 .group_by(*columns, table.c.true_class, table.c.pred_class))
        rows = pd.DataFrame(conn.execute(query).fetchall(),
                            columns=[*[f"v{i}" for i in range(len(attributes))], "true_class", "pred_class", "n"])
        if rows.empty:
            continue
        value: pd.Series | str = OVERALL
        if attributes:
            value = rows["v0"].astype(str)
            for i in range(1, len(attributes)):
                value = value + SEPARATOR + rows[f"v{i}"].astype(str)
        frames.append(pd.DataFrame({"segment": segment_label(attributes), "segment_value": value,
                                    "true_class": rows["true_class"], "pred_class": rows["pred_class"],
                                    "n": rows["n"].astype("int64")}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def confusion_matrix(conn: Connection, ctx: ModelContext, start: int, end: int, *, segment: str | None = None,
                     segment_value: str | None = None) -> pd.DataFrame:
    """Labelled predictions per (true_class, pred_class) for predictions in [start, end),
    overall or for one segment value (`segment` an attribute name or `a&b`)."""
    spec = WindowSpec(window=end - start, step=end - start)
    sets = [()] if not segment or segment == OVERALL else [tuple(segment.split(SEPARATOR))]
    cells = windowed_counts(conn, CONFUSION, model_id=ctx.model_id, spec=spec, segment_sets=sets,
                            key_columns=["true_class", "pred_class"], ends=np.array([end]))
    if cells.empty:
        return pd.DataFrame(columns=["true_class", "pred_class", "n"])
    if segment_value is not None and sets != [()]:
        cells = cells.loc[cells["segment_value"] == segment_value]
    return cells.groupby(["true_class", "pred_class"], as_index=False)["n"].sum()

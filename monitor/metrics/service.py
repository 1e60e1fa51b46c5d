"""Rolling one-vs-rest metrics per class and series (docs/contract.md §3 `metrics` records).

Reads only count tables: confusion counts (labelled predictions) and prediction counts (all
predictions), summed into windows by `monitor.store.windows`. Columns after the contract's:
`provisional` (labels of this window are not yet as complete as they usually are at its
age, or the window is `partial`, so it can neither fire nor resolve an alert),
`expected_coverage` (that usual coverage), the interval of the label-free estimate and its
warning (e.g. badly calibrated scores), and `partial` (the window ends after the clock: its
predictions are still arriving, so it is never the newest window a judgment rests on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.metrics.maturity import expected_coverage
from monitor.rates import one_vs_rest, rate_columns, safe_divide
from monitor.store.models import ConfusionCount, PredictionCount, ReferenceCount
from monitor.store.slices import series_sums
from monitor.store.windows import (
    OVERALL,
    SEPARATOR,
    WindowSpec,
    parse_segment_option,
    windowed_counts,
)
from monitor.timeutil import format_duration, iso_series, now_epoch, parse_time, to_iso

METRIC_COLUMNS = [
    "model", "window", "end", "class", "segment", "segment_value", "n_predictions", "n_labeled",
    "label_coverage", "tp", "fp", "fn", "tn", "support", *rate_columns(), "recall_estimated",
]  # rate columns: every registered rate metric (monitor.registry.METRICS)
EXTRA_COLUMNS = ["provisional", "expected_coverage", "recall_estimated_low", "recall_estimated_high", "estimation_warning",
                 "partial", "recall_best", "recall_best_low", "recall_best_high", "calibration", "calibration_id",
                 "calibration_fit_start", "calibration_fit_end", "calibration_labels"]
TRACE = ("calibration", "calibration_id", "calibration_fit_start", "calibration_fit_end", "calibration_labels")
CONFUSION = cast(Table, ConfusionCount.__table__)
PREDICTION_COUNTS = cast(Table, PredictionCount.__table__)
REFERENCE_COUNTS = cast(Table, ReferenceCount.__table__)
REFERENCE_COLUMNS = ["segment", "segment_value", "class", "tp", "fp", "fn", "tn", "support", *rate_columns()]

# Everything below works on integer codes: a series is a row of `_Series` (sorted unique
# (end, segment, segment_value)), a class its position in the class list, and counts are
# summed with np.bincount into (series x class) arrays. The frames come out in the order the
# pandas groupby / merge / sort_values chain they replace gave (tests/core/test_metrics_cases.py checks that order).


class _Series:
    """Sorted unique (end, segment, segment_value) keys: `end`, `segment_code` and
    `value_code` per series row (codes into the sorted `segments` / `values`); `rows` maps
    every input row to its series row (-1 for a missing key, which a groupby would drop)."""

    def __init__(self, end: object, segment: pd.Series, value: pd.Series) -> None:
        self.ends, end_codes = np.unique(np.asarray(end, dtype=np.int64), return_inverse=True)
        segment_codes, self.segments = pd.factorize(segment, sort=True)
        value_codes, self.values = pd.factorize(value, sort=True)
        self._n_segments, self._n_values = max(len(self.segments), 1), max(len(self.values), 1)
        valid = (segment_codes >= 0) & (value_codes >= 0)
        self.keys, inverse = np.unique(self._key(end_codes, segment_codes, value_codes)[valid], return_inverse=True)
        self.rows = np.full(len(valid), -1, dtype=np.int64)
        self.rows[valid] = inverse
        self.n = len(self.keys)
        self.end_code = self.keys // (self._n_segments * self._n_values)
        self.segment_code = (self.keys // self._n_values) % self._n_segments
        self.value_code = self.keys % self._n_values

    def _key(self, end_codes: np.ndarray, segment_codes: np.ndarray, value_codes: np.ndarray) -> np.ndarray:
        """One int64 per (end, segment, value) whose order is theirs (lexicographic)."""
        return (end_codes.astype(np.int64) * self._n_segments + segment_codes) * self._n_values + value_codes

    def lookup(self, end: object, segment: pd.Series, value: pd.Series) -> np.ndarray:
        """The series row of each (end, segment, segment_value), -1 where there is none."""
        end = np.asarray(end, dtype=np.int64)
        if len(end) == 0 or self.n == 0:
            return np.full(len(end), -1, dtype=np.int64)
        end_codes = np.minimum(np.searchsorted(self.ends, end), len(self.ends) - 1)
        segment_codes = _positions(self.segments, segment)
        value_codes = _positions(self.values, value)
        found = (self.ends[end_codes] == end) & (segment_codes >= 0) & (value_codes >= 0)
        key = self._key(end_codes, segment_codes, value_codes)
        rows = np.minimum(np.searchsorted(self.keys, key), self.n - 1)
        return np.where(found & (self.keys[rows] == key), rows, -1)


def _positions(index: pd.Index, values: pd.Series) -> np.ndarray:
    """Position of each value in `index` (unique), -1 where absent: looked up once per
    distinct value (hashing a few distinct strings beats hashing every row)."""
    codes, distinct = pd.factorize(values)
    if len(distinct) == 0:
        return np.full(len(codes), -1, dtype=np.int64)
    found = np.append(index.get_indexer(distinct), -1)  # code -1 (missing) -> -1
    return found[codes]


def _sums(index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Sums of `weights` per index in [0, size) (float64; exact for integer counts)."""
    keep = index >= 0
    return np.bincount(index[keep], weights=weights[keep].astype(np.float64), minlength=size)[:size]


def _one_vs_rest_counts(confusion: pd.DataFrame, rows: np.ndarray, n_rows: int,
                        classes: Sequence[str]) -> dict[str, np.ndarray]:
    """tp, support, fn, fp (rows x classes) and n_labeled (rows) from summed cells, `rows`
    being each cell's output row (-1: not reported). Cells of other classes count in
    n_labeled only. Float64 arrays holding whole numbers."""
    k = len(classes)
    n = confusion["n"].to_numpy()
    if len(confusion) and k:
        index = pd.Index(list(classes))
        true_codes = _positions(index, confusion["true_class"])
        pred_codes = _positions(index, confusion["pred_class"])
        mapped = rows >= 0
        cell = np.where(mapped, rows * k, -1)
        diagonal = (true_codes == pred_codes) & (true_codes >= 0)
        tp = _sums(np.where(diagonal & mapped, cell + true_codes, -1), n, n_rows * k)
        support = _sums(np.where((true_codes >= 0) & mapped, cell + true_codes, -1), n, n_rows * k)
        predicted = _sums(np.where((pred_codes >= 0) & mapped, cell + pred_codes, -1), n, n_rows * k)
    else:
        tp = support = predicted = np.zeros(n_rows * k)
    n_labeled = _sums(rows, n, n_rows) if len(confusion) else np.zeros(n_rows)
    tp, support, predicted = (a.reshape(n_rows, k) for a in (tp, support, predicted))
    fn = support - tp
    fp = predicted - tp
    tn = n_labeled[:, None] - tp - fn - fp
    return {"tp": tp, "support": support, "fn": fn, "fp": fp, "tn": tn, "n_labeled": n_labeled}


def _classes_present(ctx: ModelContext, confusion: pd.DataFrame) -> list[str]:
    if ctx.classes:
        return list(ctx.classes)
    seen: set[object] = set()
    for column in ("true_class", "pred_class"):
        if column in confusion:
            seen.update(confusion[column].unique())
    return sorted(str(c) for c in seen)


def metrics_frame(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, classes: Sequence[str] | None = None,
                  segment: str | None = None, as_of: int | None = None, estimates: bool = True) -> pd.DataFrame:
    """docs/contract.md `metrics` records (+ provisional, expected_coverage), ordered by end, class, series.

    `segment`: the --segment option (None: overall and every configured attribute). Every
    window end from the first data to the last gets a record per class and series, with nulls
    where a denominator is 0. `as_of` is the clock for maturity (default: now).
    `estimates=False` skips the label-free estimate (its columns come out as without scores:
    NaN, no warning, recall_best = the realized recall) for callers that use only the
    realized counts (the alert rules on rates read this every tick).
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
    series = _Series(predictions["end"], predictions["segment"], predictions["segment_value"])
    n_predictions = _sums(series.rows, predictions["n"].to_numpy(), series.n)
    if pd.api.types.is_integer_dtype(predictions["n"].dtype):
        n_predictions = n_predictions.astype(np.int64)
    confusion = windowed_counts(conn, CONFUSION, model_id=ctx.model_id, spec=spec, segment_sets=segment_sets,
                                key_columns=["true_class", "pred_class"], value_columns=["n"], ends=ends)
    all_classes = _classes_present(ctx, confusion)
    k = len(all_classes)
    rows = series.lookup(confusion["end"], confusion["segment"], confusion["segment_value"]) if len(confusion) else \
        np.zeros(0, dtype=np.int64)
    counts = _one_vs_rest_counts(confusion, rows, series.n, all_classes)

    # the records: series with predictions x the chosen classes, by end, class name, series
    wanted = set(classes or [])
    chosen = [i for i, name in enumerate(all_classes) if not wanted or name in wanted]
    reported = np.flatnonzero(n_predictions > 0)
    row = np.repeat(reported, len(chosen))
    cls = np.tile(np.asarray(chosen, dtype=np.int64), len(reported))
    rank = np.empty(k, dtype=np.int64)
    rank[sorted(range(k), key=lambda i: all_classes[i])] = np.arange(k)
    order = np.lexsort((series.value_code[row], series.segment_code[row], rank[cls], series.end_code[row]))
    row, cls = row[order], cls[order]
    cell = row * k + cls

    tp, fp, fn, tn, support = (counts[name].reshape(-1)[cell].astype(np.int64) for name in ("tp", "fp", "fn", "tn", "support"))
    n_labeled = counts["n_labeled"][row].astype(np.int64)
    n_predicted = n_predictions[row]
    rates = one_vs_rest(tp, fp, fn, tn)
    label_coverage = safe_divide(n_labeled, n_predicted)
    estimated = _estimates(conn, ctx, spec, segment_sets, ends, series, all_classes, cell, (tp, fp, fn, tn, rates)) \
        if estimates else _no_estimates(len(cell), rates)
    used, end_index = np.unique(series.end_code[row], return_inverse=True)
    clock = as_of if as_of is not None else now_epoch()
    coverage = expected_coverage(conn, ctx, series.ends[used], spec.window, clock)[end_index] if len(row) else \
        np.zeros(0)
    # a window ending after the clock is partial (expected coverage 0 says nothing about it):
    # always provisional, whatever its labels say
    partial = series.ends[used][end_index] > clock if len(row) else np.zeros(0, dtype=bool)
    provisional = (np.where(np.isnan(label_coverage), 0.0, label_coverage) + 1e-9 < 0.9 * coverage) | partial
    # dtype as the cross merge with this frame gave (str; float64 for no class at all)
    class_values = pd.DataFrame({"class": list(all_classes)})["class"].array
    columns = {
        "model": ctx.name,
        "window": format_duration(spec.window),
        "end": _iso(series.ends[used]).take(end_index),
        "class": class_values.take(cls),
        "segment": series.segments.array.take(series.segment_code[row]),
        "segment_value": series.values.array.take(series.value_code[row]),
        "n_predictions": n_predicted,
        "n_labeled": n_labeled,
        "label_coverage": label_coverage,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn, "support": support,
        **rates,
        **estimated,
        "provisional": provisional,
        "expected_coverage": coverage,
        "partial": partial,
    }
    return pd.DataFrame({name: columns[name] for name in METRIC_COLUMNS + EXTRA_COLUMNS})


def _iso(ends: np.ndarray) -> ExtensionArray:
    """`iso_series` of a few distinct ends (formatted one by one: the vectorised path has a
    fixed cost far above that of a few dozen strftime calls)."""
    if len(ends) == 0:
        return iso_series(pd.Series(ends, dtype=np.int64)).array
    return pd.Series([to_iso(int(end)) for end in ends]).array


def _estimates(conn: Connection, ctx: ModelContext, spec: WindowSpec, segment_sets: list[tuple[str, ...]],
               ends: np.ndarray, series: _Series, classes: Sequence[str], cell: np.ndarray,
               realized: tuple[Any, ...]) -> dict[str, Any]:
    """recall_estimated, its interval and estimation_warning per record (`cell`: series row
    x class): NaN where the estimate has no such window, series or class, and all None
    warnings when there are no estimates at all. recall_best (and its interval): the realized
    counts of the labelled predictions plus the estimate of the others
    (`monitor.estimation.blend`); the realized recall where there is no estimate."""
    from monitor.estimation.blend import blend_arrays
    from monitor.estimation.service import window_estimates

    tp, fp, fn, tn, rates = realized
    found = window_estimates(conn, ctx, spec, segment_sets=segment_sets, ends=ends, recall_only=True)
    if found is None:
        return _no_estimates(len(cell), rates)
    carried = ["recall_estimated", "recall_estimated_low", "recall_estimated_high"]
    best = _realized_best(rates)
    counts = found.counts
    k = len(classes)
    rows = series.lookup(counts["end"].astype(np.int64), counts["segment"], counts["segment_value"])
    codes = _positions(pd.Index(list(classes)), found.classes) if k else np.full(len(counts), -1)
    matched = (rows >= 0) & (codes >= 0)
    # (end, series, class) is unique in window sums, so each record gets at most one estimate
    target = rows[matched] * k + codes[matched]
    position = np.full(series.n * k, -1, dtype=np.int64)
    position[target] = np.flatnonzero(matched)
    source = position[cell]
    hit = source >= 0
    out: dict[str, Any] = {}
    for name in carried:
        values = np.full(len(cell), np.nan)
        values[hit] = found.rates[name][source[hit]]
        out[name] = values
    warnings = np.full(len(cell), np.nan, dtype=object)
    warnings[hit] = found.warnings[source[hit]]
    out["estimation_warning"] = pd.Series(warnings, dtype=object)  # not inferred as str
    scored = source[hit]
    if len(scored):
        expected = counts.iloc[scored]
        mine = expected["n_predicted"].to_numpy(np.float64)
        tau = found.calibration_error[scored] if found.calibration_error is not None else np.zeros(len(scored))
        blended = blend_arrays(tp[hit], fn[hit], (tp + fp)[hit], (fn + tn)[hit], mine,
                               expected["n_scored"].to_numpy(np.float64) - mine, expected, tau)
        for name, values in zip(best, blended, strict=True):
            best[name][hit] = np.where(np.isfinite(values), values, best[name][hit])
    return {**out, **best, **_trace(conn, ctx, spec, series, cell // max(k, 1), hit)}


def _trace(conn: Connection, ctx: ModelContext, spec: WindowSpec, series: _Series, row: np.ndarray,
           hit: np.ndarray) -> dict[str, Any]:
    """The calibration columns per record (`checks.calibration_trace`: the calibration most
    of the window's scored predictions were estimated with, its kind, id, fit span as ISO
    times and labels); null on records without an estimate."""
    from monitor.estimation.checks import calibration_trace

    n = len(row)
    out = _no_trace(n)
    if not hit.any():
        return out
    trace = calibration_trace(conn, ctx, series.ends, spec.window)
    pick = series.end_code[row[hit]]
    kinds = np.full(n, None, dtype=object)
    kinds[hit] = trace["calibration"].to_numpy(dtype=object)[pick]
    out["calibration"] = pd.Series(kinds, dtype=object)
    for name in ("calibration_id", "calibration_labels"):
        values = np.full(n, None, dtype=object)
        values[hit] = _objects(trace[name])[pick]
        out[name] = pd.array(values, dtype="Int64")
    for name in ("calibration_fit_start", "calibration_fit_end"):
        stamps = _objects(trace[name])[pick]
        values = np.full(n, None, dtype=object)
        values[hit] = [to_iso(int(v)) if v is not None else None for v in stamps]
        out[name] = pd.Series(values, dtype=object)
    return out


def _objects(column: pd.Series) -> np.ndarray:
    """A nullable column as an object array with None for missing values."""
    return np.array([None if pd.isna(v) else v for v in column], dtype=object)


def _no_trace(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {name: pd.Series(np.full(n, None, dtype=object), dtype=object) for name in TRACE}
    for name in ("calibration_id", "calibration_labels"):
        out[name] = pd.array([None] * n, dtype="Int64")
    return out


def _realized_best(rates: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"recall_best": np.array(rates["recall"], dtype=np.float64, copy=True),
            "recall_best_low": np.array(rates["recall_low"], dtype=np.float64, copy=True),
            "recall_best_high": np.array(rates["recall_high"], dtype=np.float64, copy=True)}


def _no_estimates(n: int, rates: dict[str, Any]) -> dict[str, Any]:
    """The estimate columns of `n` records without any estimate: NaN, no warning, and the
    realized recall as the best value."""
    out: dict[str, Any] = {name: np.full(n, np.nan)
                           for name in ("recall_estimated", "recall_estimated_low", "recall_estimated_high")}
    out["estimation_warning"] = pd.Series(np.full(n, None, dtype=object), dtype=object)
    return {**out, **_realized_best(rates), **_no_trace(n)}


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
        return pd.DataFrame(columns=REFERENCE_COLUMNS)
    all_classes = _classes_present(ctx, cells)
    k = len(all_classes)
    series = _Series(np.zeros(len(cells), dtype=np.int64), cells["segment"], cells["segment_value"])
    counts = _one_vs_rest_counts(cells, series.rows, series.n, all_classes)
    integer = pd.api.types.is_integer_dtype(cells["n"].dtype)
    row = np.repeat(np.arange(series.n), k)
    cls = np.tile(np.arange(k), series.n)
    columns: dict[str, object] = {
        "segment": series.segments.array.take(series.segment_code[row]),
        "segment_value": series.values.array.take(series.value_code[row]),
        "class": pd.DataFrame({"class": list(all_classes)})["class"].array.take(cls),
    }
    for name in ("tp", "fp", "fn", "tn", "support"):  # the metrics record's order
        values = counts[name].reshape(-1)
        columns[name] = values.astype(np.int64) if integer else values
    columns.update(one_vs_rest(columns["tp"], columns["fp"], columns["fn"], columns["tn"]))  # type: ignore[arg-type]
    return pd.DataFrame(columns)


def _reference_cells(conn: Connection, ctx: ModelContext, sets: Sequence[tuple[str, ...]]) -> pd.DataFrame:
    """Reference counts per (segment, segment_value, true_class, pred_class) for every
    attribute set (`()`: overall); an empty frame when there are none."""
    frames = [series_sums(conn, REFERENCE_COUNTS, model_id=ctx.model_id, attributes=attributes,
                          key_columns=["true_class", "pred_class"]) for attributes in sets]
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame()
    cells = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if cells["n"].dtype == object:  # PostgreSQL sums are Decimal
        cells["n"] = cells["n"].to_numpy(dtype=np.int64)
    return cells


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
    return cast(pd.DataFrame, cells.groupby(["true_class", "pred_class"], as_index=False)["n"].sum())  # as_index=False: a frame

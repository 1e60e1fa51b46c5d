"""Rolling one-vs-rest metrics per class and series (CONTRACT §3 `metrics` records).

Reads only count tables: confusion counts (labelled predictions) and prediction counts (all
predictions), summed into windows by `monitor.store.windows`. Columns after the contract's:
`provisional` (labels of this window are not yet as complete as they usually are at its
age, so it can neither fire nor resolve an alert), `expected_coverage` (that usual coverage),
the interval of the label-free estimate and its warning (e.g. badly calibrated scores).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.metrics.maturity import expected_coverage
from monitor.metrics.rates import one_vs_rest, safe_divide
from monitor.store.models import ConfusionCount, PredictionCount, ReferenceCount, SliceValue
from monitor.store.windows import (
    OVERALL,
    SEPARATOR,
    WindowSpec,
    parse_segment_option,
    segment_label,
    windowed_counts,
)
from monitor.timeutil import format_duration, iso_series, now_epoch, parse_time

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
    from monitor.estimation.service import estimated_frame

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

"""Typed reads of model quality: metrics (with the label-free recall estimate), reference
metrics, confusion matrices, label arrival, drift and fairness.

Each takes a connection, a context (`monitor.read.context`) and, for series, a WindowSpec
(`monitor.read.windows`), and returns the service's frame unchanged: the docs/contract.md records
(ISO `end`) that the CLI prints, the API sends and the dashboard draws. User mistakes (an
unknown class, segment, feature or metric; a window the limits refuse) raise ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.drift import service as drift_service
from monitor.fairness import service as fairness_service
from monitor.incidents.slices import SLICE_COLUMNS, slices_frame
from monitor.metrics import maturity
from monitor.metrics import service as metrics_service
from monitor.store.windows import WindowSpec

Names = Sequence[str] | str | None
GAP_COLUMNS = fairness_service.GAP_COLUMNS  # the columns of `largest_gaps`


def metrics(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, classes: Sequence[str] | None = None,
            segment: str | None = None, as_of: int | None = None, estimates: bool = True) -> pd.DataFrame:
    """`metrics` records per window end, class and series; `recall_estimated` (and its
    interval) is the label-free estimate joined per row (`estimates=False`: left empty, for a
    reader that ranks realized recall only), `provisional` marks windows whose labels are still
    arriving (`as_of` is the clock, default now)."""
    return metrics_service.metrics_frame(conn, ctx, spec, classes=classes, segment=segment, as_of=as_of,
                                         estimates=estimates)


def best_recall(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, segment: str | None = None,
                classes: Sequence[str] | None = None) -> pd.DataFrame:
    """The current best recall per window end, class and series: realized counts of the
    labelled predictions plus the label-free estimate of the others, one interval
    (`monitor.estimation.blend`; docs/estimation.md), with the realized and estimated
    values beside it. Empty (with its columns) without scores. ISO `end`."""
    from monitor.estimation.blend import blended_frame
    from monitor.store.windows import parse_segment_option
    from monitor.timeutil import iso_series

    frame = blended_frame(conn, ctx, spec, segment_sets=parse_segment_option(segment, ctx.segment_sets))
    if classes is not None:
        frame = frame[frame["class"].isin(list(classes))]
    frame = frame.reset_index(drop=True)
    frame["end"] = iso_series(frame["end"])
    return frame


def label_shift(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, segment: str | None = None,
                classes: Sequence[str] | None = None) -> pd.DataFrame:
    """`label_shift` records (docs/contract.md): class prevalence and precision from the
    predicted-class mix (BBSE, label shift) beside CBPE's, with a warning where they disagree
    (`monitor.estimation.label_shift`), per window end, class and series. ISO `end`."""
    from monitor.estimation.label_shift import LABEL_SHIFT_COLUMNS, label_shift_frame
    from monitor.store.windows import parse_segment_option
    from monitor.timeutil import format_duration, iso_series

    if classes is not None:
        unknown = set(classes) - set(ctx.classes)
        if unknown:
            raise ValueError(f"unknown class {sorted(unknown)[0]!r} (known: {', '.join(ctx.classes)})")
    frame = label_shift_frame(conn, ctx, spec, segment_sets=parse_segment_option(segment, ctx.segment_sets))
    if classes is not None:
        frame = frame[frame["class"].isin(list(classes))]
    frame = frame.sort_values(["end", "class", "segment", "segment_value"], kind="stable").reset_index(drop=True)
    frame.insert(0, "window", format_duration(spec.window))
    frame.insert(0, "model", ctx.name)
    frame["end"] = iso_series(frame["end"]) if len(frame) else frame["end"].astype(object)
    columns = ["model", "window", "end", "class", "segment", "segment_value",
               *[c for c in LABEL_SHIFT_COLUMNS if c not in ("end", "class", "segment", "segment_value")]]
    return frame[columns]


def reference_metrics(conn: Connection, ctx: ModelContext,
                      segment_sets: Sequence[tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Reference one-vs-rest metrics per (segment, segment_value, class)."""
    return metrics_service.reference_metrics(conn, ctx, segment_sets)


def confusion_matrix(conn: Connection, ctx: ModelContext, start: int, end: int) -> pd.DataFrame:
    """Labelled predictions per (true_class, pred_class) for predictions in [start, end)."""
    return metrics_service.confusion_matrix(conn, ctx, start, end)


def label_arrival(conn: Connection, ctx: ModelContext, as_of: int | None = None) -> pd.DataFrame:
    """Share of predictions labelled within `delay_hours` (columns delay_hours, coverage);
    empty while nothing old enough is labelled (the curve would be a flat 0)."""
    frame = maturity.coverage_by_age(conn, ctx, as_of)
    if frame.empty or float(frame["coverage"].iloc[-1]) == 0.0:
        return frame.iloc[0:0]
    return frame


def drift(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, segment: str | None = None,
          features: Sequence[str] | None = None) -> pd.DataFrame:
    """`drift` records per window end, feature, series and method."""
    return drift_service.drift_frame(conn, ctx, spec, segment=segment, features=features)


def drift_features(conn: Connection, ctx: ModelContext) -> list[str]:
    """The features drift is computed for, in config order (none before a reference)."""
    return [bins.feature for bins in drift_service.select_bins(conn, ctx, None)]


def distribution(conn: Connection, ctx: ModelContext, *, feature: str, window: int, end: int,
                 segment: str | None = None, segment_value: str | None = None) -> pd.DataFrame:
    """Reference vs current shares of one feature on its coarse bins, one window."""
    return drift_service.distribution_frame(conn, ctx, feature=feature, window=window, end=end,
                                            segment=segment, segment_value=segment_value)


def fairness(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, classes: Names = None,
             attribute: Names = None, metric: Names = None) -> pd.DataFrame:
    """`fairness` records per window end, class, attribute, group and metric."""
    return fairness_service.fairness_frame(conn, ctx, spec, classes=classes, attribute=attribute, metric=metric)


def largest_gaps(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, classes: Names = None,
                 attribute: Names = None, metric: Names = None) -> pd.DataFrame:
    """The largest gap per (window end, class, attribute, metric)."""
    return fairness_service.largest_gaps(conn, ctx, spec, classes=classes, attribute=attribute, metric=metric)


def slices(conn: Connection, ctx: ModelContext, *, cls: str, end: int | None, window: int, depth: int = 2,
           limit: int | None = None) -> pd.DataFrame:
    """`slices` records: the worst slices of `cls`'s recall over attribute combinations up
    to `depth` in the window ending at `end`, the overall row first (docs/incidents.md);
    empty, with the columns, when `end` is None (no data)."""
    if end is None:
        return pd.DataFrame(columns=SLICE_COLUMNS)
    return slices_frame(conn, ctx, cls=cls, end=end, window=window, depth=depth, limit=limit)


def fairness_with_gaps(conn: Connection, ctx: ModelContext, spec: WindowSpec, *, classes: Names = None,
                       metric: Names = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`fairness` records with the extra columns, largest gaps) of every attribute from one
    read; both empty (with their columns) when no window has labelled predictions."""
    table = fairness_service.group_table(conn, ctx, spec, classes=classes, metric=metric)
    columns = fairness_service.FAIRNESS_COLUMNS + fairness_service.EXTRA_COLUMNS
    records = fairness_service.format_records(table, ctx, spec, columns,
                                              ["end", "class", "attribute", "metric", "group"])
    return records, fairness_service.gaps_from_table(table, ctx, spec)

"""Data access for the Fairness page: per-group rates, largest gaps, worst groups.

One read per callback through the read layer (`monitor.read.quality`; never SQL here): the group table of
the filters' range for one class and one metric, from which the page gets the largest gap per
attribute over time, the groups of a chosen window and the worst groups ranked. Empty results
carry a `message` and a `hint` saying what to do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboards.data import common
from dashboards.data.core import Result, context, no_data, window_spec
from dashboards.filters import OVERALL, Filters
from monitor.fairness.gaps import METRICS
from monitor.read import quality
from monitor.store.windows import segment_label

METRIC_LABELS = {
    "tpr": "true positive rate (recall): equal opportunity",
    "fpr": "false positive rate: equalised odds",
    "precision": "precision: predictive parity",
    "selection_rate": "selection rate: demographic parity",
}
NO_LABELS = "No labelled predictions in these windows"
NO_LABELS_HINT = "Fairness gaps need ground truth: labels arrive later; widen the date range or wait."


def fairness_view(filters: Filters, metric: str = "tpr", end: str | None = None) -> Result:
    """Everything the Fairness page shows for the filters, one class and one metric.

    `frame`: fairness records of the range (every attribute, `end` as UTC Timestamps).
    `meta`: `gaps` (largest gap per attribute and end), `class`, `metric`, `attribute` (the
    filter's segment, else the first configured one: the one the bars show), `end` (the chosen
    window end, default the newest), `ends`, `tolerance`, `min_support`, `worst` (ranked).
    """
    metric = metric if metric in METRICS else "tpr"
    config = common.config()
    with common.read() as conn:
        ctx = context(conn, config, filters.model)
        if ctx is None:
            return no_data(filters.model)
        attributes = [segment_label(s) for s in ctx.segment_sets]
        if not attributes:
            return Result(pd.DataFrame(), "This model has no segments",
                          "List subgroup attributes in `segments` of its [[models]] section "
                          "(and `intersections = true` for pairs).")
        cls = filters.cls if filters.cls in ctx.classes else next(iter(ctx.minority_classes or ctx.classes), None)
        spec = window_spec(conn, ctx, filters)
        if spec is None or cls is None:
            return no_data(filters.model)
        frame, gaps = quality.fairness_with_gaps(conn, ctx, spec, classes=[cls], metric=metric)
    settings = ctx.config.fairness
    meta = {"class": cls, "metric": metric, "window": filters.window,
            "tolerance": tuple(settings.tolerance), "min_support": settings.min_support,
            "attribute": filters.segment if filters.segment in attributes else attributes[0],
            "attributes": attributes, "ends": [], "end": None,
            "gaps": pd.DataFrame(columns=quality.GAP_COLUMNS), "worst": pd.DataFrame()}
    if frame.empty:
        return Result(pd.DataFrame(), NO_LABELS, NO_LABELS_HINT, meta)
    frame["end"] = pd.to_datetime(frame["end"], utc=True)
    gaps["end"] = pd.to_datetime(gaps["end"], utc=True)
    ends = sorted(frame["end"].unique())
    chosen = pd.Timestamp(end) if end else None
    if chosen is not None and chosen.tzinfo is None:
        chosen = chosen.tz_localize("UTC")
    meta.update(gaps=gaps, ends=ends, end=chosen if chosen in ends else ends[-1])
    meta["worst"] = rank_worst(frame[frame["end"] == meta["end"]], min_support=settings.min_support)
    return Result(frame, meta=meta)


def rank_worst(frame: pd.DataFrame, *, min_support: int, limit: int = 15) -> pd.DataFrame:
    """Groups of one window ranked by the smallest disparity the data support: the bound of
    the ratio interval nearest parity, as a factor >= 1 (`disparity_at_least`; 1 when the
    interval includes parity). Intersections (`a&b`) come first when there are any; groups
    under `min_support` or without a ratio are left out. Pure."""
    columns = ["attribute", "group", "value", "low", "high", "support", "reference_group",
               "ratio", "ratio_low", "ratio_high", "disparity_at_least", "flagged"]
    rated = frame[frame["ratio"].notna() & (frame["support"] >= min_support)
                  & (frame["group"] != frame["reference_group"])]
    if rated.empty:
        return pd.DataFrame(columns=columns)
    pairs = rated[rated["attribute"].str.contains("&", regex=False)]
    rated = pairs if not pairs.empty else rated
    with np.errstate(divide="ignore"):
        below = 1.0 / rated["ratio_high"].to_numpy(dtype=float)
    above = rated["ratio_low"].to_numpy(dtype=float)
    disparity = np.fmax(np.fmax(below, above), 1.0)
    ranked = rated.assign(disparity_at_least=disparity)
    ranked = ranked.sort_values(["disparity_at_least", "ratio"], ascending=[False, True])
    return ranked[columns].head(limit).reset_index(drop=True)


def segment_choice(filters: Filters) -> str | None:
    """The filter's segment when it names an attribute, else None (every attribute)."""
    return None if filters.segment in (None, OVERALL) else filters.segment

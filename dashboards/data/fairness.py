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
from dashboards.data.core import Result, cached, context, no_data, window_spec
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
GAP_COLUMNS = ["end", "attribute", "group", "reference_group", "value", "reference_value", "ratio",
               "ratio_low", "ratio_high", "supported", "support", "tiny", "flagged", "groups_flagged"]
WORST_COLUMNS = ["attribute", "group", "value", "low", "high", "support", "reference_group", "ratio",
                 "ratio_low", "ratio_high", "disparity_at_least", "tiny", "flagged"]
NO_LABELS_HINT = "Fairness gaps need ground truth: labels arrive later; widen the date range or wait."


@cached  # every attribute's groups over the range: seconds with many segment values (bench/segments.py)
def fairness_view(filters: Filters, metric: str = "tpr", end: str | None = None) -> Result:
    """Everything the Fairness page shows for the filters, one class and one metric.

    `frame`: fairness records of the range (every attribute, `end` as UTC Timestamps).
    `meta`: `gaps` (per attribute and end, the gap the ratio interval supports:
    `supported_gaps`), `class`, `metric`, `attribute` (the filter's segment, else the one with
    the worst finding in the chosen window: the one the bars show), `end` (the chosen window
    end, default the newest), `ends`, `tolerance`, `min_support`, `worst` (ranked).
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
        frame = quality.fairness(conn, ctx, spec, classes=[cls], metric=metric)
    settings = ctx.config.fairness
    meta = {"class": cls, "metric": metric, "window": filters.window,
            "tolerance": tuple(settings.tolerance), "min_support": settings.min_support,
            "attribute": filters.segment if filters.segment in attributes else attributes[0],
            "attributes": attributes, "ends": [], "end": None,
            "gaps": pd.DataFrame(columns=GAP_COLUMNS), "worst": pd.DataFrame()}
    if frame.empty:
        return Result(pd.DataFrame(), NO_LABELS, NO_LABELS_HINT, meta)
    frame["end"] = pd.to_datetime(frame["end"], utc=True)
    ends = sorted(frame["end"].unique())
    chosen = pd.Timestamp(end) if end else None
    if chosen is not None and chosen.tzinfo is None:
        chosen = chosen.tz_localize("UTC")
    meta.update(gaps=supported_gaps(frame, min_support=settings.min_support), ends=ends,
                end=chosen if chosen in ends else ends[-1])
    window = frame[frame["end"] == meta["end"]]
    if filters.segment not in attributes:
        meta["attribute"] = worst_attribute(window, attributes)
    meta["worst"] = rank_worst(window, min_support=settings.min_support)
    return Result(frame, meta=meta)


def _disparity(frame: pd.DataFrame) -> np.ndarray:
    """The smallest disparity each row's ratio interval supports, as a factor >= 1: the bound
    nearest parity (1 / ratio_high below parity, ratio_low above; 1 when it includes parity)."""
    with np.errstate(divide="ignore"):
        below = 1.0 / frame["ratio_high"].to_numpy(dtype=float)
    above = frame["ratio_low"].to_numpy(dtype=float)
    return np.fmax(np.fmax(below, above), 1.0)


def supported_gaps(frame: pd.DataFrame, *, min_support: int) -> pd.DataFrame:
    """Per (end, attribute) the gap the ratio interval supports best: the group whose interval
    lies furthest from parity (`supported` = 1 / disparity_at_least, 1 = parity), with its
    ratio, interval, support and flag. A tiny group with 2 positives and ratio 0 has an
    interval up to ~0.9: it does not become the headline unless its interval says so."""
    rated = frame[frame["ratio"].notna()]
    if rated.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    rated = rated.assign(disparity_at_least=_disparity(rated))
    rated = rated.assign(supported=1.0 / rated["disparity_at_least"],
                         tiny=rated["support"] < min_support)
    rated = rated.sort_values(["end", "attribute", "disparity_at_least", "support"],
                              ascending=[True, True, False, False], kind="stable")
    best = rated.drop_duplicates(["end", "attribute"]).copy()
    flagged = rated.groupby(["end", "attribute"])["flagged"].sum()
    keys = pd.MultiIndex.from_frame(best[["end", "attribute"]])
    best["groups_flagged"] = flagged.reindex(keys).to_numpy(dtype=np.int64)
    return best[GAP_COLUMNS].reset_index(drop=True)


def worst_attribute(window: pd.DataFrame, attributes: list[str]) -> str:
    """The attribute whose group shows the largest supported disparity in this window (flagged
    groups first); the first attribute when no interval supports any."""
    rated = window[window["ratio"].notna() & window["attribute"].isin(attributes)]
    if rated.empty:
        return attributes[0]
    rated = rated.assign(_flag=rated["flagged"].astype(bool), _disparity=_disparity(rated))
    top = rated.sort_values(["_flag", "_disparity"], ascending=[False, False], kind="stable").iloc[0]
    return str(top["attribute"]) if top["_disparity"] > 1.0 else attributes[0]


def rank_worst(frame: pd.DataFrame, *, min_support: int, limit: int = 15) -> pd.DataFrame:
    """Groups of one window ranked by the smallest disparity the data support: the bound of
    the ratio interval nearest parity, as a factor >= 1 (`disparity_at_least`; 1 when the
    interval includes parity). Intersections (`a&b`) come first when there are any. Groups
    under `min_support` stay in, marked `tiny`: their wide interval ranks them by what it
    proves, and a tiny group ranks after a supported one of the same disparity. Pure."""
    rated = frame[frame["ratio"].notna() & (frame["group"] != frame["reference_group"])]
    if rated.empty:
        return pd.DataFrame(columns=WORST_COLUMNS)
    pairs = rated[rated["attribute"].str.contains("&", regex=False)]
    rated = pairs if not pairs.empty else rated
    ranked = rated.assign(disparity_at_least=_disparity(rated), tiny=rated["support"] < min_support)
    ranked = ranked.sort_values(["disparity_at_least", "tiny", "ratio"], ascending=[False, True, True],
                                kind="stable")
    return ranked[WORST_COLUMNS].head(limit).reset_index(drop=True)


def segment_choice(filters: Filters) -> str | None:
    """The filter's segment when it names an attribute, else None (every attribute)."""
    return None if filters.segment in (None, OVERALL) else filters.segment

"""Data access for the Subgroups page beyond `core.subgroup_metrics`: the judgment settings,
the alert state of each slice, and which attribute holds the worst finding.

Reads go through the read layer (`monitor.read.alerts`) and `core.subgroup_metrics` (cached);
the ranking itself is `figures.core.worst_slices`, the same as the table on the page.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from dashboards.data import common, core
from dashboards.figures import core as figures
from dashboards.filters import OVERALL, Filters
from monitor.read import alerts

DEFAULT_MIN_DROP = 0.10


def min_drop(model: str | None) -> float:
    """The recall rule's `min_drop` (the default rule's 0.10 when the model has none): the
    drop a slice's interval must prove to count as a finding."""
    config = common.config()
    if not model or model not in {m.name for m in config.models}:
        return DEFAULT_MIN_DROP
    rules = [rule for rule in config.model(model).alerts if rule.metric == "recall" and rule.enabled]
    return float(rules[0].min_drop) if rules else DEFAULT_MIN_DROP


def alert_status(model: str | None, attribute: str) -> pd.DataFrame:
    """segment_value, class, status of the recall alert series of `attribute` (empty when no
    rule has evaluated them): the Worst slices table shows this state when there is one."""
    columns = ["segment_value", "class", "status"]
    if not model:
        return pd.DataFrame(columns=columns)
    with common.read() as conn:
        series = alerts.alert_series(conn, model=model)
    if series.empty:
        return pd.DataFrame(columns=columns)
    part = series[(series["metric"] == "recall") & (series["segment"] == attribute)]
    # a firing or pending state outranks another rule's ok for the same slice
    order = {"firing": 0, "pending": 1}
    part = part.assign(_rank=part["status"].map(order).fillna(2)).sort_values("_rank", kind="stable")
    return part[columns].drop_duplicates(["segment_value", "class"]).reset_index(drop=True)


def finding_score(latest: pd.DataFrame, *, min_support: int, drop: float) -> float:
    """How bad the worst judged slice of one window is: the largest shortfall of a recall
    interval's upper end below its reference (slices the interval cannot judge do not count)."""
    ranked = figures.worst_slices(latest, min_support=min_support, min_drop=drop, limit=1)
    if ranked.empty or ranked.loc[0, "status"] == "insufficient data":
        return -np.inf
    top = ranked.iloc[0]
    shortfall = float(top["reference_recall"]) - float(top["recall_high"])
    return shortfall if not np.isnan(shortfall) else -np.inf


def worst_attribute(filters: Filters, attributes: list[str]) -> str | None:
    """The attribute whose worst slice falls furthest below its reference (the first one when
    none is judged): the Subgroups page's default when the filter bar says '*'."""
    if filters.segment != OVERALL or not attributes:
        return filters.segment if filters.segment in attributes else None
    drop = min_drop(filters.model)
    best, best_score = attributes[0], -np.inf
    for attribute in attributes:
        result = core.subgroup_metrics(replace(filters, segment=attribute))
        if result.empty:
            continue
        score = finding_score(figures.latest_window(result.frame),
                              min_support=result.meta["min_support"], drop=drop)
        if score > best_score:
            best, best_score = attribute, score
    return best

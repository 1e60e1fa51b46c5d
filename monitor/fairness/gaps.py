"""Fairness gaps from confusion counts: pure, vectorised math (no database, no raw rows).

Input is a frame of window sums per group of labelled predictions, one row per
(end, segment, segment_value, true_class, pred_class) with the count `n`, as
`monitor.store.windows.windowed_counts` returns it for `confusion_counts`. Everything here is
a function of those counts, so a gap over a week costs the same as a gap over an hour.

Per class (one vs rest), group and window:

| metric           | successes | denominator (= support) | fairness notion            |
|------------------|-----------|-------------------------|----------------------------|
| `tpr`            | tp        | tp + fn (positives)     | equal opportunity (recall) |
| `fpr`            | fp        | fp + tn (negatives)     | equalised odds             |
| `precision`      | tp        | tp + fp (selected)      | predictive parity          |
| `selection_rate` | tp + fp   | tp + fp + fn + tn       | demographic parity         |

`selection_rate` uses the *labelled* predictions as its denominator, the same rows as the
other three metrics, so every value equals fairlearn's on the same labelled rows.

A rate whose denominator is 0 is NaN (null), never 0: a group without positives has no
true-positive rate. Intervals are Wilson 95% intervals. The ratio to the reference group has a
Katz log interval (statsmodels' `confint_proportions_2indep(compare="ratio", method="log")`),
with 0.5 added to counts and totals (`method="log-adjusted"`) when either count is 0, so the
interval stays finite. A group is `flagged` when its ratio interval lies entirely outside the
tolerance band and both it and the reference group reach `min_support`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import norm

from monitor.metrics.rates import wilson_interval

METRICS: tuple[str, ...] = ("tpr", "fpr", "precision", "selection_rate")
DEFAULT_TOLERANCE: tuple[float, float] = (0.8, 1.25)
Z95 = float(norm.isf(0.025))

__all__ = ["METRICS", "wilson_interval", "ratio_interval", "one_vs_rest", "group_metrics",
           "reference_groups", "compare_to_reference", "between_groups"]

_GROUP_KEYS = ["end", "attribute", "group"]


def ratio_interval(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, z: float = Z95
) -> tuple[np.ndarray, np.ndarray]:
    """Katz log interval for (x1/n1) / (x2/n2) of two independent proportions, elementwise.

    When x1 or x2 is 0 the log-adjusted variant (0.5 added to counts and totals) keeps the
    interval finite. NaN where n1 or n2 is 0, or where both counts are 0 (0/0 has no ratio).
    """
    c1, t1, c2, t2 = (np.asarray(a, dtype=np.float64) for a in (x1, n1, x2, n2))
    adjust = np.where((c1 == 0) | (c2 == 0), 0.5, 0.0)
    a1, m1, a2, m2 = c1 + adjust, t1 + adjust, c2 + adjust, t2 + adjust
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log((a1 / m1) / (a2 / m2))
        spread = z * np.sqrt(np.maximum(1.0 / a1 - 1.0 / m1 + 1.0 / a2 - 1.0 / m2, 0.0))
        low, high = np.exp(log_ratio - spread), np.exp(log_ratio + spread)
    undefined = (t1 <= 0) | (t2 <= 0) | ((c1 == 0) & (c2 == 0))
    return np.where(undefined, np.nan, low), np.where(undefined, np.nan, high)


def one_vs_rest(counts: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """tp, fp, fn, tn per (end, attribute, group, class) from window confusion sums.

    `counts` has columns end, segment, segment_value, true_class, pred_class, n. The overall
    series (segment "*") is dropped; groups with no labelled rows in a window are dropped
    (as fairlearn never sees them). Every remaining group gets a row for every class.
    """
    columns = [*_GROUP_KEYS, "class", "tp", "fp", "fn", "tn", "n_labeled"]
    frame = counts.loc[counts["segment"] != "*"].rename(
        columns={"segment": "attribute", "segment_value": "group"}
    )
    frame = frame.loc[frame["n"] > 0]
    if frame.empty or not classes:
        return pd.DataFrame(columns=columns)
    frame = frame.astype({"n": "int64"})
    total = frame.groupby(_GROUP_KEYS, sort=True)["n"].sum()
    index = total.index
    class_list = list(classes)

    def wide(column: str, mask: pd.Series | None = None) -> np.ndarray:
        part = frame if mask is None else frame.loc[mask]
        table = part.groupby([*_GROUP_KEYS, column], sort=False)["n"].sum().unstack(column)
        table = table.reindex(index=index, columns=class_list).fillna(0)
        return table.to_numpy(dtype=np.int64)

    positives = wide("true_class")
    selected = wide("pred_class")
    tp = wide("true_class", frame["true_class"] == frame["pred_class"])
    n_labeled = np.repeat(total.to_numpy(dtype=np.int64)[:, None], len(class_list), axis=1)
    fn = positives - tp
    fp = selected - tp
    tn = n_labeled - tp - fn - fp
    out = index.to_frame(index=False).loc[np.repeat(np.arange(len(index)), len(class_list))]
    out = out.reset_index(drop=True)
    out["class"] = np.tile(class_list, len(index))
    for name, values in (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn), ("n_labeled", n_labeled)):
        out[name] = values.reshape(-1)
    return out[columns]


def _successes_and_support(confusion: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    tp, fp, fn, tn = (confusion[c].to_numpy(dtype=np.int64) for c in ("tp", "fp", "fn", "tn"))
    if metric == "tpr":
        return tp, tp + fn
    if metric == "fpr":
        return fp, fp + tn
    if metric == "precision":
        return tp, tp + fp
    if metric == "selection_rate":
        return tp + fp, tp + fp + fn + tn
    raise ValueError(f"unknown fairness metric {metric!r} (known: {', '.join(METRICS)})")


def group_metrics(confusion: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Long frame: one row per (end, attribute, group, class, metric) with value, Wilson
    low/high, `successes`, `support` (the denominator) and `n_labeled` (rows of the group)."""
    parts = []
    for metric in metrics:
        successes, support = _successes_and_support(confusion, metric)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(support > 0, successes / np.maximum(support, 1), np.nan)
        low, high = wilson_interval(successes, support)
        part = confusion[[*_GROUP_KEYS, "class", "n_labeled"]].copy()
        part["metric"] = metric
        part["value"], part["low"], part["high"] = value, low, high
        part["successes"], part["support"] = successes, support
        parts.append(part)
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def reference_groups(
    confusion: pd.DataFrame, configured: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """The reference group per (end, attribute): the configured one when the attribute has
    one (even when absent from a window: its values are then null), else the group with the
    most labelled rows in that window (ties: the first name in sort order)."""
    groups = confusion[[*_GROUP_KEYS, "n_labeled"]].drop_duplicates(_GROUP_KEYS)
    groups = groups.sort_values(
        ["end", "attribute", "n_labeled", "group"], ascending=[True, True, False, True]
    )
    largest = groups.drop_duplicates(["end", "attribute"])[["end", "attribute", "group"]]
    largest = largest.rename(columns={"group": "reference_group"}).reset_index(drop=True)
    if configured:
        chosen = largest["attribute"].map(dict(configured))
        largest["reference_group"] = chosen.fillna(largest["reference_group"])
    return largest


def compare_to_reference(
    values: pd.DataFrame,
    references: pd.DataFrame,
    *,
    tolerance: tuple[float, float] = DEFAULT_TOLERANCE,
    min_support: int = 30,
) -> pd.DataFrame:
    """Add reference_group, reference_value, difference, ratio, ratio_low, ratio_high and
    flagged to the output of `group_metrics`.

    `flagged`: not the reference group, both supports >= min_support, and the ratio interval
    entirely below tolerance[0] or entirely above tolerance[1]. Null ratios never flag.
    """
    frame = values.merge(references, on=["end", "attribute"], how="left")
    ref_keys = ["end", "attribute", "class", "metric"]
    ref = values[[*ref_keys, "group", "value", "successes", "support"]].rename(
        columns={"group": "reference_group", "value": "reference_value",
                 "successes": "reference_successes", "support": "reference_support"}
    )
    frame = frame.merge(ref, on=[*ref_keys, "reference_group"], how="left")
    value = frame["value"].to_numpy(dtype=np.float64)
    reference_value = frame["reference_value"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(reference_value > 0, value / reference_value, np.nan)
    ratio_low, ratio_high = ratio_interval(
        frame["successes"], frame["support"],
        frame["reference_successes"].fillna(0), frame["reference_support"].fillna(0),
    )
    is_reference = (frame["group"] == frame["reference_group"]).to_numpy()
    # The reference compared with itself is exactly 1, not an estimate.
    ratio_low = np.where(is_reference & ~np.isnan(ratio), 1.0, ratio_low)
    ratio_high = np.where(is_reference & ~np.isnan(ratio), 1.0, ratio_high)
    enough = (frame["support"] >= min_support) & (frame["reference_support"].fillna(0) >= min_support)
    outside = (ratio_high < tolerance[0]) | (ratio_low > tolerance[1])
    frame["difference"] = value - reference_value
    frame["ratio"] = ratio
    frame["ratio_low"], frame["ratio_high"] = ratio_low, ratio_high
    frame["flagged"] = (enough.to_numpy() & outside & ~is_reference).astype(bool)
    return frame.drop(columns=["reference_successes"])


def between_groups(
    frame: pd.DataFrame, *, tolerance: tuple[float, float] = DEFAULT_TOLERANCE, min_support: int = 30
) -> pd.DataFrame:
    """The largest gap per (end, class, attribute, metric), as fairlearn's
    `MetricFrame.difference(method="between_groups")` (max - min) and `.ratio()` (min / max)
    over the groups with a value, plus the Katz interval of min / max and `flagged` (that
    interval entirely below tolerance[0], both groups with min_support). `groups_flagged`
    counts the groups flagged against the reference. Input: `compare_to_reference` output.
    """
    keys = ["end", "class", "attribute", "metric"]
    columns = [*keys, "group_max", "value_max", "group_min", "value_min", "difference", "ratio",
               "ratio_low", "ratio_high", "support_max", "support_min", "flagged", "groups_flagged"]
    rated = frame.loc[frame["value"].notna()]
    if rated.empty:
        return pd.DataFrame(columns=columns)
    ordered = rated.sort_values([*keys, "value", "group"])
    lowest = ordered.drop_duplicates(keys, keep="first").set_index(keys)
    highest = ordered.drop_duplicates(keys, keep="last").set_index(keys)
    out = pd.DataFrame(index=lowest.index)
    out["group_max"], out["value_max"] = highest["group"], highest["value"]
    out["group_min"], out["value_min"] = lowest["group"], lowest["value"]
    out["difference"] = out["value_max"] - out["value_min"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.where(out["value_max"] > 0, out["value_min"] / out["value_max"], np.nan)
    low, high = ratio_interval(lowest["successes"], lowest["support"],
                               highest["successes"], highest["support"])
    same = (lowest["group"] == highest["group"]).to_numpy()
    out["ratio_low"] = np.where(same & out["ratio"].notna(), 1.0, low)
    out["ratio_high"] = np.where(same & out["ratio"].notna(), 1.0, high)
    out["support_max"], out["support_min"] = highest["support"], lowest["support"]
    enough = (out["support_max"] >= min_support) & (out["support_min"] >= min_support)
    out["flagged"] = enough & (out["ratio_high"] < tolerance[0])
    flagged_groups = frame.groupby(keys)["flagged"].sum()
    out["groups_flagged"] = flagged_groups.reindex(out.index).fillna(0).astype(np.int64)
    return out.reset_index()[columns]

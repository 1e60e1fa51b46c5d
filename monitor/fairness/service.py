"""Fairness records per window (docs/contract.md §3 `fairness`), read from stored counts only.

The CLI, the HTTP API, the dashboard and the alert rule all read through this module:

- `fairness_frame`: one record per (window end, class, attribute, group, metric).
- `largest_gaps`: the largest gap per (end, class, attribute, metric), fairlearn's
  `between_groups` difference and ratio, with an interval for the ratio.
- `latest_fairness`: the records of the one window ending at (or just before) a given data
  time, for the alert rule `metric = "fairness"` (the `flagged` column is the condition).

Nothing here reads raw predictions: the window sums of `confusion_counts` per attribute value
(`monitor.store.windows.windowed_counts`) are all the math in `monitor.fairness.gaps` needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.fairness import gaps
from monitor.store.models import ConfusionCount, PredictionCount
from monitor.store.windows import WindowSpec, data_range, parse_segment_option, windowed_counts
from monitor.timeutil import floor_to, format_duration, iso_series

FAIRNESS_COLUMNS = [
    "model", "window", "end", "class", "attribute", "group", "metric", "value", "low", "high",
    "support", "reference_group", "difference", "ratio", "flagged",
]
# Extra columns after the contract ones: the ratio's interval and what it was computed from.
EXTRA_COLUMNS = ["ratio_low", "ratio_high", "reference_value", "n_labeled"]
# The core count tables (typed as Table for the window helpers).
CONFUSION = cast(Table, ConfusionCount.__table__)
PREDICTED = cast(Table, PredictionCount.__table__)
GAP_COLUMNS = [
    "model", "window", "end", "class", "attribute", "metric", "group_max", "value_max",
    "group_min", "value_min", "difference", "ratio", "ratio_low", "ratio_high", "support_max",
    "support_min", "flagged", "groups_flagged",
]


def _split(option: str | Sequence[str] | None) -> list[str] | None:
    if option is None:
        return None
    parts = option.split(",") if isinstance(option, str) else list(option)
    cleaned = [p.strip() for p in parts if p and p.strip()]
    return cleaned or None


def attribute_sets(ctx: ModelContext, attribute: str | Sequence[str] | None) -> list[tuple[str, ...]]:
    """Attribute tuples to compare groups within: every configured segment (and pair when
    `intersections = true`) by default; `attribute` picks some ('sex', 'sex&region').
    Raises ValueError for unknown names or for '*' (the overall series has one group)."""
    names = _split(attribute)
    if names is None:
        return list(ctx.segment_sets)
    if "*" in names:
        raise ValueError("fairness compares groups within an attribute: '*' (overall) has none")
    return [s for s in parse_segment_option(",".join(names), ctx.segment_sets) if s]


def _metrics(metric: str | Sequence[str] | None) -> list[str]:
    names = _split(metric) or list(gaps.METRICS)
    unknown = [m for m in names if m not in gaps.METRICS]
    if unknown:
        raise ValueError(f"unknown fairness metric {unknown[0]!r} (known: {', '.join(gaps.METRICS)})")
    return names


def _classes(conn: Connection, ctx: ModelContext, wanted: Sequence[str] | str | None) -> list[str]:
    known = list(ctx.classes)
    if not known:  # classes neither configured nor learned yet: the ones counted so far
        table = CONFUSION
        rows = conn.execute(
            select(table.c.true_class).where(table.c.model_id == ctx.model_id).distinct()
        ).scalars().all()
        known = sorted(set(rows))
    names = _split(wanted)
    if names is None:
        return known
    unknown = [c for c in names if c not in known]
    if unknown:
        raise ValueError(f"unknown class {unknown[0]!r} (known: {', '.join(known) or 'none yet'})")
    return names


def window_ends(conn: Connection, ctx: ModelContext, spec: WindowSpec) -> np.ndarray:
    """The window ends of `spec` over the model's predictions (labelled or not), so that a
    window whose labels have not arrived yet is still reported (with nulls)."""
    found = data_range(conn, PREDICTED, ctx.model_id)
    if found is None:
        found = data_range(conn, CONFUSION, ctx.model_id)
    if found is None:
        return np.array([], dtype=np.int64)
    return spec.ends(found[0], found[1] + ctx.bucket - 1)


def group_table(
    conn: Connection,
    ctx: ModelContext,
    spec: WindowSpec,
    *,
    classes: Sequence[str] | str | None = None,
    attribute: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
    ends: np.ndarray | None = None,
) -> pd.DataFrame:
    """The internal long frame (`gaps.compare_to_reference` output: epoch `end`, counts,
    successes, supports) behind `fairness_frame` and `largest_gaps`."""
    sets = attribute_sets(ctx, attribute)
    metric_names = _metrics(metric)
    class_names = _classes(conn, ctx, classes)
    if ends is None:
        ends = window_ends(conn, ctx, spec)
    if not sets or len(ends) == 0 or not class_names:
        return pd.DataFrame()
    counts = windowed_counts(
        conn, CONFUSION, model_id=ctx.model_id, spec=spec, segment_sets=sets,
        key_columns=["true_class", "pred_class"], value_columns=["n"], ends=ends,
        bucket=ctx.bucket,
    )
    if counts.empty:
        return pd.DataFrame()
    confusion = gaps.one_vs_rest(counts, class_names)
    if confusion.empty:
        return pd.DataFrame()
    settings = ctx.config.fairness
    values = gaps.group_metrics(confusion, metric_names)
    references = reference_table(conn, ctx, sets, class_names, metric_names, confusion)
    return gaps.compare_to_reference(
        values, references, tolerance=(settings.tolerance[0], settings.tolerance[1]),
        min_support=settings.min_support, rest=settings.reference == "rest",
    )


def reference_table(conn: Connection, ctx: ModelContext, sets: Sequence[tuple[str, ...]],
                    classes: Sequence[str], metrics: Sequence[str], confusion: pd.DataFrame) -> pd.DataFrame:
    """The reference group per (attribute, class, metric), the same for every window: the
    configured one, else the group with the largest support of the metric in the reference
    data (`reference_metrics`), else over the whole range read (`confusion`)."""
    from monitor.metrics.service import reference_metrics

    reference = reference_metrics(conn, ctx, list(sets))
    reference = reference[reference["segment"] != "*"] if len(reference) else reference
    if len(reference):
        counts = reference.rename(columns={"segment": "attribute", "segment_value": "group"})
        counts = counts[counts["class"].isin(list(classes))][["attribute", "group", "class", "tp", "fp", "fn", "tn"]]
    else:
        counts = confusion
    chosen = gaps.choose_references(counts, metrics, ctx.config.fairness.reference_groups)
    if counts is not confusion:
        # an attribute or class the reference data lacks falls back to the range read
        fallback = gaps.choose_references(confusion, metrics, ctx.config.fairness.reference_groups)
        keys = ["attribute", "class", "metric"]
        chosen = pd.concat([chosen, fallback], ignore_index=True).drop_duplicates(keys)
    return chosen


def format_records(frame: pd.DataFrame, ctx: ModelContext, spec: WindowSpec, columns: list[str],
            order: list[str]) -> pd.DataFrame:
    """Records of an internal frame: sorted, `model` and `window` added, `end` as ISO."""
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    frame.insert(0, "model", ctx.name)
    frame.insert(1, "window", format_duration(spec.window))
    frame["end"] = iso_series(frame["end"])
    frame["flagged"] = frame["flagged"].astype(bool)
    return frame[columns]


def fairness_frame(
    conn: Connection,
    ctx: ModelContext,
    spec: WindowSpec,
    *,
    classes: Sequence[str] | str | None = None,
    attribute: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
    ends: np.ndarray | None = None,
) -> pd.DataFrame:
    """docs/contract.md `fairness` records (then `ratio_low, ratio_high, reference_value, n_labeled`).

    One row per window end, class (one vs rest), attribute (or `a&b` intersection), group
    with labelled rows in that window, and metric. `value`, `low`, `high` are the group's rate
    and Wilson 95% interval, `support` its denominator; `difference`/`ratio` compare with
    `reference_group` (`reference_table`: fixed across windows), or with "(rest)", every other
    group together, when the group is the reference, the reference is thin in that window, or
    `[models.fairness] reference = "rest"` (`gaps.compare_to_reference`). Null where a
    denominator is 0. Raises ValueError for an unknown class, attribute or metric.
    """
    table = group_table(conn, ctx, spec, classes=classes, attribute=attribute, metric=metric,
                        ends=ends)
    order = ["end", "class", "attribute", "metric", "group"]
    return format_records(table, ctx, spec, FAIRNESS_COLUMNS + EXTRA_COLUMNS, order)


def gaps_from_table(table: pd.DataFrame, ctx: ModelContext, spec: WindowSpec) -> pd.DataFrame:
    """`largest_gaps` of an already computed `group_table` (saves a second read)."""
    if table.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    settings = ctx.config.fairness
    largest = gaps.between_groups(
        table, tolerance=(settings.tolerance[0], settings.tolerance[1]), min_support=settings.min_support
    )
    return format_records(largest, ctx, spec, GAP_COLUMNS, ["end", "class", "attribute", "metric"])


def largest_gaps(
    conn: Connection,
    ctx: ModelContext,
    spec: WindowSpec,
    *,
    classes: Sequence[str] | str | None = None,
    attribute: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """The largest gap per (end, class, attribute, metric): `difference` = max - min and
    `ratio` = min / max over the groups with a value (fairlearn's `between_groups`), the
    score interval of that ratio, `flagged` when it lies below the tolerance band (at
    `gaps.flag_level`), and `groups_flagged` (groups flagged against their reference)."""
    table = group_table(conn, ctx, spec, classes=classes, attribute=attribute, metric=metric)
    return gaps_from_table(table, ctx, spec)


def latest_fairness(
    conn: Connection,
    ctx: ModelContext,
    *,
    window: int,
    step: int,
    as_of: int,
    classes: Sequence[str] | str | None = None,
    attribute: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = "tpr",
) -> pd.DataFrame:
    """`fairness_frame` records of the single window ending at floor(as_of, step), every
    group (flagged or not, so that an alert can resolve). For the alert rule
    `metric = "fairness"`: the condition is `flagged`; fingerprint (class, attribute, group).
    Only that one window is summed, so the cost does not grow with history."""
    spec = WindowSpec(window=window, step=step)
    ends = np.array([floor_to(as_of, step)], dtype=np.int64)
    return fairness_frame(conn, ctx, spec, classes=classes, attribute=attribute, metric=metric,
                          ends=ends)

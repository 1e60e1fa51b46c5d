"""Observations for the alert rules, read through the domain services (never raw SQL).

`observe(conn, ctx, rule, spec)` returns one row per (window end, series) with
`rules.OBSERVATION_COLUMNS` (plus `verdict` for metrics that bring their own condition):

- recall / precision: `monitor.metrics.service.metrics_frame` for the window's counts and
  `reference_metrics` for the reference counts of the same segment value (the overall
  reference when that value has none). successes = tp; support = tp + fn (recall) or
  tp + fp (precision): the sample size of recall is the labelled positives.
- recall_estimated: the label-free estimate of metrics_frame against the reference recall;
  breach when it is `min_drop` or more below (no labels, so no test and no maturity).
- drift: `drift_frame` rows of the rule's `method` (default js: defined for every feature, no false flags measured); breach = `drifted`.
  The feature goes in the `class` column.
- fairness: `fairness_frame` rows of `fairness_metric`; breach = `flagged`; the attribute
  and group go in `segment` and `segment_value`.

A service that is missing or not implemented yet raises `SourceUnavailable`; the engine skips
that rule and logs why, so one unfinished domain never stops the others from alerting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from monitor.alerts.rules import OBSERVATION_COLUMNS, pool_reference, rule_classes, segment_option
from monitor.config import AlertRule
from monitor.context import ModelContext
from monitor.store.windows import OVERALL, WindowSpec, parse_segment_option


class SourceUnavailable(Exception):
    """The service a rule needs cannot answer (not installed, not implemented)."""


def _epochs(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("int64")
    # services give ISO strings; convert through a Timedelta so the datetime unit (ns, us, s)
    # does not matter (timeutil.parse_timestamps assumes ns and is off by 1000 on pandas 2 us)
    stamps = pd.to_datetime(values, utc=True, format="ISO8601")
    return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("int64")


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[*OBSERVATION_COLUMNS, "verdict"])


def observe(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec,
            as_of: int | None = None) -> pd.DataFrame:
    """Observations of `rule` for the window ends of `spec`; `as_of` is the clock for maturity."""
    try:
        if rule.metric in ("recall", "precision", "recall_estimated"):
            frame = _labelled(conn, ctx, rule, spec, as_of)
        elif rule.metric == "drift":
            frame = _drift(conn, ctx, rule, spec)
        else:
            frame = _fairness(conn, ctx, rule, spec)
    except (ImportError, NotImplementedError, AttributeError) as error:
        raise SourceUnavailable(f"{type(error).__name__}: {error}") from error
    if frame.empty:
        return _empty()
    frame["rule"] = rule.name
    frame["end"] = _epochs(frame["end"])
    for column in [*OBSERVATION_COLUMNS, "verdict"]:
        if column not in frame:
            frame[column] = np.nan
    return frame[[*OBSERVATION_COLUMNS, "verdict"]].reset_index(drop=True)


def _reference(conn: Connection, ctx: ModelContext, rule: AlertRule) -> pd.DataFrame:
    from monitor.metrics.service import reference_metrics

    sets = parse_segment_option(segment_option(rule), ctx.segment_sets)
    if () not in sets:
        sets = [(), *sets]
    reference = reference_metrics(conn, ctx, sets)
    if reference is None or len(reference) == 0:
        return pd.DataFrame(columns=["segment", "segment_value", "class", "ref_successes", "ref_support"])
    reference = reference.copy()
    reference["ref_successes"] = reference["tp"].astype(float)
    if rule.metric == "precision":
        reference["ref_support"] = (reference["tp"] + reference["fp"]).astype(float)
    else:
        reference["ref_support"] = (reference["tp"] + reference["fn"]).astype(float)
    return pool_reference(reference[["segment", "segment_value", "class", "ref_successes", "ref_support"]])


def _labelled(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec,
              as_of: int | None) -> pd.DataFrame:
    from monitor.metrics.service import metrics_frame

    classes = rule_classes(rule, ctx.classes, ctx.minority_classes)
    if not classes:
        return _empty()
    frame = metrics_frame(conn, ctx, spec, classes=classes, segment=segment_option(rule), as_of=as_of)
    if frame is None or len(frame) == 0:
        return _empty()
    frame = frame.copy()
    reference = _reference(conn, ctx, rule)
    frame = frame.merge(reference, on=["segment", "segment_value", "class"], how="left")
    overall = reference[reference["segment"] == OVERALL][["class", "ref_successes", "ref_support"]]
    frame = frame.merge(overall, on="class", how="left", suffixes=("", "_overall"))
    missing = ~(frame["ref_support"] > 0)
    for column in ("ref_successes", "ref_support"):
        frame.loc[missing, column] = frame.loc[missing, f"{column}_overall"]
    frame["reference_successes"] = frame["ref_successes"]
    frame["reference_support"] = frame["ref_support"]
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["reference_value"] = frame["ref_successes"] / frame["ref_support"]
    frame["metric"] = rule.metric
    frame["provisional"] = frame["provisional"] if "provisional" in frame else False
    frame["settled"] = _settled(conn, ctx, rule, frame, as_of)
    tp = frame["tp"].astype(float)
    if rule.metric == "recall_estimated":
        estimate = frame["recall_estimated"].astype(float) if "recall_estimated" in frame else np.nan
        frame["value"] = estimate
        frame["successes"] = np.nan
        frame["support"] = frame["n_predictions"].astype(float)
        frame["provisional"] = False  # label-free: no maturity to wait for
        drop = frame["reference_value"] - frame["value"]
        frame["verdict"] = np.where(
            frame["value"].isna() | (frame["support"] < rule.min_support), "insufficient",
            np.where(drop >= rule.min_drop, "breach",
                     np.where(drop < rule.min_drop - rule.resolve_margin, "clear", "hold")))
        return frame
    frame["successes"] = tp
    other = frame["fp"] if rule.metric == "precision" else frame["fn"]
    frame["support"] = tp + other.astype(float)
    frame["value"] = frame[rule.metric]
    return frame


def _settled(conn: Connection, ctx: ModelContext, rule: AlertRule, frame: pd.DataFrame,
             as_of: int | None) -> pd.Series:
    """Is the window as labelled as it will usually get (expected coverage at its age at least
    `settled_coverage` of the eventual coverage)? Early labels are few and noisier (wrong
    labels not yet corrected), so an unsettled window may only fire a sure collapse."""
    if "expected_coverage" not in frame or as_of is None:
        return pd.Series(True, index=frame.index)
    from monitor.metrics.maturity import coverage_curve

    _, shares = coverage_curve(conn, ctx, int(as_of))
    eventual = float(shares[-1]) if len(shares) else 0.0
    expected = frame["expected_coverage"].astype(float).fillna(0.0)
    return expected + 1e-9 >= rule.settled_coverage * eventual


def _drift(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec) -> pd.DataFrame:
    from monitor.drift.service import drift_frame

    features = None if rule.features == "all" else list(rule.features)
    frame = drift_frame(conn, ctx, spec, segment=segment_option(rule), features=features)
    if frame is None or len(frame) == 0:
        return _empty()
    frame = frame[frame["method"] == (rule.method or "js")].copy()
    frame["metric"] = f"drift_{rule.method or 'js'}"
    frame["class"] = frame["feature"]
    frame["support"] = frame["n_current"].astype(float)
    frame["reference_value"] = frame["threshold"]
    frame["provisional"] = False
    frame["verdict"] = np.where(frame["support"] < rule.min_support, "insufficient",
                                np.where(frame["drifted"].astype(bool), "breach", "clear"))
    return frame


def _fairness(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec) -> pd.DataFrame:
    from monitor.fairness.service import fairness_frame

    classes = rule_classes(rule, ctx.classes, ctx.minority_classes)
    attribute = None if rule.segments == "all" else list(rule.segments)
    frame = fairness_frame(conn, ctx, spec, classes=classes, attribute=attribute,
                           metric=rule.fairness_metric)
    if frame is None or len(frame) == 0:
        return _empty()
    frame = frame[frame["group"] != frame["reference_group"]].copy()
    frame["metric"] = f"fairness_{rule.fairness_metric}"
    frame["segment"] = frame["attribute"]
    frame["segment_value"] = frame["group"]
    frame["support"] = frame["support"].astype(float)
    frame["reference_value"] = frame["value"] - frame["difference"]
    frame["provisional"] = False
    flagged = frame["flagged"].fillna(False).astype(bool)
    frame["verdict"] = np.where(frame["support"] < rule.min_support, "insufficient",
                                np.where(flagged, "breach", "clear"))
    return frame

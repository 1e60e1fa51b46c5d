"""Observations for the alert rules, read through the domain services (never raw SQL).

`observe(conn, ctx, rule, spec)` returns one row per (window end, series) with
`rules.OBSERVATION_COLUMNS` (plus `verdict` for metrics that bring their own condition). The
source of each metric is registered in `monitor.registry.METRICS`:

- rates (recall, precision, ...): `rate_observations`, from `metrics_frame` for the window's
  counts and `reference_metrics` for the reference counts of the same segment value (the
  overall reference when that value has none). successes and support are the rate's
  registered counts: for recall tp and tp + fn (the sample size of recall is the labelled
  positives), for precision tp and tp + fp.
- recall_estimated: the label-free estimate of metrics_frame against the reference recall;
  breach when it is `min_drop` or more below (no labels, so no test and no maturity).
- drift: `drift_frame` rows of the rule's `method` (default js: defined for every feature, no
  false flags measured); breach = `drifted`. The feature goes in the `class` column; features
  with no stored histograms yet give no rows.
- fairness: `fairness_frame` rows of `fairness_metric`; breach = `flagged`; the attribute
  and group go in `segment` and `segment_value`.

Errors are not caught here: a failing service fails the model's tick, which reports it
(`monitor.tick`), instead of switching the rule off with a log line.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from monitor.alerts.rules import OBSERVATION_COLUMNS, pool_reference, rule_classes, segment_option
from monitor.config import AlertRule
from monitor.context import ModelContext
from monitor.rates import rate_counts
from monitor.registry import METRICS, Rate
from monitor.store.windows import OVERALL, WindowSpec, parse_segment_option

DEFAULT_DRIFT_METHOD = "js"
REFERENCE = ["segment", "segment_value", "class", "ref_successes", "ref_support"]


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
    frame = METRICS.load(rule.metric)(conn, ctx, rule, spec, as_of)
    if frame.empty:
        return _empty()
    frame["rule"] = rule.name
    frame["end"] = _epochs(frame["end"])
    for column in [*OBSERVATION_COLUMNS, "verdict"]:
        if column not in frame:  # what this metric does not have (drift: no successes)
            frame[column] = np.nan
    return frame[[*OBSERVATION_COLUMNS, "verdict"]].reset_index(drop=True)


def _rate(metric: str) -> Rate:
    rate: Rate = METRICS.entry(metric).options["rate"]
    return rate


def _reference(conn: Connection, ctx: ModelContext, rule: AlertRule, rate: Rate) -> pd.DataFrame:
    """The pooled reference counts of `rate` per series. From a reference file they change
    only when the file is loaded again (a new fingerprint and preparation time on the model
    row), so they are kept between ticks (REFERENCE_CACHE) under a key naming the database,
    the model, that load, the series and the classes; a `reference_period` (production
    counts, which late labels change) is read every time."""
    from monitor.metrics.service import reference_metrics

    sets = parse_segment_option(segment_option(rule), ctx.segment_sets)
    if () not in sets:
        sets = [(), *sets]
    key = None if ctx.config.reference_period else _reference_key(conn, ctx, rule, sets)
    if key is not None and key in REFERENCE_CACHE:
        REFERENCE_CACHE.move_to_end(key)
        return REFERENCE_CACHE[key].copy()
    reference = reference_metrics(conn, ctx, sets)
    if len(reference) == 0:
        return pd.DataFrame(columns=REFERENCE)
    reference = reference.copy()
    reference["ref_successes"], reference["ref_support"] = rate_counts(rate, reference)
    pooled = pool_reference(reference[REFERENCE])
    if key is not None:
        REFERENCE_CACHE[key] = pooled.copy()
        while len(REFERENCE_CACHE) > REFERENCE_CACHE_SIZE:
            REFERENCE_CACHE.popitem(last=False)
    return pooled


REFERENCE_CACHE: OrderedDict[tuple[object, ...], pd.DataFrame] = OrderedDict()
REFERENCE_CACHE_SIZE = 64


def _reference_key(conn: Connection, ctx: ModelContext, rule: AlertRule,
                   sets: list[tuple[str, ...]]) -> tuple[object, ...] | None:
    """What the reference counts of a rule depend on; None (no caching) before any load."""
    from sqlalchemy import select

    from monitor.store.models import MonitoredModel

    row = conn.execute(select(MonitoredModel.reference_fingerprint, MonitoredModel.reference_rows,
                              MonitoredModel.reference_prepared_at)
                       .where(MonitoredModel.id == ctx.model_id)).first()
    if row is None or row[0] is None or row[2] is None:
        return None
    return (conn.engine.url.render_as_string(hide_password=True), ctx.model_id, *row, tuple(sets),
            tuple(ctx.classes), rule.metric)


def _labelled(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec,
              as_of: int | None, rate: Rate, estimates: bool = False) -> pd.DataFrame:
    """metrics_frame rows of the rule's classes with the reference counts of `rate` joined;
    the label-free estimate only with `estimates` (a rate rule never reads it, and it is
    the larger part of the read)."""
    from monitor.metrics.service import metrics_frame

    classes = rule_classes(rule, ctx.classes, ctx.minority_classes)
    if not classes:
        return _empty()
    frame = metrics_frame(conn, ctx, spec, classes=classes, segment=segment_option(rule), as_of=as_of,
                          estimates=estimates)
    if frame.empty:
        return _empty()
    reference = _reference(conn, ctx, rule, rate)
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
    frame["settled"] = _settled(conn, ctx, rule, frame, as_of)
    return frame


def rate_observations(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec,
                      as_of: int | None) -> pd.DataFrame:
    """A rate from confusion counts (recall, precision, ...): tested by `rules.classify`."""
    rate = _rate(rule.metric)
    frame = _labelled(conn, ctx, rule, spec, as_of, rate)
    if frame.empty:
        return frame
    frame["successes"], frame["support"] = rate_counts(rate, frame)
    frame["value"] = frame[rule.metric]
    return frame


def estimated_observations(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec,
                           as_of: int | None) -> pd.DataFrame:
    """The label-free recall estimate against the reference recall; its own verdict."""
    frame = _labelled(conn, ctx, rule, spec, as_of, _rate("recall"), estimates=True)
    if frame.empty:
        return frame
    frame["value"] = frame["recall_estimated"].astype(float)
    frame["successes"] = np.nan
    frame["support"] = frame["n_predictions"].astype(float)
    frame["provisional"] = False  # label-free: no maturity to wait for
    drop = frame["reference_value"] - frame["value"]
    frame["verdict"] = np.where(
        frame["value"].isna() | (frame["support"] < rule.min_support), "insufficient",
        np.where(drop >= rule.min_drop, "breach",
                 np.where(drop < rule.min_drop - rule.resolve_margin, "clear", "hold")))
    return frame


def _settled(conn: Connection, ctx: ModelContext, rule: AlertRule, frame: pd.DataFrame,
             as_of: int | None) -> pd.Series:
    """Is the window as labelled as it will usually get (expected coverage at its age at least
    `settled_coverage` of the eventual coverage)? Early labels are few and noisier (wrong
    labels not yet corrected), so an unsettled window may only fire a sure collapse."""
    if as_of is None:
        return pd.Series(True, index=frame.index)
    from monitor.metrics.maturity import coverage_curve

    _, shares = coverage_curve(conn, ctx, int(as_of))
    eventual = float(shares[-1]) if len(shares) else 0.0
    expected = frame["expected_coverage"].astype(float).fillna(0.0)
    return expected + 1e-9 >= rule.settled_coverage * eventual


def drift_observations(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec,
                       as_of: int | None) -> pd.DataFrame:
    from monitor.drift.service import drift_frame, select_bins

    features = None
    if rule.features != "all":  # config checked they are model features; some may have no data yet
        stored = {bins.feature for bins in select_bins(conn, ctx, None)}
        features = [feature for feature in rule.features if feature in stored]
        if not features:
            return _empty()
    method = rule.method or DEFAULT_DRIFT_METHOD
    frame = drift_frame(conn, ctx, spec, segment=segment_option(rule), features=features)
    frame = frame[frame["method"] == method].copy()
    frame["metric"] = f"drift_{method}"
    frame["class"] = frame["feature"]
    frame["support"] = frame["n_current"].astype(float)
    frame["reference_value"] = frame["threshold"]
    frame["provisional"] = False
    frame["verdict"] = np.where(frame["support"] < rule.min_support, "insufficient",
                                np.where(frame["drifted"].astype(bool), "breach", "clear"))
    return frame


def fairness_observations(conn: Connection, ctx: ModelContext, rule: AlertRule, spec: WindowSpec,
                          as_of: int | None) -> pd.DataFrame:
    from monitor.fairness.service import fairness_frame

    classes = rule_classes(rule, ctx.classes, ctx.minority_classes)
    attribute = None if rule.segments == "all" else list(rule.segments)
    frame = fairness_frame(conn, ctx, spec, classes=classes, attribute=attribute,
                           metric=rule.fairness_metric)
    frame = frame[frame["group"] != frame["reference_group"]].copy()
    frame["metric"] = f"fairness_{rule.fairness_metric}"
    frame["segment"] = frame["attribute"]
    frame["segment_value"] = frame["group"]
    frame["support"] = frame["support"].astype(float)
    frame["reference_value"] = frame["value"] - frame["difference"]
    frame["provisional"] = False
    flagged = frame["flagged"].fillna(False).astype(bool)
    # a flag carries its own proof (a stricter interval under min_support, monitor.fairness):
    # a small group that is flagged breaches; a small one that is not cannot be judged
    frame["verdict"] = np.where(flagged, "breach",
                                np.where(frame["support"] < rule.min_support, "insufficient", "clear"))
    return frame

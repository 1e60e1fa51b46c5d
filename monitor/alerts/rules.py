"""Which series a rule watches, and what one window says about each series (pure).

A rule (`[[models.alerts]]`, docs/contract.md §2) watches one metric of some classes, overall and per
segment value, over a rolling window. A model without rules gets `default_rule()`: recall of
each minority class, overall and per configured segment, 7-day window, `min_support` 30,
`min_drop` 0.10.

`classify(observations, rules)` turns one row per (series, window end) into an *observation*:

- `provisional`: the window's labels are not mature; it can neither fire nor resolve. A
  window that is not provisional but not yet `settled` (expected label coverage below
  `settled_coverage` of the eventual coverage) is treated the same, except that a critical
  breach (a sure collapse) may fire from it.
- `insufficient`: fewer than `min_support` labelled cases (labelled positives for recall)
  AND an interval that proves nothing: never an alarm. A small series whose upper 95% bound
  lies below `reference - min_drop` (or below `floor`) has proven its drop whatever the
  support (recall 0 of 26 against 0.71): it is judged, by an exact one-sided binomial test of
  "rate below that level" with Benjamini-Hochberg over every small series of the window end
  (a family of its own, so tiny slices neither hide nor swamp the large ones); `breach` when
  proven and significant, else `hold`.
- `breach`: the drop below the reference is at least `min_drop` AND significant (one-sided
  two-proportion test, Benjamini-Hochberg across every series tested at the same window end,
  adjusted p <= `fdr`), OR the upper 95% bound is below `floor`.
- `clear`: the drop is below `min_drop - resolve_margin` and the value is at or above `floor`
  (hysteresis: a value hovering at the threshold is `hold`, which neither fires nor resolves).
- `hold`: anything in between.

Severity: `critical` when the upper bound lies more than `critical_drop` below the reference
(a collapse we are sure of, e.g. recall 0 on 40 positives) or below `floor - critical_drop`;
else `warning`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitor.config import AlertRule, ModelConfig
from monitor.registry import tested_metrics
from monitor.stats import benjamini_hochberg, drop_p_value, exact_below, wilson_interval

DEFAULT_RULE_NAME = "minority-recall"
LABELLED_METRICS = tested_metrics()  # rates whose drops are tested (monitor.registry.METRICS)

OBSERVATION_COLUMNS = [
    "rule", "metric", "end", "class", "segment", "segment_value", "successes", "support",
    "value", "reference_value", "reference_successes", "reference_support", "provisional",
    "settled",
]


def default_rule() -> AlertRule:
    return AlertRule(name=DEFAULT_RULE_NAME, metric="recall", classes="minority", segments="all",
                     window="7d", min_support=30, min_drop=0.10)


def rules_for(model: ModelConfig) -> list[AlertRule]:
    """The enabled rules of a model; the default rule when none is configured."""
    if not model.alerts:
        return [default_rule()]
    return [rule for rule in model.alerts if rule.enabled]


def rule_classes(rule: AlertRule, classes: Sequence[str], minority: Sequence[str]) -> list[str]:
    if rule.classes == "minority":
        return list(minority)
    if rule.classes == "all":
        return list(classes)
    return [c for c in rule.classes if c in classes] or list(rule.classes)


def segment_option(rule: AlertRule) -> str | None:
    """The `--segment`-style option for the services: None = overall + every segment set."""
    if rule.segments == "all":
        return None
    return ",".join(["*", *rule.segments])


def fingerprint(model: str, rule: str, metric: str, class_name: str, segment: str, value: str) -> str:
    """One problem, one alert: a stable id of (model, rule, metric, class, segment, value)."""
    key = "\x1f".join([model, rule, metric, class_name, segment, value])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def classify(observations: pd.DataFrame, rules: dict[str, AlertRule]) -> pd.DataFrame:
    """Add low, high, p_value, q_value, observation and severity to `observations`.

    `observations` has OBSERVATION_COLUMNS; for labelled metrics `successes`/`support` are
    the window's tp and tp+fn (recall) or tp+fp (precision), and the reference counts likewise.
    For other metrics (drift, fairness, recall_estimated) the caller sets `observation`
    beforehand in a column `verdict` ('breach'/'clear'/'insufficient') and no test runs.
    Benjamini-Hochberg runs per window end over every labelled series tested there.
    """
    frame = observations.copy().reset_index(drop=True)
    if frame.empty:
        for column in ("low", "high", "p_value", "q_value", "observation", "severity"):
            frame[column] = pd.Series(dtype="object")
        return frame
    rule_of = frame["rule"].map(rules)
    param = {name: rule_of.map(lambda r, name=name: getattr(r, name)) for name in
             ("min_support", "min_drop", "floor", "fdr", "resolve_margin", "critical_drop",
              "test_margin")}
    min_drop = param["min_drop"].to_numpy(dtype=float)
    floor = param["floor"].astype(float).to_numpy()
    margin = param["resolve_margin"].to_numpy(dtype=float)
    critical_drop = param["critical_drop"].to_numpy(dtype=float)

    labelled = frame["metric"].isin(LABELLED_METRICS).to_numpy()
    successes = frame["successes"].to_numpy(dtype=float)
    support = frame["support"].to_numpy(dtype=float)
    low, high = wilson_interval(successes, support)
    # the value of a labelled metric comes from its counts: recall 0 with positives is 0, not NaN
    value = np.where(labelled, np.divide(successes, support, out=np.full(len(frame), np.nan),
                                         where=support > 0), frame["value"].to_numpy(dtype=float))
    frame["value"] = value
    frame["low"] = np.where(labelled, low, np.nan)
    frame["high"] = np.where(labelled, high, np.nan)
    reference = frame["reference_value"].to_numpy(dtype=float)
    provisional = frame["provisional"].fillna(False).to_numpy(dtype=bool)
    small = ~(support >= param["min_support"].to_numpy(dtype=float))
    # the level the interval must lie below to prove a drop: reference - min_drop, or the floor
    with np.errstate(invalid="ignore"):
        threshold = np.fmax(reference - min_drop, floor)
        proven = high < threshold
    # min_support only stops judgments the interval cannot make (principle: honest statistics)
    insufficient = small & ~proven

    p = drop_p_value(successes, support, frame["reference_successes"].to_numpy(dtype=float),
                     frame["reference_support"].to_numpy(dtype=float),
                     param["test_margin"].to_numpy(dtype=float) * min_drop)
    # under min_support the z-test is too optimistic: an exact binomial test of the claim the
    # interval makes (rate below the threshold), in a BH family of its own (every small series)
    p = np.where(small, exact_below(successes, support, threshold), p)
    tested = labelled & ~provisional & (support > 0)
    p = np.where(tested, p, np.nan)
    q = np.full(len(frame), np.nan)
    for _, index in frame.groupby("end").indices.items():
        for family in (index[~small[index]], index[small[index]]):
            q[family] = benjamini_hochberg(p[family])
    frame["p_value"], frame["q_value"] = p, q

    drop = reference - value
    significant = q <= param["fdr"].to_numpy(dtype=float)
    has_floor = ~np.isnan(floor)
    below_floor = has_floor & (high < floor)
    breach = np.where(small, proven & significant,
                      (significant & (drop >= min_drop)) | below_floor)
    clear = ~(drop >= min_drop - margin) & ~(has_floor & (value < floor))
    clear &= ~np.isnan(value)
    observation = np.where(breach, "breach", np.where(clear, "clear", "hold")).astype(object)
    if "verdict" in frame:
        verdict = frame["verdict"].to_numpy(dtype=object)
        observation = np.where(labelled, observation, verdict)
    observation = np.where(labelled & insufficient, "insufficient", observation)
    observation = np.where(provisional, "provisional", observation)
    collapse = (high < reference - critical_drop) | (has_floor & (high < floor - critical_drop))
    critical = labelled & collapse
    if "settled" in frame:
        # an unsettled window (labels still arriving) waits, unless it shows a sure collapse
        settled = frame["settled"].astype(object).where(frame["settled"].notna(), True).to_numpy(dtype=bool)
        waits = labelled & ~settled & ~((observation == "breach") & critical)
        observation = np.where(waits & (observation != "insufficient"), "provisional", observation)
    frame["observation"] = observation
    frame["severity"] = np.where(critical, "critical", "warning")
    return frame


def pool_reference(reference: pd.DataFrame) -> pd.DataFrame:
    """Empirical-Bayes partial pooling of per-subgroup reference rates toward the overall one.

    `reference` has segment, segment_value, class, ref_successes, ref_support (the overall
    series has segment "*"). A subgroup's reference rate is a sample too: with 100 labelled
    positives its recall is uncertain by +-0.08, and a lucky reference makes every ordinary
    window look like a drop. Within each (segment attribute, class), the spread of the
    subgroup rates beyond their sampling noise (tau^2, method of moments) says how different
    the subgroups really are; each rate is shrunk toward the attribute's pooled rate with
    weight tau^2 / (tau^2 + v_i). Subgroups that truly differ keep their own reference;
    subgroups that differ only by noise share the pooled one. The shrunk rate is returned as
    counts on the subgroup's own support, so the drop test does not treat the pooled rate as
    more precise than the subgroup's reference data.
    """
    frame = reference.copy()
    frame["ref_successes"] = frame["ref_successes"].astype(float)
    frame["ref_support"] = frame["ref_support"].astype(float)
    subgroup = (frame["segment"] != "*") & (frame["ref_support"] > 0)
    for _, index in frame[subgroup].groupby(["segment", "class"]).groups.items():
        part = frame.loc[index]
        n = part["ref_support"].to_numpy(dtype=float)
        x = part["ref_successes"].to_numpy(dtype=float)
        if len(part) < 2 or n.sum() <= 0:
            continue
        pooled = x.sum() / n.sum()
        if pooled <= 0 or pooled >= 1:
            continue
        rates = x / n
        sampling = pooled * (1 - pooled) / n
        spread = float(np.average((rates - pooled) ** 2, weights=n))
        tau2 = max(0.0, spread - float(np.average(sampling, weights=n)))
        weight = tau2 / (tau2 + sampling)
        shrunk = weight * rates + (1 - weight) * pooled
        # the shrunk rate keeps the subgroup's own support: pooling corrects a lucky reference
        # but does not claim more precision than the subgroup's data (a small true difference
        # that tau^2 could not see must not become a significant "drop" in every window)
        frame.loc[index, "ref_successes"] = shrunk * n
        frame.loc[index, "ref_support"] = n
    return frame

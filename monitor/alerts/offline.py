"""Alert rules on in-memory rows, without a database (benchmarks, what-if analysis).

The same decision path as the engine (`rules.classify`, `lifecycle.advance`) fed with window
counts computed by pandas from labelled rows, assuming every label has arrived (windows are
settled). `window_observations` builds the observations; `replay` runs a rule over them and
returns every transition; `naive_onsets` is the baseline rule "point recall below the
reference minus min_drop" (fires at every such window, no test, no support, no memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitor.alerts.lifecycle import SeriesState, advance
from monitor.alerts.rules import OBSERVATION_COLUMNS, classify, pool_reference
from monitor.config import AlertRule
from monitor.timeutil import parse_duration

DAY = 86400


def _daily(rows: pd.DataFrame, cls: str, segments: Sequence[str], start: int) -> pd.DataFrame:
    """tp and support of `cls` per (day, segment, segment_value), the overall series included."""
    positive = rows["label"].to_numpy() == cls
    hit = positive & (rows["prediction"].to_numpy() == cls)
    day = (rows["ts"].to_numpy(dtype=np.int64) - start) // DAY
    base = pd.DataFrame({"day": day, "tp": hit.astype(np.int64), "support": positive.astype(np.int64)})
    parts = [base.groupby("day", as_index=False)[["tp", "support"]].sum().assign(segment="*", segment_value="*")]
    for attribute in segments:
        frame = base.assign(segment_value=rows[attribute].astype(str).to_numpy())
        sums = frame.groupby(["day", "segment_value"], as_index=False)[["tp", "support"]].sum()
        parts.append(sums.assign(segment=attribute))
    return pd.concat(parts, ignore_index=True)


def _reference(reference: pd.DataFrame, cls: str, segments: Sequence[str]) -> pd.DataFrame:
    rows = reference.assign(ts=0)
    daily = _daily(rows, cls, segments, 0)
    return daily.groupby(["segment", "segment_value"], as_index=False)[["tp", "support"]].sum()


def window_observations(rows: pd.DataFrame, reference: pd.DataFrame, *, cls: str,
                        segments: Sequence[str], start: int, days: int, rule: AlertRule,
                        pool: bool = True) -> pd.DataFrame:
    """Observations of `rule` (recall of `cls`) for window ends start + window .. start + days.

    `rows` and `reference` need columns ts (epoch s; not needed in the reference), prediction,
    label and the segment columns. `pool`: partial pooling of subgroup references as the
    engine does (`rules.pool_reference`); False compares with each subgroup's raw reference.
    """
    window_days = parse_duration(rule.window) // DAY
    daily = _daily(rows, cls, segments, start)
    keys = daily[["segment", "segment_value"]].drop_duplicates().reset_index(drop=True)
    grid = keys.merge(pd.DataFrame({"day": np.arange(days)}), how="cross")
    daily = grid.merge(daily, on=["segment", "segment_value", "day"], how="left").fillna({"tp": 0, "support": 0})
    daily = daily.sort_values(["segment", "segment_value", "day"])
    grouped = daily.groupby(["segment", "segment_value"], sort=False)
    rolled = grouped[["tp", "support"]].rolling(window_days, min_periods=window_days).sum().reset_index(drop=True)
    out = daily[["segment", "segment_value", "day"]].reset_index(drop=True).join(rolled)
    out = out.dropna(subset=["tp"])
    ref = _reference(reference, cls, segments).rename(columns={"tp": "ref_successes", "support": "ref_support"})
    if pool:
        ref = pool_reference(ref.assign(**{"class": cls})).drop(columns=["class"])
    ref = ref.rename(columns={"ref_successes": "reference_successes", "ref_support": "reference_support"})
    out = out.merge(ref, on=["segment", "segment_value"], how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["reference_value"] = out["reference_successes"] / out["reference_support"]
    out["end"] = start + (out["day"].astype(np.int64) + 1) * DAY
    out = out.rename(columns={"tp": "successes"})
    out["value"] = np.nan
    out["rule"], out["metric"], out["class"] = rule.name, "recall", cls
    out["provisional"], out["settled"] = False, True
    return out[OBSERVATION_COLUMNS].reset_index(drop=True)


def replay(observations: pd.DataFrame, rule: AlertRule) -> pd.DataFrame:
    """Run `rule` over the observations; one row per transition (segment, segment_value, end,
    transition, severity), in time order per series."""
    from monitor.alerts.engine import policy_for

    classified = classify(observations, {rule.name: rule}).sort_values(["segment", "segment_value", "end"])
    policy = policy_for(rule)
    records = []
    for (segment, value), group in classified.groupby(["segment", "segment_value"], sort=False):
        state = SeriesState()
        for end, observation, severity in zip(group["end"], group["observation"], group["severity"], strict=True):
            state, transitions = advance(state, observation, severity, int(end), policy)
            records += [(segment, value, int(end), t, severity) for t in transitions]
    return pd.DataFrame(records, columns=["segment", "segment_value", "end", "transition", "severity"])


def naive_onsets(observations: pd.DataFrame, min_drop: float) -> pd.DataFrame:
    """Windows where the naive rule starts firing: point recall < reference - min_drop while
    the previous window of the series did not."""
    frame = observations.sort_values(["segment", "segment_value", "end"]).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = frame["successes"] / frame["support"]
    frame["on"] = (recall < frame["reference_value"] - min_drop).to_numpy()
    previous = frame.groupby(["segment", "segment_value"])["on"].shift(1, fill_value=False)
    onsets = frame[frame["on"] & ~previous.astype(bool)]
    return onsets[["segment", "segment_value", "end"]].reset_index(drop=True)

"""Data access for the Drift page: drift records, features ranked, one feature's distribution.

Everything goes through the read layer (`monitor.read.quality`) inside one read-only
transaction (`common.read`); callbacks get `Result`s whose `message`/`hint` explain an empty state.
"""

from __future__ import annotations

import pandas as pd

from dashboards.data import common, core
from dashboards.data.core import Result
from dashboards.filters import OVERALL, Filters
from monitor.read import quality
from monitor.registry import DRIFT_METHODS
from monitor.timeutil import parse_time

# the drift methods, from the registry; js first (the default of drift alert rules)
METHODS = ("js", *(name for name in DRIFT_METHODS.names() if name != "js"))
METHOD_LABELS = {name: DRIFT_METHODS.entry(name).options["label"] for name in METHODS}
NO_REFERENCE = "No drift reference for this model yet"
NO_REFERENCE_HINT = ("Set `reference = ...` (a labelled file) or `reference_period` in monitor.toml and "
                     "run `monitor ingest`: drift compares each window with the reference.")


def drift_records(filters: Filters) -> Result:
    """Drift records of the filters' model, window and range; `end` as Timestamps.

    `filters.segment` "*" gives the overall series only, an attribute gives its values and the
    overall series. meta: `segment` (the attribute or "*"), `features` (in config order).
    """
    config = common.config()
    with common.read() as conn:
        ctx = core.context(conn, config, filters.model)
        if ctx is None:
            return core.no_data(filters.model)
        spec = core.window_spec(conn, ctx, filters)
        if spec is None:
            return core.no_data(filters.model)
        features = quality.drift_features(conn, ctx)
        if not features:
            return Result(pd.DataFrame(), NO_REFERENCE, NO_REFERENCE_HINT)
        segment = OVERALL if filters.segment == OVERALL else f"{OVERALL},{filters.segment}"
        try:
            frame = quality.drift(conn, ctx, spec, segment=segment)
        except ValueError as error:  # a window that is not a multiple of the drift bucket
            return Result(pd.DataFrame(), str(error), "Pick a longer window in the filter bar.")
    if frame.empty:
        return Result(frame, "No drift records in this range", "Widen the date range or wait for new data.")
    frame = frame.assign(end=pd.to_datetime(frame["end"], utc=True))
    return Result(frame, meta={"segment": filters.segment, "features": features})


def segment_values(frame: pd.DataFrame, segment: str) -> list[str]:
    """The values of `segment` present in the records ("*" first for the overall series)."""
    values = sorted(frame.loc[frame["segment"] == segment, "segment_value"].unique()) if segment != OVERALL else []
    return [OVERALL, *values]


def series(frame: pd.DataFrame, segment: str, segment_value: str) -> pd.DataFrame:
    """The records of one series: overall when `segment_value` is "*"."""
    if segment_value == OVERALL or segment == OVERALL:
        return frame[frame["segment"] == OVERALL]
    return frame[(frame["segment"] == segment) & (frame["segment_value"] == segment_value)]


def rank_features(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """Features at the newest window end, most drifted first by `method` (p-values ascending),
    with how many methods flag each: feature, value, threshold, drifted, methods_drifted,
    n_current, end."""
    columns = ["feature", "value", "threshold", "drifted", "methods_drifted", "n_current", "end"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    latest = frame[frame["end"] == frame["end"].max()]
    flagged = latest.groupby("feature")["drifted"].sum().rename("methods_drifted")
    chosen = latest[latest["method"] == method].set_index("feature")
    ranked = chosen.join(flagged).reset_index()
    ranked = ranked.sort_values("value", ascending=method in DRIFT_METHODS.names(test="pvalue"), na_position="last", kind="stable")
    ranked["methods_drifted"] = ranked["methods_drifted"].astype(int)
    return ranked[columns].reset_index(drop=True)


def distribution(filters: Filters, feature: str, segment_value: str = OVERALL,
                 end: pd.Timestamp | str | None = None) -> Result:
    """Reference vs current shares of `feature` (coarse bins) for the window ending at `end`
    (default: the newest end of the range), overall or for one value of the filters' segment."""
    config = common.config()
    with common.read() as conn:
        ctx = core.context(conn, config, filters.model)
        if ctx is None:
            return core.no_data(filters.model)
        spec = core.window_spec(conn, ctx, filters)
        if spec is None or spec.end is None:
            return core.no_data(filters.model)
        if feature not in quality.drift_features(conn, ctx):
            return Result(pd.DataFrame(), f"Feature {feature!r} is not monitored", "Pick a feature from the list.")
        last = spec.end - spec.end % spec.step
        when = parse_time(str(end)) if end is not None else last
        segment = filters.segment if filters.segment != OVERALL and segment_value != OVERALL else None
        frame = quality.distribution(conn, ctx, feature=feature, window=spec.window, end=when,
                                    segment=segment, segment_value=segment_value if segment else None)
    meta = {"feature": feature, "end": pd.Timestamp(when, unit="s", tz="UTC"), "segment_value": segment_value}
    if frame["current_n"].sum() == 0:
        return Result(frame, "No rows in this window for this series", "Pick another window or segment value.", meta)
    return Result(frame, meta=meta)

"""Evidence attached to an incident: what else moved in the root-cause slice around the onset.

Three kinds of short strings, at most `TOP` of the first, read through the domain services
(never raw SQL); none claims a cause, each states a measured change:

- the features drifted in the slice (Jensen-Shannon distance beyond its threshold,
  `drift_frame`) whose drift rose most from the window before the onset to the window that fired;
- the predicted-class mix shift in the slice (`__prediction__` of `drift_frame`), when drifted;
- estimated vs realized recall of the class in the slice (`metrics_frame`): an estimate that
  stays high while the realized recall falls means the scores did not see the change (concept
  drift or a broken input, not a covariate shift); an estimate that falls with it means they did.

A slice the services cannot read (an intersection that is not a configured segment set, a
window the drift buckets do not divide, no histograms or scores) gives fewer strings, never
an error: evidence must not stop an incident from opening.
"""

from __future__ import annotations

import math

from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.store.slices import SEPARATOR, slice_pairs
from monitor.store.windows import OVERALL, WindowSpec

TOP = 3
METHOD = "js"
PREDICTION = "__prediction__"
GAP = 0.10  # estimate above realized by this much: the scores did not see the drop


def where(segment: str, value: str) -> str:
    return "overall" if segment == OVERALL else f"{segment}={value}"


def _option(segment: str) -> str:
    return OVERALL if segment == OVERALL else segment


def incident_evidence(conn: Connection, ctx: ModelContext, *, cls: str, segment: str, segment_value: str,
                      end: int, window: int) -> list[str]:
    """Short strings, drift first (largest rise first), then the prediction mix, then the
    estimate. An intersection the services cannot read (not a configured segment set) is
    described by its single attributes instead (`region=south` for `sex&region=F&south`)."""
    lines = [*_drift(conn, ctx, segment, segment_value, end, window),
             *_estimate(conn, ctx, cls, segment, segment_value, end, window)]
    pairs = slice_pairs(segment, segment_value) if SEPARATOR in segment else None
    if lines or not pairs:  # not an intersection, or one whose values hold `&` (ambiguous)
        return lines
    for attribute, value in pairs:
        lines += _drift(conn, ctx, attribute, value, end, window)
    for attribute, value in pairs:
        lines += _estimate(conn, ctx, cls, attribute, value, end, window)
    return lines


def _drift(conn: Connection, ctx: ModelContext, segment: str, segment_value: str, end: int,
           window: int) -> list[str]:
    from monitor.drift.service import drift_frame

    try:
        frame = drift_frame(conn, ctx, WindowSpec(window=window, step=window, start=end - window, end=end),
                            segment=_option(segment))
    except ValueError:  # not a configured segment set, or a window the drift buckets refuse
        return []
    frame = frame[(frame["method"] == METHOD) & (frame["segment"] == segment)
                  & (frame["segment_value"] == segment_value)] if len(frame) else frame
    if frame.empty:
        return []
    ends = sorted(frame["end"].unique())
    latest = frame[frame["end"] == ends[-1]].set_index("feature")
    now, drifted = latest["value"], latest["drifted"].astype(bool)
    before = frame[frame["end"] == ends[0]].set_index("feature")["value"] if len(ends) > 1 else None
    rise = now - before.reindex(now.index) if before is not None else now
    place = where(segment, segment_value)
    lines = []
    # only features the drift test flags in the slice now, those that rose most first
    features = rise[drifted.reindex(rise.index, fill_value=False)]
    features = features.drop(index=[f for f in features.index if f.startswith("__")]).dropna()
    for feature in features.sort_values(ascending=False).index[:TOP]:
        if not features[feature] > 0:
            break
        lines.append(f"feature {feature} drifted in {place}: JS {now[feature]:.2f}"
                     + (f" (was {before[feature]:.2f} a window earlier)" if before is not None
                        and _finite(before.get(feature)) else ""))
    if PREDICTION in now.index and _finite(now[PREDICTION]) and drifted.get(PREDICTION, False):
        was = before.get(PREDICTION) if before is not None else None
        lines.append(f"predicted-class mix in {place} shifted: JS {now[PREDICTION]:.2f}"
                     + (f" (was {was:.2f})" if _finite(was) else ""))
    return lines


def _estimate(conn: Connection, ctx: ModelContext, cls: str, segment: str, segment_value: str, end: int,
              window: int) -> list[str]:
    from monitor.metrics.service import metrics_frame

    try:
        frame = metrics_frame(conn, ctx, WindowSpec(window=window, step=window, start=end, end=end),
                              classes=[cls], segment=_option(segment), as_of=end)
    except ValueError:
        return []
    if frame.empty or "recall_estimated" not in frame:
        return []
    rows = frame[(frame["segment"] == segment) & (frame["segment_value"] == segment_value)]
    if rows.empty:
        return []
    row = rows.iloc[-1]
    estimated, realized = row["recall_estimated"], row["recall"]
    if not (_finite(estimated) and _finite(realized)):
        return []
    place = where(segment, segment_value)
    if estimated - realized >= GAP:
        return [f"estimated recall in {place} {estimated:.2f} vs realized {realized:.2f}: the scores did not "
                "see the drop (points to concept drift or a broken input, not a covariate shift)"]
    return [f"estimated recall in {place} {estimated:.2f} vs realized {realized:.2f}: the scores saw the drop"]


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))

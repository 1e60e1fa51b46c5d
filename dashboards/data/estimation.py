"""Data access for the Classes page's best current recall: which calibration the label-free
estimates of each window used (`monitor.read.calibration`), for the note beside the figure,
and whether the label-shift estimate (BBSE, `monitor.read.quality.label_shift`) disagrees with
the score-based one (CBPE) on the class's prevalence in that window.

The rates themselves (`recall_best`, `recall_estimated`, their intervals and
`estimation_warning`) are columns of the metrics records `core.class_metrics` already reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboards.data import common
from dashboards.data.core import cached, class_metrics, context
from dashboards.filters import Filters
from monitor.read import calibration, quality
from monitor.store.windows import WindowSpec


@dataclass(frozen=True)
class EstimateNote:
    """What the page says beside the best current recall of one class, for its newest window."""

    calibration: str | None  # "reference", "rolling" or None (no scored predictions)
    fit_start: pd.Timestamp | None
    fit_end: pd.Timestamp | None
    labels: int | None
    warning: str | None  # the newest window's estimation_warning
    end: pd.Timestamp | None
    label_shift: str | None = None  # the newest window's label_shift_warning for the class (overall)

    @property
    def sentence(self) -> str:
        """One sentence: which calibration, fitted on which span, or why there is no estimate."""
        if self.calibration is None:
            return ("No label-free estimate: this model logs no scores, so the best current recall is the "
                    "realized one.")
        when = f" for the window ending {self.end:%Y-%m-%d}" if self.end is not None else ""
        if self.calibration == "rolling" and self.fit_start is not None and self.fit_end is not None:
            labels = f", {self.labels:,} labels" if self.labels else ""
            return (f"Estimates{when} use the rolling calibration refitted on the matured predictions of "
                    f"{self.fit_start:%Y-%m-%d} to {self.fit_end:%Y-%m-%d}{labels}.")
        return f"Estimates{when} use the reference calibration (fitted on the reference scores)."


def _stamp(value: Any) -> pd.Timestamp | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(int(value), unit="s", tz="UTC")


@cached
def estimate_note(filters: Filters) -> EstimateNote | None:
    """The calibration and warning of the filters' class in its newest window with an estimate
    (None without data)."""
    result = class_metrics(filters)
    if result.empty or filters.cls is None:
        return None
    part = result.frame[result.frame["class"] == filters.cls]
    if part.empty:
        return None
    scored = part[part["recall_estimated"].notna()] if "recall_estimated" in part else part.iloc[:0]
    if scored.empty:
        return EstimateNote(None, None, None, None, None, None)
    newest = scored.sort_values("end").iloc[-1]
    end = pd.Timestamp(newest["end"])
    config = common.config()
    with common.read() as conn:
        ctx = context(conn, config, filters.model)
        if ctx is None:
            return None
        trace = calibration.calibrations(conn, ctx, [int(end.timestamp())], filters.window_seconds)
        at = int(end.timestamp())
        shift = quality.label_shift(conn, ctx, WindowSpec(filters.window_seconds, filters.step_seconds, at, at),
                                    segment="*", classes=[filters.cls])
    flagged = shift["label_shift_warning"].dropna()
    row = trace.iloc[0] if len(trace) else None
    warning = newest.get("estimation_warning")
    kind = None if row is None or row["calibration"] is None else str(row["calibration"])
    return EstimateNote(
        kind or "reference",  # an estimate with no recorded use: the reference calibration
        None if row is None else _stamp(row["calibration_fit_start"]),
        None if row is None else _stamp(row["calibration_fit_end"]),
        None if row is None or pd.isna(row["calibration_labels"]) else int(row["calibration_labels"]),
        None if warning is None or pd.isna(warning) else str(warning), end,
        str(flagged.iloc[0]) if len(flagged) else None)

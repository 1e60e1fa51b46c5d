"""Pure figure functions for the Fairness page (plotly only; data in, figure out).

- `gap_over_time`: per attribute and window end, the gap the ratio interval supports (the
  bound nearest parity of the group furthest from it; 1 = parity), the tolerance band,
  flagged windows marked; the group, its ratio, interval and support in the hover.
- `group_bars`: one window's groups: rate with its 95% interval, the reference group's value
  and the tolerance band around it, flagged groups in the alarm colour, tiny groups grey.
Okabe-Ito colours (`dashboards.figures.style`); an empty input gives `empty_figure` saying why.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.figures.style import (
    BAD,
    GOOD,
    NEUTRAL,
    PALETTE,
    array,
    axis_spec,
    color,
    empty_figure,
    hline_spec,
    hrect_spec,
    layout_spec,
    make_figure,
    plain,
    plain_frame,
    rgba,
)
from monitor.fairness.gaps import REST

METRIC_NAMES = {"tpr": "true positive rate", "fpr": "false positive rate",
                "precision": "precision", "selection_rate": "selection rate"}


def _metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def gap_over_time(gaps: pd.DataFrame, *, tolerance: Sequence[float] = (0.8, 1.25),
                  metric: str = "tpr", cls: str = "", window: str = "",
                  attributes: Sequence[str] | None = None) -> go.Figure:
    """Per attribute over window ends, the ratio the interval supports (`supported`, from
    `dashboards.data.fairness.supported_gaps`): a line at 1 means no group's interval
    excludes parity; below the tolerance line, a gap the data prove."""
    gaps, metric, cls, window = plain_frame(gaps), plain(metric), plain(cls), plain(window)
    attributes = None if attributes is None else [plain(a) for a in attributes]
    title = (f"Largest {_metric_name(metric)} gap between groups that the 95% interval supports, "
             f"class '{cls}' ({window} windows)")
    if attributes is not None:
        gaps = gaps[gaps["attribute"].isin(list(attributes))]
    gaps = gaps[gaps["supported"].notna()] if "supported" in gaps and not gaps.empty else gaps.iloc[0:0]
    if gaps.empty:
        return empty_figure("No gap to show in this range", title=title,
                            hint="Groups need labelled predictions (and positives for tpr) "
                                 "in the same window; widen the date range or wait for labels.")
    low_band = float(tolerance[0])
    line, annotations = hline_spec(low_band, line={"color": GOOD, "dash": "dash", "width": 1},
                                   text=f"tolerance {low_band:g} (four-fifths rule)", text_position="bottom right")
    layout = layout_spec(title=title)
    layout["shapes"] = [hrect_spec(low_band, 1.0, fillcolor=rgba(GOOD, 0.10)), line]
    layout["annotations"] = annotations
    layout["xaxis"] = axis_spec(title={"text": "window end (UTC)"})
    layout["yaxis"] = axis_spec(title={"text": "ratio supported by the interval (1 = parity)"},
                                range=[0, 1.05], tickformat=".1f")
    data: list[dict] = []
    for index, (key, part) in enumerate(gaps.groupby("attribute", sort=True)):
        attribute = str(key)  # attribute names are text; pandas types a group key as any scalar
        part = part.sort_values("end")
        tiny = np.where(part["tiny"].astype(bool), " (tiny group)", "")
        custom = np.stack([part["group"].astype(str), part["reference_group"].astype(str),
                           part["ratio"], part["ratio_low"], part["ratio_high"],
                           part["support"].astype(int), tiny], axis=-1)
        data.append({"customdata": array(custom),
                     "hovertemplate": ("%{x|%Y-%m-%d %H:%M}<br>" + attribute + " %{customdata[0]} vs "
                                       "%{customdata[1]}: ratio %{customdata[2]:.2f}, 95% interval "
                                       "[%{customdata[3]:.2f}, %{customdata[4]:.2f}], support "
                                       "%{customdata[5]}%{customdata[6]}<br>supported: %{y:.2f}"
                                       "<extra></extra>"),
                     "line": {"color": color(index), "width": 2}, "mode": "lines+markers", "name": attribute,
                     "x": list(part["end"]), "y": array(part["supported"]), "type": "scatter"})
        flagged = part[part["flagged"].astype(bool)]
        if not flagged.empty:
            data.append({"hoverinfo": "skip", "marker": {"color": BAD, "line": {"width": 1}, "size": 11, "symbol": "x"},
                         "mode": "markers", "name": f"{attribute} flagged", "x": array(flagged["end"]),
                         "y": array(flagged["supported"]), "type": "scatter"})
    return make_figure(data, layout)


def group_bars(frame: pd.DataFrame, *, attribute: str, metric: str = "tpr", cls: str = "",
               end: pd.Timestamp | None = None, tolerance: Sequence[float] = (0.8, 1.25),
               min_support: int = 30) -> go.Figure:
    """One window's groups of `attribute`: rate and 95% interval per group."""
    frame, attribute, metric, cls = plain_frame(frame), plain(attribute), plain(metric), plain(cls)
    when = f" ending {pd.Timestamp(end):%Y-%m-%d %H:%M} UTC" if end is not None else ""
    title = f"{_metric_name(metric).capitalize()} by {attribute}, class '{cls}', window{when}"
    part = frame[(frame["attribute"] == attribute)] if not frame.empty else frame
    if part.empty:
        return empty_figure(f"No groups of '{attribute}' in this window", title=title,
                            hint="Choose another window end or segment, or wait for labels.")
    part = part.sort_values("group")
    # the named reference group (others are compared with it; it with the rest), if any
    named = part.loc[part["reference_group"] != REST, "reference_group"]
    reference = str(named.mode().iloc[0]) if not named.empty else None
    own = part.loc[part["group"] == reference, "value"]
    reference_value = float(own.iloc[0]) if reference is not None and not own.empty else None
    colors = [BAD if flagged else NEUTRAL if group == reference or support < min_support
              else PALETTE[0]
              for group, flagged, support in zip(part["group"], part["flagged"].astype(bool),
                                                  part["support"], strict=True)]
    value = part["value"].to_numpy(dtype=float)
    bars = {
        "customdata": np.stack([part["ratio"], part["ratio_low"], part["ratio_high"]], axis=-1),
        "error_y": {"array": np.nan_to_num(part["high"].to_numpy(dtype=float) - value),
                    "arrayminus": np.nan_to_num(value - part["low"].to_numpy(dtype=float)),
                    "color": "#333", "symmetric": False, "type": "data"},
        "hovertemplate": ("%{x}: %{y:.3f} (%{text})<br>ratio to reference %{customdata[0]:.2f} "
                          "[%{customdata[1]:.2f}, %{customdata[2]:.2f}]<extra></extra>"),
        "insidetextanchor": "start", "marker": {"color": colors}, "name": _metric_name(metric),
        "text": [f"n={int(s)}" + (" · no data" if np.isnan(v) else " · tiny" if s < min_support else "")
                 for s, v in zip(part["support"], value, strict=True)],
        # support at the foot of each bar; outside when the bar is too short to hold it
        "textposition": ["inside" if v >= 0.1 else "outside" for v in np.nan_to_num(value)],
        "x": array(part["group"].astype(str)), "y": np.nan_to_num(value, nan=0.0), "type": "bar"}
    shapes: list[dict] = []
    if reference is None:
        title += "<br><sup>each group compared with all other groups together; orange: flagged</sup>"
    elif reference_value is not None and not np.isnan(reference_value):
        low, high = reference_value * tolerance[0], min(reference_value * tolerance[1], 1.0)
        shapes = [hrect_spec(low, high, fillcolor=rgba(GOOD, 0.12)),
                  hline_spec(reference_value, line={"color": GOOD, "dash": "dash", "width": 1})[0]]
        # said in a subtitle, not an annotation, so it never covers a bar or its interval
        title += (f"<br><sup>reference {reference} = {reference_value:.2f} (dashed); shaded: "
                  f"x{tolerance[0]:g} to x{tolerance[1]:g} of it; orange: flagged; "
                  f"grey: reference (itself compared with the rest) or tiny, support under "
                  f"{min_support}</sup>")
    layout = layout_spec(title=title)
    if shapes:
        layout["shapes"] = shapes
    layout["showlegend"] = False
    layout["margin"]["t"] = 90
    layout["xaxis"] = axis_spec(title={"text": attribute})
    layout["yaxis"] = axis_spec(title={"text": f"{_metric_name(metric)} (0-1)"}, range=[0, 1.1])
    return make_figure([bars], layout)

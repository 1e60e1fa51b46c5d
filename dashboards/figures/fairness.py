"""Pure figure functions for the Fairness page (plotly only; data in, figure out).

- `gap_over_time`: the largest gap per attribute (ratio min / max of the groups, 1 = parity)
  per window end, its 95% interval as a band, the tolerance band, flagged windows marked.
- `group_bars`: one window's groups: rate with its 95% interval, the reference group's value
  and the tolerance band around it, flagged groups in the alarm colour.
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
    base_layout,
    color,
    empty_figure,
    rgba,
)

METRIC_NAMES = {"tpr": "true positive rate", "fpr": "false positive rate",
                "precision": "precision", "selection_rate": "selection rate"}


def _metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def gap_over_time(gaps: pd.DataFrame, *, tolerance: Sequence[float] = (0.8, 1.25),
                  metric: str = "tpr", cls: str = "", window: str = "",
                  attributes: Sequence[str] | None = None) -> go.Figure:
    """Ratio min / max of the groups per attribute over window ends, with its interval."""
    title = (f"Largest {_metric_name(metric)} gap between groups, class '{cls}' "
             f"({window} windows)")
    if attributes is not None:
        gaps = gaps[gaps["attribute"].isin(list(attributes))]
    gaps = gaps[gaps["ratio"].notna()] if not gaps.empty else gaps
    if gaps.empty:
        return empty_figure("No gap to show in this range", title=title,
                            hint="Groups need labelled predictions (and positives for tpr) "
                                 "in the same window; widen the date range or wait for labels.")
    figure = go.Figure()
    low_band = float(tolerance[0])
    figure.add_hrect(y0=low_band, y1=1.0, fillcolor=rgba(GOOD, 0.10), line_width=0, layer="below")
    figure.add_hline(y=low_band, line={"color": GOOD, "dash": "dash", "width": 1},
                     annotation_text=f"tolerance {low_band:g} (four-fifths rule)",
                     annotation_position="bottom right")
    for index, (attribute, part) in enumerate(gaps.groupby("attribute", sort=True)):
        part = part.sort_values("end")
        line_color = color(index)
        x = list(part["end"])
        figure.add_trace(go.Scatter(
            x=x + x[::-1], y=list(part["ratio_high"]) + list(part["ratio_low"])[::-1],
            fill="toself", fillcolor=rgba(line_color, 0.15), line={"width": 0},
            hoverinfo="skip", showlegend=False, name=f"{attribute} 95% interval"))
        custom = np.stack([part["group_min"].astype(str), part["group_max"].astype(str),
                           part["ratio_low"], part["ratio_high"]], axis=-1)
        figure.add_trace(go.Scatter(
            x=x, y=part["ratio"], mode="lines+markers", name=attribute,
            line={"color": line_color, "width": 2}, customdata=custom,
            hovertemplate=("%{x|%Y-%m-%d %H:%M}<br>" + attribute + ": %{customdata[0]} / "
                           "%{customdata[1]} = %{y:.2f}<br>95% interval [%{customdata[2]:.2f}, "
                           "%{customdata[3]:.2f}]<extra></extra>")))
        flagged = part[part["flagged"].astype(bool)]
        if not flagged.empty:
            figure.add_trace(go.Scatter(
                x=flagged["end"], y=flagged["ratio"], mode="markers", name=f"{attribute} flagged",
                marker={"symbol": "x", "size": 11, "color": BAD, "line": {"width": 1}},
                hoverinfo="skip"))
    base_layout(figure, title=title)
    figure.update_xaxes(title_text="window end (UTC)")
    figure.update_yaxes(title_text="ratio lowest / highest group (1 = parity)",
                        range=[0, 1.05], tickformat=".1f")
    return figure


def group_bars(frame: pd.DataFrame, *, attribute: str, metric: str = "tpr", cls: str = "",
               end: pd.Timestamp | None = None, tolerance: Sequence[float] = (0.8, 1.25),
               min_support: int = 30) -> go.Figure:
    """One window's groups of `attribute`: rate and 95% interval per group."""
    when = f" ending {pd.Timestamp(end):%Y-%m-%d %H:%M} UTC" if end is not None else ""
    title = f"{_metric_name(metric).capitalize()} by {attribute}, class '{cls}', window{when}"
    part = frame[(frame["attribute"] == attribute)] if not frame.empty else frame
    if part.empty:
        return empty_figure(f"No groups of '{attribute}' in this window", title=title,
                            hint="Choose another window end or segment, or wait for labels.")
    part = part.sort_values("group")
    reference = part["reference_group"].iloc[0]
    reference_value = part["reference_value"].iloc[0]
    colors = [BAD if flagged else NEUTRAL if group == reference or support < min_support
              else PALETTE[0]
              for group, flagged, support in zip(part["group"], part["flagged"].astype(bool),
                                                  part["support"], strict=True)]
    value = part["value"].to_numpy(dtype=float)
    figure = go.Figure(go.Bar(
        x=part["group"].astype(str), y=np.nan_to_num(value, nan=0.0), marker_color=colors,
        error_y={"type": "data", "symmetric": False,
                 "array": np.nan_to_num(part["high"].to_numpy(dtype=float) - value),
                 "arrayminus": np.nan_to_num(value - part["low"].to_numpy(dtype=float)),
                 "color": "#333"},
        text=[f"n={int(s)}" + (" · no data" if np.isnan(v) else "")
              for s, v in zip(part["support"], value, strict=True)],
        # support at the foot of each bar; outside when the bar is too short to hold it
        textposition=["inside" if v >= 0.1 else "outside" for v in np.nan_to_num(value)],
        insidetextanchor="start", name=_metric_name(metric),
        customdata=np.stack([part["ratio"], part["ratio_low"], part["ratio_high"]], axis=-1),
        hovertemplate=("%{x}: %{y:.3f} (%{text})<br>ratio to reference %{customdata[0]:.2f} "
                       "[%{customdata[1]:.2f}, %{customdata[2]:.2f}]<extra></extra>")))
    if reference_value is not None and not np.isnan(reference_value):
        low, high = reference_value * tolerance[0], min(reference_value * tolerance[1], 1.0)
        figure.add_hrect(y0=low, y1=high, fillcolor=rgba(GOOD, 0.12), line_width=0, layer="below")
        figure.add_hline(y=reference_value, line={"color": GOOD, "dash": "dash", "width": 1})
        # said in a subtitle, not an annotation, so it never covers a bar or its interval
        title += (f"<br><sup>reference {reference} = {reference_value:.2f} (dashed); shaded: "
                  f"x{tolerance[0]:g} to x{tolerance[1]:g} of it; orange: flagged; "
                  f"grey: reference or support under {min_support}</sup>")
    base_layout(figure, title=title)
    figure.update_layout(showlegend=False, margin={"t": 90})
    figure.update_xaxes(title_text=attribute)
    figure.update_yaxes(title_text=f"{_metric_name(metric)} (0-1)", range=[0, 1.1])
    return figure

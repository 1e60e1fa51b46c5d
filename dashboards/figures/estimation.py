"""The best current recall of one class (Classes page, issue 18): the realized recall of the
labelled predictions, the label-free estimate, and the blend of both (`recall_best`: realized
counts of the labelled part plus the estimate of the unlabelled part), each with its 95% band.

Pure: takes `metrics` records of the overall series (`end` as UTC Timestamps) and returns a
plotly Figure; a class without scores shows the realized recall alone (its best value is the
realized one) and says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.figures.style import (
    BAD,
    NEUTRAL,
    PALETTE,
    array,
    axis_spec,
    empty_figure,
    hline_spec,
    layout_spec,
    make_figure,
    plain,
    plain_frame,
    rgba,
)

# (column, its band's columns, legend name, colour, line style)
SERIES: list[tuple[str, tuple[str, str], str, str, dict[str, Any]]] = [
    ("recall", ("recall_low", "recall_high"), "realized (labelled only)", PALETTE[0], {"width": 1.5}),
    ("recall_estimated", ("recall_estimated_low", "recall_estimated_high"), "estimated (label-free)", PALETTE[1],
     {"width": 1.5, "dash": "dash"}),
    ("recall_best", ("recall_best_low", "recall_best_high"), "best current (realized + estimated)", PALETTE[2],
     {"width": 3}),
]


def _band(x: object, low: np.ndarray, high: np.ndarray, *, name: str, hue: str) -> list[dict]:
    return [{"hoverinfo": "skip", "legendgroup": name, "line": {"width": 0}, "mode": "lines", "showlegend": False,
             "x": x, "y": high, "type": "scatter"},
            {"fill": "tonexty", "fillcolor": rgba(hue, 0.15), "hoverinfo": "skip", "legendgroup": name,
             "line": {"width": 0}, "mode": "lines", "showlegend": False, "x": x, "y": low, "type": "scatter"}]


def best_recall_figure(frame: pd.DataFrame, cls: str | None, *, window: str = "7d") -> go.Figure:
    """Recall of class `cls` over time: realized, estimated and best current, 95% bands, the
    reference recall as a dashed line when known."""
    frame, cls, window = plain_frame(frame), None if cls is None else plain(cls), plain(window)
    title = f"Best current recall of {cls} (rolling {window}, 95%)"
    part = frame[frame["class"] == cls].sort_values("end") if not frame.empty else frame
    if part.empty:
        return empty_figure(f"No windows for class {cls}", title=title,
                            hint="Pick another class or widen the date range.")
    layout = layout_spec(title=title, height=380)
    layout["xaxis"] = axis_spec(title={"text": "window end (UTC)"})
    layout["yaxis"] = axis_spec(title={"text": "recall (0-1)"}, range=[0, 1.02])
    x = array(part["end"])
    data: list[dict] = []
    for column, (low, high), name, hue, line in SERIES:
        if column not in part or part[column].isna().all():
            continue
        values = part[column].astype(float).to_numpy()
        if low in part and high in part:
            data += _band(x, part[low].astype(float).to_numpy(), part[high].astype(float).to_numpy(),
                          name=name, hue=hue)
        data.append({"hovertemplate": f"{name}<br>%{{x|%Y-%m-%d %H:%M}} UTC<br>recall %{{y:.3f}}<extra></extra>",
                     "legendgroup": name, "line": {"color": hue, **line}, "mode": "lines+markers",
                     "marker": {"size": 4}, "name": name, "x": x, "y": values, "type": "scatter"})
    if "reference_recall" in part and part["reference_recall"].notna().any():
        shape, notes = hline_spec(float(part["reference_recall"].dropna().iloc[0]),
                                  line={"color": NEUTRAL, "dash": "dot"}, text="reference recall")
        layout.setdefault("shapes", []).append(shape)
        layout.setdefault("annotations", []).extend(notes)
    warned = part[part["estimation_warning"].notna()] if "estimation_warning" in part else part.iloc[:0]
    if not warned.empty and "recall_estimated" in warned:
        data.append({"hovertemplate": "%{x|%Y-%m-%d} UTC: estimate flagged (see the note)<extra></extra>",
                     "marker": {"color": BAD, "size": 9, "symbol": "x"}, "mode": "markers",
                     "name": "estimate flagged", "x": array(warned["end"]),
                     "y": warned["recall_estimated"].astype(float).to_numpy(), "type": "scatter"})
    return make_figure(data, layout)

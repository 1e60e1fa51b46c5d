"""Pure figure functions of the Drift page (plotly only; no data access, no Dash).

- `ranking_figure`: features at the newest window, most drifted first, bars coloured by the
  verdict, the threshold as a tick on each bar.
- `sparklines_figure`: one small line per feature over the window ends, threshold dashed.
- `distribution_figure`: reference vs current shares of one feature over its bins.
Every figure has a title and axis titles with units; no data gives `empty_figure` saying what
to do. Colours are Okabe-Ito (`dashboards.figures.style`).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.figures.style import (
    BAD,
    NEUTRAL,
    PALETTE,
    array,
    axis_spec,
    empty_figure,
    layout_spec,
    make_figure,
    plain,
    plain_frame,
)
from monitor.registry import DRIFT_METHODS

METHOD_AXIS = {entry.name: entry.options.get("axis", entry.options["label"]) for entry in DRIFT_METHODS.entries()}
MAX_SPARKLINES = 12
LABEL_CHARS = 28  # a sparkline's label beside its row; the hover has the whole name


def feature_label(feature: str) -> str:
    """What a person reads for a drift feature: the pseudo-features `__prediction__` and
    `__score_<class>__` (monitor.drift.aggregate) get words, real features keep their name."""
    name = str(feature)
    if name == "__prediction__":
        return "predicted class (mix)"
    if name.startswith("__score_") and name.endswith("__") and len(name) > len("__score___"):
        return f"score of {name[len('__score_'):-2]}"
    return name


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _when(end: pd.Timestamp) -> str:
    return pd.Timestamp(end).strftime("%Y-%m-%d %H:%M UTC")


def ranking_figure(ranked: pd.DataFrame, *, method: str, window: str, series_label: str = "overall") -> go.Figure:
    ranked, method, window, series_label = plain_frame(ranked), plain(method), plain(window), plain(series_label)
    title = f"Drift by feature ({method}, {window} window, {series_label})"
    usable = ranked.dropna(subset=["value"]) if not ranked.empty else ranked
    if usable.empty:
        return empty_figure(f"No {method} values in the newest window", title=title,
                            hint="The window may be empty, or this method does not apply to these features "
                                 "(ks/wasserstein: numeric only; chi2: categorical only).")
    ordered = usable.iloc[::-1]  # plotly draws the first bar at the bottom
    colours = [BAD if flag else PALETTE[0] for flag in ordered["drifted"]]
    labels = [plain(feature_label(f)) for f in ordered["feature"]]
    hover = [f"{label}: {v:.4g} (threshold {t:.3g}); {m} method(s) flag it; {n:,} rows"
             for label, v, t, m, n in zip(labels, ordered["value"], ordered["threshold"],
                                          ordered["methods_drifted"], ordered["n_current"], strict=True)]
    features = labels
    bars = {"hoverinfo": "text", "hovertext": hover, "marker": {"color": colours}, "name": method,
            "orientation": "h", "x": array(ordered["value"]), "y": features, "type": "bar"}
    ticks = {"hoverinfo": "skip", "marker": {"color": "#000", "line": {"width": 2}, "size": 16, "symbol": "line-ns-open"},
             "mode": "markers", "name": "threshold", "x": array(ordered["threshold"]), "y": features,
             "type": "scatter"}
    layout = layout_spec(title=f"{title}, ending {_when(usable['end'].iloc[0])}", height=max(260, 28 * len(usable) + 120))
    layout["xaxis"] = axis_spec(title={"text": METHOD_AXIS.get(method, method)}, rangemode="tozero")
    layout["yaxis"] = axis_spec(title={"text": "feature"}, type="category")
    return make_figure([bars, ticks], layout)


def sparklines_figure(records: pd.DataFrame, *, method: str, features: list[str], window: str) -> go.Figure:
    records, method, window = plain_frame(records), plain(method), plain(window)
    features = [plain(f) for f in features]
    title = f"{method} over time per feature ({window} windows)"
    picked = records[records["method"] == method] if not records.empty else records
    features = [f for f in features if f in set(picked["feature"])][:MAX_SPARKLINES] if not picked.empty else []
    if not features:
        return empty_figure(f"No {method} series to draw", title=title,
                            hint="Pick another method, or widen the date range.")
    grid, grid_str, grid_ref = _subplot_grid(len(features))
    layout = layout_spec(title=f"{title}: {METHOD_AXIS.get(method, method)}; dashed = threshold, "
                               "diamond = drifted", height=70 * len(features) + 120)
    # each row is named by a horizontal label in the left margin (rotated axis titles of
    # 70-pixel rows ran into each other)
    layout["margin"] = {**layout["margin"], "l": 190}
    layout["annotations"] = []
    data: list[dict[str, Any]] = []
    for row, feature in enumerate(features, start=1):
        line = picked[picked["feature"] == feature].sort_values("end")
        flagged = line[line["drifted"]]
        suffix = "" if row == 1 else str(row)
        axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        ends = array(line["end"])
        label = plain(feature_label(feature))
        data.append({"hovertemplate": f"{label}<br>%{{x}}<br>{method} %{{y:.4g}}<extra></extra>",
                     "line": {"color": PALETTE[0], "width": 1.5}, "mode": "lines", "name": feature,
                     "showlegend": False, "x": ends, "y": array(line["value"]), "type": "scatter", **axes})
        data.append({"hoverinfo": "skip", "line": {"color": NEUTRAL, "dash": "dash", "width": 1}, "mode": "lines",
                     "showlegend": False, "x": ends, "y": array(line["threshold"]), "type": "scatter", **axes})
        data.append({"hovertemplate": f"{label} drifted<br>%{{x}}<extra></extra>",
                     "marker": {"color": BAD, "size": 6, "symbol": "diamond"}, "mode": "markers",
                     "showlegend": False, "x": array(flagged["end"]), "y": array(flagged["value"]), "type": "scatter",
                     **axes})
        layout[f"xaxis{suffix}"] = axis_spec(**grid[f"xaxis{suffix}"])
        layout[f"yaxis{suffix}"] = axis_spec(**grid[f"yaxis{suffix}"], tickfont={"size": 9}, nticks=3)
        bottom, top = grid[f"yaxis{suffix}"]["domain"]
        layout["annotations"].append({"font": {"size": 11}, "showarrow": False, "text": _short(label),
                                      "x": 0, "xanchor": "right", "xref": "paper", "xshift": -40,
                                      "y": (bottom + top) / 2, "yanchor": "middle", "yref": "paper"})
    layout[f"xaxis{'' if len(features) == 1 else len(features)}"]["title"] = {"text": "window end (UTC)"}
    return make_figure(data, layout, grid=(grid_str, copy.deepcopy(grid_ref)))


@lru_cache(maxsize=MAX_SPARKLINES)
def _subplot_grid(rows: int) -> tuple[dict[str, Any], Any, Any]:
    """make_subplots' axes (domains, anchors, shared x) for `rows` stacked plots, made once per
    row count: make_subplots validates its whole layout on every call."""
    figure = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.02, subplot_titles=None)
    layout = figure.to_plotly_json()["layout"]
    return ({key: value for key, value in layout.items() if key[1:5] == "axis"}, figure._grid_str,
            figure._grid_ref)


def distribution_figure(frame: pd.DataFrame, *, feature: str, window: str, end: pd.Timestamp | None,
                        series_label: str = "overall") -> go.Figure:
    frame, window, series_label = plain_frame(frame), plain(window), plain(series_label)
    feature = plain(feature_label(feature))
    title = f"{feature}: reference vs current ({window} window, {series_label})"
    if frame.empty or (frame["reference_n"].sum() == 0 and frame["current_n"].sum() == 0):
        return empty_figure("No rows for this feature in the window", title=title,
                            hint="Pick another window end, segment value or feature.")
    data = [{"customdata": array(frame[count]),
             "hovertemplate": f"{name}<br>%{{x}}: %{{y:.1f}}%% (%{{customdata:,}} rows)<extra></extra>",
             "marker": {"color": colour}, "name": name, "x": array(frame["bin"]),
             "y": array(100 * frame[column].fillna(0)), "type": "bar"}
            for name, column, count, colour in (("reference", "reference_share", "reference_n", NEUTRAL),
                                                ("current", "current_share", "current_n", PALETTE[1]))]
    suffix = f", ending {_when(end)}" if end is not None else ""
    layout = layout_spec(title=title + suffix)
    layout["barmode"] = "group"
    layout["xaxis"] = axis_spec(title={"text": "bin (value range or category)"}, type="category")
    layout["yaxis"] = axis_spec(title={"text": "share of rows (%)"}, rangemode="tozero")
    return make_figure(data, layout)

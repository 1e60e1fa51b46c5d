"""Pure figure functions of the Drift page (plotly only; no data access, no Dash).

- `ranking_figure`: features at the newest window, most drifted first, bars coloured by the
  verdict, the threshold as a tick on each bar.
- `sparklines_figure`: one small line per feature over the window ends, threshold dashed.
- `distribution_figure`: reference vs current shares of one feature over its bins.
Every figure has a title and axis titles with units; no data gives `empty_figure` saying what
to do. Colours are Okabe-Ito (`dashboards.figures.style`).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.figures.style import BAD, NEUTRAL, PALETTE, base_layout, empty_figure

METHOD_AXIS = {
    "js": "Jensen-Shannon distance (0 = same, 1 = disjoint)",
    "psi": "Population stability index (unitless)",
    "ks": "Kolmogorov-Smirnov statistic (0-1)",
    "wasserstein": "Wasserstein distance (reference standard deviations)",
    "chi2": "Chi-squared p-value (low = drifted)",
}
MAX_SPARKLINES = 12


def _when(end: pd.Timestamp) -> str:
    return pd.Timestamp(end).strftime("%Y-%m-%d %H:%M UTC")


def ranking_figure(ranked: pd.DataFrame, *, method: str, window: str, series_label: str = "overall") -> go.Figure:
    title = f"Drift by feature ({method}, {window} window, {series_label})"
    usable = ranked.dropna(subset=["value"]) if not ranked.empty else ranked
    if usable.empty:
        return empty_figure(f"No {method} values in the newest window", title=title,
                            hint="The window may be empty, or this method does not apply to these features "
                                 "(ks/wasserstein: numeric only; chi2: categorical only).")
    ordered = usable.iloc[::-1]  # plotly draws the first bar at the bottom
    colours = [BAD if flag else PALETTE[0] for flag in ordered["drifted"]]
    hover = [f"{f}: {v:.4g} (threshold {t:.3g}); {m} method(s) flag it; {n:,} rows"
             for f, v, t, m, n in zip(ordered["feature"], ordered["value"], ordered["threshold"],
                                      ordered["methods_drifted"], ordered["n_current"], strict=True)]
    figure = go.Figure(go.Bar(x=ordered["value"], y=ordered["feature"], orientation="h", marker_color=colours,
                              hovertext=hover, hoverinfo="text", name=method))
    figure.add_trace(go.Scatter(x=ordered["threshold"], y=ordered["feature"], mode="markers", name="threshold",
                                marker={"symbol": "line-ns-open", "size": 16, "color": "#000", "line": {"width": 2}},
                                hoverinfo="skip"))
    base_layout(figure, title=f"{title}, ending {_when(usable['end'].iloc[0])}",
                height=max(260, 28 * len(usable) + 120))
    figure.update_xaxes(title_text=METHOD_AXIS.get(method, method), rangemode="tozero")
    figure.update_yaxes(title_text="feature", automargin=True)
    return figure


def sparklines_figure(records: pd.DataFrame, *, method: str, features: list[str], window: str) -> go.Figure:
    title = f"{method} over time per feature ({window} windows)"
    picked = records[records["method"] == method] if not records.empty else records
    features = [f for f in features if f in set(picked["feature"])][:MAX_SPARKLINES] if not picked.empty else []
    if not features:
        return empty_figure(f"No {method} series to draw", title=title,
                            hint="Pick another method, or widen the date range.")
    figure = make_subplots(rows=len(features), cols=1, shared_xaxes=True, vertical_spacing=0.02,
                           subplot_titles=None)
    for row, feature in enumerate(features, start=1):
        line = picked[picked["feature"] == feature].sort_values("end")
        flagged = line[line["drifted"]]
        figure.add_trace(go.Scatter(x=line["end"], y=line["value"], mode="lines", name=feature, showlegend=False,
                                    line={"color": PALETTE[0], "width": 1.5},
                                    hovertemplate=f"{feature}<br>%{{x}}<br>{method} %{{y:.4g}}<extra></extra>"),
                         row=row, col=1)
        figure.add_trace(go.Scatter(x=line["end"], y=line["threshold"], mode="lines", showlegend=False,
                                    line={"color": NEUTRAL, "dash": "dash", "width": 1}, hoverinfo="skip"),
                         row=row, col=1)
        figure.add_trace(go.Scatter(x=flagged["end"], y=flagged["value"], mode="markers", showlegend=False,
                                    marker={"color": BAD, "size": 6, "symbol": "diamond"},
                                    hovertemplate=f"{feature} drifted<br>%{{x}}<extra></extra>"),
                         row=row, col=1)
        figure.update_yaxes(title_text=feature, title_font={"size": 10}, tickfont={"size": 9}, nticks=3,
                            row=row, col=1)
    base_layout(figure, title=f"{title}: {METHOD_AXIS.get(method, method)}; dashed = threshold, "
                              "diamond = drifted", height=70 * len(features) + 120)
    figure.update_xaxes(title_text="window end (UTC)", row=len(features), col=1)
    return figure


def distribution_figure(frame: pd.DataFrame, *, feature: str, window: str, end: pd.Timestamp | None,
                        series_label: str = "overall") -> go.Figure:
    title = f"{feature}: reference vs current ({window} window, {series_label})"
    if frame.empty or (frame["reference_n"].sum() == 0 and frame["current_n"].sum() == 0):
        return empty_figure("No rows for this feature in the window", title=title,
                            hint="Pick another window end, segment value or feature.")
    figure = go.Figure()
    for name, column, count, colour in (("reference", "reference_share", "reference_n", NEUTRAL),
                                        ("current", "current_share", "current_n", PALETTE[1])):
        figure.add_trace(go.Bar(x=frame["bin"], y=100 * frame[column].fillna(0), name=name, marker_color=colour,
                                customdata=frame[count],
                                hovertemplate=f"{name}<br>%{{x}}: %{{y:.1f}}%% (%{{customdata:,}} rows)<extra></extra>"))
    suffix = f", ending {_when(end)}" if end is not None else ""
    base_layout(figure, title=title + suffix)
    figure.update_layout(barmode="group")
    figure.update_xaxes(title_text="bin (value range or category)", type="category")
    figure.update_yaxes(title_text="share of rows (%)", rangemode="tozero")
    return figure

"""Pure figure functions for the Overview, Classes, Subgroups and Data pages.

Each takes DataFrames shaped like the CONTRACT `metrics` records (`end` as UTC Timestamps,
plus `provisional`, `reference_recall` where noted) and returns a plotly Figure; no I/O.
Conventions: rates on a 0-1 axis titled with the metric, 95% intervals as translucent bands,
windows whose labels are not yet mature drawn dotted with open markers and a shaded span,
label-free estimates dashed, supports as bars under the rates. Empty input gives
`empty_figure` with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.figures.style import (
    BAD,
    NEUTRAL,
    SEQUENTIAL,
    base_layout,
    color,
    empty_figure,
    rgba,
)

METRIC_NAMES = {"recall": "Recall", "precision": "Precision", "f1": "F1"}
BANDS = {"recall": ("recall_low", "recall_high"), "precision": ("precision_low", "precision_high")}
PROVISIONAL_NOTE = "provisional: labels still arriving"


def _add_series(figure: go.Figure, frame: pd.DataFrame, *, metric: str, name: str, hue: str,
                show_band: bool = True, legendgroup: str | None = None) -> None:
    """One rate over time: band, solid mature line, dotted provisional tail."""
    frame = frame.sort_values("end")
    group = legendgroup or name
    if show_band and metric in BANDS:
        low, high = BANDS[metric]
        figure.add_trace(go.Scatter(x=frame["end"], y=frame[high], mode="lines", line={"width": 0},
                                    hoverinfo="skip", showlegend=False, legendgroup=group))
        figure.add_trace(go.Scatter(x=frame["end"], y=frame[low], mode="lines", line={"width": 0},
                                    fill="tonexty", fillcolor=rgba(hue, 0.18), hoverinfo="skip",
                                    name=f"{name} 95% interval", showlegend=False,
                                    legendgroup=group))
    provisional = frame["provisional"].fillna(False).astype(bool).to_numpy()
    values = frame[metric].to_numpy(dtype=float)
    mature = np.where(provisional, np.nan, values)
    custom = np.stack([frame.get("support", pd.Series(0, index=frame.index)).to_numpy(),
                       frame.get("label_coverage", pd.Series(np.nan, index=frame.index)).to_numpy(dtype=float)],
                      axis=-1)
    hover = (f"{name}<br>%{{x|%Y-%m-%d %H:%M}} UTC<br>{METRIC_NAMES.get(metric, metric)} %{{y:.3f}}"
             "<br>support %{customdata[0]}<br>label coverage %{customdata[1]:.0%}<extra></extra>")
    figure.add_trace(go.Scatter(x=frame["end"], y=mature, mode="lines+markers", name=name,
                                line={"color": hue, "width": 2}, marker={"size": 5}, customdata=custom,
                                hovertemplate=hover, legendgroup=group))
    if provisional.any():
        # the dotted tail starts at the last mature point so the line stays connected
        tail = provisional.copy()
        before = np.flatnonzero(provisional) - 1
        tail[before[before >= 0]] = True
        figure.add_trace(go.Scatter(x=frame["end"], y=np.where(tail, values, np.nan), mode="lines+markers",
                                    name=f"{name} ({PROVISIONAL_NOTE})", showlegend=False,
                                    line={"color": hue, "width": 2, "dash": "dot"},
                                    marker={"size": 7, "symbol": "circle-open"}, customdata=custom,
                                    hovertemplate=hover.replace("<extra>", " (provisional)<extra>"),
                                    legendgroup=group))


def _shade_provisional(figure: go.Figure, frame: pd.DataFrame) -> None:
    """Grey span over the windows whose labels are not yet mature (on the rates panel)."""
    # provisional is per series; shade the ends where most series are provisional
    share = frame["provisional"].fillna(False).astype(bool).groupby(frame["end"]).mean()
    provisional = share[share >= 0.5].index.to_series()
    if provisional.empty:
        return
    figure.add_shape(type="rect", xref="x", yref="paper", x0=provisional.min(), x1=frame["end"].max(),
                     y0=0.34, y1=1.0, fillcolor=NEUTRAL, opacity=0.12, line_width=0, layer="below")
    figure.add_annotation(x=provisional.min(), y=1.0, xref="x", yref="paper", text=PROVISIONAL_NOTE,
                          showarrow=False, xanchor="right", yanchor="top", font={"size": 11})


def _with_support(title: str, height: int) -> go.Figure:
    """Rates on top (y), supports under them (y2), one shared time axis (cheaper than
    make_subplots, which matters for callback latency)."""
    figure = go.Figure(layout={
        "yaxis": {"domain": [0.34, 1.0]},
        "yaxis2": {"domain": [0.0, 0.26], "anchor": "x", "rangemode": "tozero",
                   "title": {"text": "labelled positives"}},
        "xaxis": {"anchor": "y2", "title": {"text": "window end (UTC)"}},
    })
    base_layout(figure, title=title, height=height)
    return figure


def classes_over_time(frame: pd.DataFrame, *, metric: str = "recall", window: str = "7d",
                      minority: list[str] | None = None) -> go.Figure:
    """`metric` of every class over time (overall series) with 95% bands, estimated recall
    dashed when present, support bars per class under it."""
    label = METRIC_NAMES.get(metric, metric)
    title = f"{label} per class, rolling {window} windows (95% intervals)"
    if frame.empty:
        return empty_figure("No windows to show", title=title, hint="Widen or clear the date range.")
    figure = _with_support(title, 520)
    minority = minority or []
    classes = sorted(frame["class"].unique(), key=lambda c: (c not in minority, str(c)))
    for index, cls in enumerate(classes):
        part = frame[frame["class"] == cls]
        hue = color(index)
        name = f"{cls} (minority)" if cls in minority else str(cls)
        _add_series(figure, part, metric=metric, name=name, hue=hue, show_band=metric in BANDS)
        if metric == "recall" and part["recall_estimated"].notna().any():
            figure.add_trace(go.Scatter(x=part["end"], y=part["recall_estimated"], mode="lines",
                                        name=f"{cls} estimated (no labels)", legendgroup=name,
                                        line={"color": hue, "dash": "dash", "width": 1.5}))
        figure.add_trace(go.Bar(yaxis="y2", x=part["end"], y=part["support"], name=f"{cls} support", marker_color=hue,
                                opacity=0.7, showlegend=False, legendgroup=name,
                                hovertemplate=f"{cls}<br>%{{x|%Y-%m-%d}}<br>support %{{y}}<extra></extra>"),
                         )
    _shade_provisional(figure, frame)
    figure.update_layout(barmode="group")
    figure.update_layout(yaxis={"title": {"text": f"{label} (0-1)"}, "range": [0, 1.02]})
    return figure


def class_detail(frame: pd.DataFrame, cls: str | None, *, window: str = "7d") -> go.Figure:
    """Precision, recall and F1 of one class over time (bands for precision and recall),
    the reference recall as a dashed line, support bars under it."""
    title = f"Class {cls}: precision, recall, F1 (rolling {window}, 95% intervals)"
    part = frame[frame["class"] == cls] if not frame.empty else frame
    if part.empty:
        return empty_figure(f"No windows for class {cls}", title=title,
                            hint="Pick another class or widen the date range.")
    figure = _with_support(title, 460)
    for index, metric in enumerate(("recall", "precision", "f1")):
        name = METRIC_NAMES[metric] + (" (no interval)" if metric == "f1" else "")
        _add_series(figure, part, metric=metric, name=name, hue=color(index), show_band=metric in BANDS)
    if "reference_recall" in part and part["reference_recall"].notna().any():
        figure.add_hline(y=float(part["reference_recall"].dropna().iloc[0]), line_dash="dash",
                         line_color=color(0), annotation_text="reference recall")
    figure.add_trace(go.Bar(yaxis="y2", x=part["end"], y=part["support"], name="support (labelled positives)",
                            marker_color=NEUTRAL))
    _shade_provisional(figure, part)
    figure.update_layout(yaxis={"title": {"text": "rate (0-1)"}, "range": [0, 1.02]})
    return figure


def confusion_figure(cells: pd.DataFrame, classes: list[str], *, end: str | None = None,
                     window: str = "7d") -> go.Figure:
    """Confusion matrix of one window: colour = share of the true class (row), text = count."""
    title = f"Confusion matrix, {window} window ending {end or '-'} (row share of true class)"
    if cells.empty or cells["n"].sum() == 0:
        return empty_figure("No labelled predictions in this window", title=title,
                            hint="Labels may not have arrived yet; pick an older window.")
    present = sorted((set(cells["true_class"]) | set(cells["pred_class"])) - set(classes))
    order = [c for c in classes if c in set(cells["true_class"]) | set(cells["pred_class"])] + present
    matrix = cells.pivot_table(index="true_class", columns="pred_class", values="n", aggfunc="sum",
                               fill_value=0).reindex(index=order, columns=order, fill_value=0)
    totals = matrix.sum(axis=1).replace(0, np.nan)
    share = matrix.div(totals, axis=0)
    text = [[f"{int(n)}<br>{s:.0%}" if not np.isnan(s) else f"{int(n)}" for n, s in zip(row_n, row_s, strict=True)]
            for row_n, row_s in zip(matrix.to_numpy(), share.to_numpy(), strict=True)]
    figure = go.Figure(go.Heatmap(
        z=share.to_numpy(), x=[str(c) for c in order], y=[str(c) for c in order], text=text,
        texttemplate="%{text}", colorscale=SEQUENTIAL, zmin=0, zmax=1,
        colorbar={"title": {"text": "share of true class"}},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    base_layout(figure, title=title, height=420)
    figure.update_xaxes(title_text="predicted class", type="category")
    figure.update_yaxes(title_text="true class", type="category", autorange="reversed")
    return figure


def latest_window(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of the newest window end whose labels are mature, else of the newest end."""
    if frame.empty:
        return frame
    mature = frame[~frame["provisional"].fillna(False).astype(bool)]
    source = mature if not mature.empty else frame
    return source[source["end"] == source["end"].max()]


def segment_heatmap(latest: pd.DataFrame, *, segment: str, min_support: int, window: str = "7d",
                    sort_class: str | None = None) -> go.Figure:
    """Recall of each segment value (rows) x class (columns) in one window; the text gives the
    support; cells under `min_support` are blank and marked 'insufficient'."""
    end = latest["end"].max().strftime("%Y-%m-%d") if not latest.empty else "-"
    title = f"Recall by {segment} and class, {window} window ending {end}"
    if latest.empty:
        return empty_figure("No windows to show", title=title, hint="Widen or clear the date range.")
    recall = latest.pivot_table(index="segment_value", columns="class", values="recall", aggfunc="first")
    support = latest.pivot_table(index="segment_value", columns="class", values="support",
                                 aggfunc="first").reindex_like(recall).fillna(0)
    key = sort_class if sort_class in recall.columns else recall.columns[0]
    order = recall[key].fillna(2.0).sort_values(kind="stable").index
    recall, support = recall.loc[order], support.loc[order]
    enough = support.to_numpy() >= min_support
    z = np.where(enough, recall.to_numpy(dtype=float), np.nan)
    text = [[(f"{r:.2f}<br>n={int(n)}" if ok and not np.isnan(r) else f"n={int(n)}<br>insufficient")
             for r, n, ok in zip(rr, nn, ee, strict=True)]
            for rr, nn, ee in zip(recall.to_numpy(dtype=float), support.to_numpy(), enough, strict=True)]
    figure = go.Figure(go.Heatmap(
        z=z, x=[str(c) for c in recall.columns], y=[str(v) for v in recall.index], text=text,
        texttemplate="%{text}", colorscale=SEQUENTIAL, zmin=0, zmax=1, xgap=2, ygap=2,
        colorbar={"title": {"text": "recall (0-1)"}},
        hovertemplate=f"{segment} %{{y}}<br>class %{{x}}<br>%{{text}}<extra></extra>"))
    base_layout(figure, title=title, height=max(320, 60 + 28 * len(order)))
    figure.update_xaxes(title_text="true class", type="category", side="top")
    figure.update_yaxes(title_text=f"{segment} (sorted by recall of {key})", type="category",
                        autorange="reversed")
    figure.update_layout(margin={"t": 110})
    return figure


def segment_lines(frame: pd.DataFrame, *, cls: str | None, segment: str, window: str = "7d",
                  reference: float | None = None, top: int = 8) -> go.Figure:
    """Recall of class `cls` over time for the `top` worst segment values (by the latest
    window's recall), with the overall reference as a dashed line."""
    title = f"Recall of {cls} over time by {segment} (worst {top}, rolling {window})"
    part = frame[frame["class"] == cls] if not frame.empty else frame
    if part.empty or part["support"].sum() == 0:
        return empty_figure(f"No labelled {cls} cases in this range", title=title,
                            hint="Labels may not have arrived yet; widen the date range.")
    last = latest_window(part).set_index("segment_value")["recall"].sort_values(na_position="last")
    chosen = list(last.index[:top])
    figure = _with_support(title, 480)
    for index, value in enumerate(chosen):
        series = part[part["segment_value"] == value]
        _add_series(figure, series, metric="recall", name=str(value), hue=color(index), show_band=index < 3)
        figure.add_trace(go.Bar(yaxis="y2", x=series["end"], y=series["support"], marker_color=color(index), opacity=0.7,
                                showlegend=False, legendgroup=str(value), name=f"{value} support"))
    if reference is not None and not np.isnan(reference):
        figure.add_hline(y=reference, line_dash="dash", line_color=NEUTRAL,
                         annotation_text="overall reference recall")
    _shade_provisional(figure, part)
    figure.update_layout(barmode="group")
    figure.update_layout(yaxis={"title": {"text": "recall (0-1)"}, "range": [0, 1.02]})
    return figure


def worst_slices(latest: pd.DataFrame, *, min_support: int, limit: int = 15) -> pd.DataFrame:
    """The slices (segment value x class) of one window ranked worst first.

    A slice is worse the further even the upper end of its 95% recall interval lies below its
    reference recall (`shortfall = reference_recall - recall_high`, the evidence of a real
    drop); without a reference, the lower `recall_high` ranks worse. Slices under
    `min_support` come last ("insufficient data"). Columns: segment_value, class, recall,
    recall_low, recall_high, support, reference_recall, drop (reference - recall), status.
    """
    columns = ["segment_value", "class", "recall", "recall_low", "recall_high", "support",
               "reference_recall", "drop", "status"]
    if latest.empty:
        return pd.DataFrame(columns=columns)
    frame = latest.copy()
    if "reference_recall" not in frame:
        frame["reference_recall"] = np.nan
    frame["drop"] = frame["reference_recall"] - frame["recall"]
    frame["status"] = np.where(frame["support"] >= min_support, "ok", "insufficient data")
    frame["_insufficient"] = frame["support"] < min_support
    shortfall = frame["reference_recall"] - frame["recall_high"]
    frame["_score"] = shortfall.where(frame["reference_recall"].notna(), -frame["recall_high"] - 1)
    frame = frame.sort_values(["_insufficient", "_score"], ascending=[True, False], na_position="last",
                              kind="stable")
    return frame[columns].head(limit).reset_index(drop=True)


def sparkline(trend: pd.DataFrame, *, title: str) -> go.Figure:
    """Small minority-recall trend for an Overview card (one line per minority class)."""
    if trend.empty:
        return empty_figure("No data yet", title=title, height=170)
    figure = go.Figure()
    for index, (cls, part) in enumerate(trend.groupby("class", sort=True)):
        part = part.sort_values("end")
        figure.add_trace(go.Scatter(x=part["end"], y=part["recall"], mode="lines", name=str(cls),
                                    line={"color": color(index), "width": 2}))
        if "reference_recall" in part and part["reference_recall"].notna().any():
            figure.add_hline(y=float(part["reference_recall"].dropna().iloc[0]), line_dash="dot",
                             line_color=color(index), line_width=1)
    base_layout(figure, title=title, height=170)
    figure.update_layout(margin={"l": 45, "r": 10, "t": 35, "b": 30}, showlegend=False)
    figure.update_yaxes(title_text="recall", range=[0, 1.02])
    figure.update_xaxes(title_text=None)
    return figure


def label_arrival(frame: pd.DataFrame) -> go.Figure:
    """Share of predictions labelled by age (hours, log scale): how fast the truth arrives."""
    title = "Label arrival: share of predictions labelled by age"
    if frame.empty:
        return empty_figure("No labels yet", title=title,
                            hint="Label logs arrive later than predictions; run `monitor ingest`.")
    figure = go.Figure(go.Scatter(x=frame["age_hours"].clip(lower=0.5), y=frame["coverage"],
                                  mode="lines+markers", line_shape="hv", line={"color": color(0)},
                                  hovertemplate="within %{x} h: %{y:.1%} labelled<extra></extra>",
                                  name="label coverage"))
    base_layout(figure, title=title, height=340)
    figure.update_xaxes(title_text="age of the prediction (hours, log scale)", type="log")
    figure.update_yaxes(title_text="share labelled (0-1)", range=[0, 1.02])
    return figure


def status_color(recall: float | None, reference: float | None, low: float | None, high: float | None,
                 min_drop: float = 0.10) -> str:
    """Overview badge colour: BAD when the interval lies below reference - min_drop."""
    if recall is None or reference is None or np.isnan(recall) or np.isnan(reference):
        return NEUTRAL
    if high is not None and not np.isnan(high) and high < reference - min_drop:
        return BAD
    if recall < reference - min_drop:
        return "#E69F00"
    return "#009E73"

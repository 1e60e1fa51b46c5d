"""Pure figure functions for the Overview, Classes, Subgroups and Data pages.

Each takes DataFrames shaped like the docs/contract.md `metrics` records (`end` as UTC Timestamps,
plus `provisional`, `reference_recall` where noted) and returns a plotly Figure; no I/O.
Conventions: rates on a 0-1 axis titled with the metric, 95% intervals as translucent bands,
windows whose labels are not yet mature drawn dotted with open markers and a shaded span,
label-free estimates dashed, supports as bars under the rates. Empty input gives
`empty_figure` with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.figures.style import (
    BAD,
    NEUTRAL,
    SEQUENTIAL,
    array,
    axis_spec,
    color,
    empty_figure,
    hline_spec,
    layout_spec,
    make_figure,
    plain,
    plain_frame,
    rgba,
)
from monitor.registry import rate_metrics

# the rates of the metrics records (monitor.registry.METRICS): label, and interval columns
METRIC_NAMES = {entry.name: str(entry.options["label"]) for entry in rate_metrics()}
BANDS = {entry.name: (f"{entry.name}_low", f"{entry.name}_high") for entry in rate_metrics()
         if entry.options["rate"].interval}
PROVISIONAL_NOTE = "provisional: labels still arriving"
# The colour scale as plotly's validator expands the name (the figures skip validation).
_COLORSCALE = go.Heatmap(colorscale=SEQUENTIAL).to_plotly_json()["colorscale"]

# Figures are built as plain trace and layout dicts and made in one go by `make_figure`:
# plotly's per-property validation of go.Scatter(...) / add_trace / update_layout cost about
# 1 ms per trace (over 100 ms for a Subgroups page), for a JSON that is the same either way.


class _Columns:
    """The columns of a frame as numpy arrays (converted once, as plotly would convert them),
    with the row positions of each series: one pass over the frame instead of a boolean mask
    and a sort per series."""

    def __init__(self, frame: pd.DataFrame, names: list[str]) -> None:
        self.frame = frame
        self.values = {name: array(frame[name]) for name in names if name in frame}
        self._keys: dict[str, tuple[np.ndarray, dict]] = {}
        self._ends: Any = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def positions(self, column: str, value: object) -> np.ndarray:
        """Row positions (frame order) where `column` equals `value` (missing values match nothing)."""
        if column not in self._keys:
            codes, uniques = pd.factorize(self.frame[column])
            self._keys[column] = (codes, {unique: code for code, unique in enumerate(uniques)})
        codes, lookup = self._keys[column]
        code = lookup.get(value)
        return np.flatnonzero(codes == code) if code is not None else np.empty(0, dtype=np.intp)

    def by_end(self, positions: np.ndarray) -> np.ndarray:
        """`positions` reordered by window end, ties as `frame.iloc[positions].sort_values("end")`
        orders them (the same quicksort on the same values)."""
        if self._ends is None:
            self._ends = self.frame["end"].array
        return positions[self._ends.take(positions).argsort(kind="quicksort")]


def _series_traces(columns: _Columns, rows: np.ndarray, *, metric: str, name: str, hue: str,
                   show_band: bool = True, legendgroup: str | None = None) -> list[dict]:
    """One rate over time (rows: positions in `columns`, sorted by end): band, solid mature
    line, dotted provisional tail."""
    group = legendgroup or name
    x = columns["end"][rows]
    traces: list[dict] = []
    if show_band and metric in BANDS:
        low, high = BANDS[metric]
        traces.append({"hoverinfo": "skip", "legendgroup": group, "line": {"width": 0}, "mode": "lines",
                       "showlegend": False, "x": x, "y": columns[high][rows], "type": "scatter"})
        traces.append({"fill": "tonexty", "fillcolor": rgba(hue, 0.18), "hoverinfo": "skip",
                       "legendgroup": group, "line": {"width": 0}, "mode": "lines",
                       "name": f"{name} 95% interval", "showlegend": False, "x": x,
                       "y": columns[low][rows], "type": "scatter"})
    provisional = columns["_provisional"][rows]
    values = columns[metric][rows].astype(float)
    mature = np.where(provisional, np.nan, values)
    support = columns["support"][rows] if "support" in columns else np.zeros(len(rows), dtype=np.int64)
    coverage = (columns["label_coverage"][rows].astype(float) if "label_coverage" in columns
                else np.full(len(rows), np.nan))
    custom = np.stack([support, coverage], axis=-1)
    hover = (f"{name}<br>%{{x|%Y-%m-%d %H:%M}} UTC<br>{METRIC_NAMES.get(metric, metric)} %{{y:.3f}}"
             "<br>support %{customdata[0]}<br>label coverage %{customdata[1]:.0%}<extra></extra>")
    traces.append({"customdata": custom, "hovertemplate": hover, "legendgroup": group,
                   "line": {"color": hue, "width": 2}, "marker": {"size": 5}, "mode": "lines+markers",
                   "name": name, "x": x, "y": mature, "type": "scatter"})
    if provisional.any():
        # the dotted tail starts at the last mature point so the line stays connected
        tail = provisional.copy()
        before = np.flatnonzero(provisional) - 1
        tail[before[before >= 0]] = True
        traces.append({"customdata": custom,
                       "hovertemplate": hover.replace("<extra>", " (provisional)<extra>"),
                       "legendgroup": group, "line": {"color": hue, "dash": "dot", "width": 2},
                       "marker": {"size": 7, "symbol": "circle-open"}, "mode": "lines+markers",
                       "name": f"{name} ({PROVISIONAL_NOTE})", "showlegend": False, "x": x,
                       "y": np.where(tail, values, np.nan), "type": "scatter"})
    return traces


def _columns(frame: pd.DataFrame, names: list[str]) -> _Columns:
    columns = _Columns(frame, ["end", *names])
    columns.values["_provisional"] = frame["provisional"].fillna(False).astype(bool).to_numpy()
    return columns


def _provisional_shading(frame: pd.DataFrame, layout: dict) -> None:
    """Grey span over the windows whose labels are not yet mature (on the rates panel)."""
    # provisional is per series; shade the ends where most series are provisional
    share = frame["provisional"].fillna(False).astype(bool).groupby(frame["end"]).mean()
    provisional = share[share >= 0.5].index.to_series()
    if provisional.empty:
        return
    layout.setdefault("shapes", []).append({
        "fillcolor": NEUTRAL, "layer": "below", "line": {"width": 0}, "opacity": 0.12, "type": "rect",
        "x0": provisional.min(), "x1": frame["end"].max(), "xref": "x", "y0": 0.34, "y1": 1.0, "yref": "paper"})
    layout.setdefault("annotations", []).append({
        "font": {"size": 11}, "showarrow": False, "text": PROVISIONAL_NOTE, "x": provisional.min(),
        "xanchor": "right", "xref": "x", "y": 1.0, "yanchor": "top", "yref": "paper"})


def _add_hline(layout: dict, y: float, *, line: dict, text: str | None = None) -> None:
    shape, annotations = hline_spec(y, line=line, text=text)
    layout.setdefault("shapes", []).append(shape)
    if annotations:
        layout.setdefault("annotations", []).extend(annotations)


def _with_support(title: str, height: int, *, rate_title: str) -> dict:
    """Layout of rates on top (y), supports under them (y2), one shared time axis (cheaper
    than make_subplots, which matters for callback latency)."""
    layout = layout_spec(title=title, height=height)
    layout["xaxis"] = axis_spec(anchor="y2", title={"text": "window end (UTC)"})
    layout["yaxis"] = axis_spec(domain=[0.34, 1.0], title={"text": rate_title}, range=[0, 1.02])
    layout["yaxis2"] = axis_spec(anchor="x", domain=[0.0, 0.26], rangemode="tozero",
                                 title={"text": "labelled positives"})
    return layout


def classes_over_time(frame: pd.DataFrame, *, metric: str = "recall", window: str = "7d",
                      minority: list[str] | None = None) -> go.Figure:
    """`metric` of every class over time (overall series) with 95% bands, estimated recall
    dashed when present, support bars per class under it."""
    frame, minority, window = plain_frame(frame), [plain(c) for c in minority or []], plain(window)
    label = plain(METRIC_NAMES.get(metric, metric))
    title = f"{label} per class, rolling {window} windows (95% intervals)"
    if frame.empty:
        return empty_figure("No windows to show", title=title, hint="Widen or clear the date range.")
    layout = _with_support(title, 520, rate_title=f"{label} (0-1)")
    # supports differ by orders of magnitude between classes: on a linear axis the minority
    # class's bars (tens) vanish under the majority's (thousands)
    layout["yaxis2"].update(type="log", dtick=1, title={"text": "labelled positives (log)"})
    classes = sorted(frame["class"].unique(), key=lambda c: (c not in minority, str(c)))
    columns = _columns(frame, [metric, *BANDS.get(metric, ()), "support", "label_coverage", "recall_estimated"])
    data: list[dict] = []
    for index, cls in enumerate(classes):
        rows = columns.positions("class", cls)
        hue = color(index)
        name = f"{cls} (minority)" if cls in minority else str(cls)
        data += _series_traces(columns, columns.by_end(rows), metric=metric, name=name, hue=hue,
                               show_band=metric in BANDS)
        if metric == "recall" and not np.isnan(columns["recall_estimated"][rows].astype(float)).all():
            data.append({"legendgroup": name, "line": {"color": hue, "dash": "dash", "width": 1.5},
                         "mode": "lines", "name": f"{cls} estimated (no labels)", "x": columns["end"][rows],
                         "y": columns["recall_estimated"][rows], "type": "scatter"})
        data.append({"hovertemplate": f"{cls}<br>%{{x|%Y-%m-%d}}<br>support %{{y}}<extra></extra>",
                     "legendgroup": name, "marker": {"color": hue}, "name": f"{cls} support", "opacity": 0.7,
                     "showlegend": False, "x": columns["end"][rows], "y": columns["support"][rows],
                     "yaxis": "y2", "type": "bar"})
    _provisional_shading(frame, layout)
    layout["barmode"] = "group"
    return make_figure(data, layout)


def class_detail(frame: pd.DataFrame, cls: str | None, *, window: str = "7d") -> go.Figure:
    """Precision, recall and F1 of one class over time (bands for precision and recall),
    the reference recall as a dashed line, support bars under it."""
    frame, cls, window = plain_frame(frame), None if cls is None else plain(cls), plain(window)
    title = f"Class {cls}: precision, recall, F1 (rolling {window}, 95% intervals)"
    part = frame[frame["class"] == cls] if not frame.empty else frame
    if part.empty:
        return empty_figure(f"No windows for class {cls}", title=title,
                            hint="Pick another class or widen the date range.")
    layout = _with_support(title, 460, rate_title="rate (0-1)")
    columns = _columns(part, ["recall", "precision", "f1", *BANDS["recall"], *BANDS["precision"], "support",
                              "label_coverage"])
    rows = columns.by_end(np.arange(len(part)))
    data: list[dict] = []
    for index, metric in enumerate(("recall", "precision", "f1")):
        name = METRIC_NAMES[metric] + (" (no interval)" if metric == "f1" else "")
        data += _series_traces(columns, rows, metric=metric, name=name, hue=color(index), show_band=metric in BANDS)
    if "reference_recall" in part and part["reference_recall"].notna().any():
        _add_hline(layout, float(part["reference_recall"].dropna().iloc[0]),
                   line={"color": color(0), "dash": "dash"}, text="reference recall")
    data.append({"marker": {"color": NEUTRAL}, "name": "support (labelled positives)", "x": columns["end"],
                 "y": columns["support"], "yaxis": "y2", "type": "bar"})
    _provisional_shading(part, layout)
    return make_figure(data, layout)


def confusion_figure(cells: pd.DataFrame, classes: list[str], *, end: str | None = None,
                     window: str = "7d") -> go.Figure:
    """Confusion matrix of one window: colour = share of the true class (row), text = count."""
    cells, classes, window = plain_frame(cells), [plain(c) for c in classes], plain(window)
    end = None if end is None else plain(end)
    title = f"Confusion matrix, {window} window ending {end or '-'} (row share of true class)"
    if cells.empty or cells["n"].sum() == 0:
        return empty_figure("No labelled predictions in this window", title=title,
                            hint="Labels may not have arrived yet; pick an older window.")
    present = sorted((set(cells["true_class"]) | set(cells["pred_class"])) - set(classes))
    order = [c for c in classes if c in set(cells["true_class"]) | set(cells["pred_class"])] + present
    matrix = (cells.groupby(["true_class", "pred_class"])["n"].sum().unstack(fill_value=0)
              .reindex(index=order, columns=order, fill_value=0))
    totals = matrix.sum(axis=1).replace(0, np.nan)
    share = matrix.div(totals, axis=0)
    text = [[f"{int(n)}<br>{s:.0%}" if not np.isnan(s) else f"{int(n)}" for n, s in zip(row_n, row_s, strict=True)]
            for row_n, row_s in zip(matrix.to_numpy(), share.to_numpy(), strict=True)]
    heatmap = {"colorbar": {"title": {"text": "share of true class"}}, "colorscale": _COLORSCALE,
               "hovertemplate": "true %{y}<br>predicted %{x}<br>%{text}<extra></extra>", "text": text,
               "texttemplate": "%{text}", "x": [str(c) for c in order], "y": [str(c) for c in order],
               "z": array(share.to_numpy()), "zmax": 1, "zmin": 0, "type": "heatmap"}
    layout = layout_spec(title=title, height=420)
    layout["xaxis"] = axis_spec(title={"text": "predicted class"}, type="category")
    layout["yaxis"] = axis_spec(title={"text": "true class"}, type="category", autorange="reversed")
    return make_figure([heatmap], layout)


def latest_window(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of the newest window end whose labels are mature, else of the newest end."""
    if frame.empty:
        return frame
    mature = frame[~frame["provisional"].fillna(False).astype(bool)]
    source = mature if not mature.empty else frame
    return source[source["end"] == source["end"].max()]


def proven_drop(frame: pd.DataFrame, min_drop: float = 0.10) -> pd.Series:
    """Rows whose whole 95% recall interval lies below reference_recall - min_drop: a drop the
    interval proves whatever the support (False without those columns)."""
    if "recall_high" not in frame or "reference_recall" not in frame:
        return pd.Series(False, index=frame.index)
    return (frame["recall_high"] < frame["reference_recall"] - min_drop).fillna(False).astype(bool)


HEATMAP_ROWS = 60  # segment values drawn at most (the Subgroups page's table ranks them all)


def segment_heatmap(latest: pd.DataFrame, *, segment: str, min_support: int, window: str = "7d",
                    sort_class: str | None = None, min_drop: float = 0.10) -> go.Figure:
    """Recall of each segment value (rows) x class (columns) in one window; the text gives the
    support; cells under `min_support` are blank and marked 'insufficient' unless their
    interval proves a drop below the reference (`proven_drop`): those are coloured and marked."""
    latest, segment, window = plain_frame(latest), plain(segment), plain(window)
    sort_class = None if sort_class is None else plain(sort_class)
    end = latest["end"].max().strftime("%Y-%m-%d") if not latest.empty else "-"
    title = f"Recall by {segment} and class, {window} window ending {end}"
    if latest.empty:
        return empty_figure("No windows to show", title=title, hint="Widen or clear the date range.")
    # as two pivot_table(aggfunc="first") calls, from one groupby
    latest = latest.assign(_proven=proven_drop(latest, min_drop).astype(float))
    first = latest.groupby(["segment_value", "class"], sort=True)[["recall", "support", "_proven"]].first()
    recall = first["recall"].dropna().unstack("class")
    if recall.empty:  # predictions, but no labelled positives yet: no recall to colour
        return empty_figure("No labelled cases in this window", title=title,
                            hint="Labels may not have arrived yet; widen the date range.")
    support = first["support"].dropna().unstack("class").reindex_like(recall).fillna(0)
    proven = first["_proven"].unstack("class").reindex_like(recall).fillna(0.0)
    key = sort_class if sort_class in recall.columns else recall.columns[0]
    order = recall[key].fillna(2.0).sort_values(kind="stable").index
    if len(order) > HEATMAP_ROWS:
        # the worst values the rule can judge (enough support, or a proven drop) first: with
        # many segment values (a pair of 500-value attributes) every row made megabytes
        judged = (support.loc[order, key] >= min_support) | (proven.loc[order, key] > 0)
        order = order[np.argsort(~judged.to_numpy(), kind="stable")][:HEATMAP_ROWS]
        title += f" (worst {HEATMAP_ROWS} of {len(recall):,} values)"
    recall, support, proven = recall.loc[order], support.loc[order], proven.loc[order]
    small = support.to_numpy() < min_support
    sure = proven.to_numpy() > 0
    z = np.where(~small | sure, recall.to_numpy(dtype=float), np.nan)

    def cell(r: float, n: float, is_small: bool, is_sure: bool) -> str:
        if np.isnan(r) or (is_small and not is_sure):
            return f"n={int(n)}<br>insufficient"
        return f"{r:.2f}<br>n={int(n)}" + ("<br>drop proven" if is_small else "")

    text = [[cell(r, n, sm, su) for r, n, sm, su in zip(rr, nn, ss, pp, strict=True)]
            for rr, nn, ss, pp in zip(recall.to_numpy(dtype=float), support.to_numpy(), small, sure,
                                      strict=True)]
    heatmap = {"colorbar": {"title": {"text": "recall (0-1)"}}, "colorscale": _COLORSCALE,
               "hovertemplate": f"{segment} %{{y}}<br>class %{{x}}<br>%{{text}}<extra></extra>", "text": text,
               "texttemplate": "%{text}", "x": [str(c) for c in recall.columns],
               "xgap": 2, "y": [str(v) for v in recall.index], "ygap": 2, "z": z, "zmax": 1, "zmin": 0,
               "type": "heatmap"}
    layout = layout_spec(title=title, height=max(320, 60 + 28 * len(order)))
    layout["margin"]["t"] = 110
    layout["xaxis"] = axis_spec(title={"text": "true class"}, type="category", side="top")
    layout["yaxis"] = axis_spec(title={"text": f"{segment} (sorted by recall of {key})"}, type="category",
                                autorange="reversed")
    return make_figure([heatmap], layout)


def segment_lines(frame: pd.DataFrame, *, cls: str | None, segment: str, window: str = "7d",
                  reference: float | None = None, top: int = 8) -> go.Figure:
    """Recall of class `cls` over time for the `top` worst segment values (by the latest
    window's recall), with the overall reference as a dashed line."""
    frame, segment, window = plain_frame(frame), plain(segment), plain(window)
    cls = None if cls is None else plain(cls)
    title = f"Recall of {cls} over time by {segment} (worst {top}, rolling {window})"
    part = frame[frame["class"] == cls] if not frame.empty else frame
    if part.empty or part["support"].sum() == 0:
        return empty_figure(f"No labelled {cls} cases in this range", title=title,
                            hint="Labels may not have arrived yet; widen the date range.")
    last = latest_window(part).set_index("segment_value")["recall"].sort_values(na_position="last")
    chosen = list(last.index[:top])
    layout = _with_support(title, 480, rate_title="recall (0-1)")
    columns = _columns(part, ["recall", *BANDS["recall"], "support", "label_coverage"])
    data: list[dict] = []
    for index, value in enumerate(chosen):
        rows = columns.positions("segment_value", value)
        data += _series_traces(columns, columns.by_end(rows), metric="recall", name=str(value), hue=color(index),
                               show_band=index < 3)
        data.append({"legendgroup": str(value), "marker": {"color": color(index)}, "name": f"{value} support",
                     "opacity": 0.7, "showlegend": False, "x": columns["end"][rows], "y": columns["support"][rows],
                     "yaxis": "y2", "type": "bar"})
    if reference is not None and not np.isnan(reference):
        _add_hline(layout, reference, line={"color": NEUTRAL, "dash": "dash"}, text="overall reference recall")
    _provisional_shading(part, layout)
    layout["barmode"] = "group"
    return make_figure(data, layout)


def worst_slices(latest: pd.DataFrame, *, min_support: int, limit: int = 15, min_drop: float = 0.10,
                 alert_status: pd.DataFrame | None = None) -> pd.DataFrame:
    """The slices (segment value x class) of one window ranked worst first.

    Ranked by what the interval proves: `shortfall = reference_recall - recall_high`, how far
    even the upper end of the 95% recall interval lies below the slice's reference (0.00
    [0.00, 0.13] against 0.71 comes first); without a reference, the lower `recall_high` ranks
    worse. Only slices under `min_support` whose interval proves nothing come last
    ("insufficient data"): a proven drop (`proven_drop`) is never hidden by its support. A
    slice with enough support whose interval lies below its reference by less than `min_drop`
    is "below reference", never "ok".
    `status` is the alert state of the series when `alert_status` (segment_value, class,
    status from `monitor.read.alerts.alert_series`) has one, else what the interval says.
    Columns: segment_value, class, recall, recall_low, recall_high, support,
    reference_recall, drop (reference - recall), status.
    """
    columns = ["segment_value", "class", "recall", "recall_low", "recall_high", "support",
               "reference_recall", "drop", "status"]
    if latest.empty:
        return pd.DataFrame(columns=columns)
    frame = latest.copy()
    if "reference_recall" not in frame:
        frame["reference_recall"] = np.nan
    frame["drop"] = frame["reference_recall"] - frame["recall"]
    proven = proven_drop(frame, min_drop)
    frame["_insufficient"] = (frame["support"] < min_support) & ~proven
    # below reference: the interval excludes the reference, but by less than min_drop; "ok"
    # is kept for an interval that reaches the reference (0.54 [0.47, 0.60] vs 0.70 is no "ok")
    below = (frame["recall_high"] < frame["reference_recall"]).fillna(False).to_numpy(dtype=bool)
    frame["status"] = np.where(proven, "drop proven",
                               np.where(frame["_insufficient"], "insufficient data",
                                        np.where(below, "below reference", "ok")))
    if alert_status is not None and not alert_status.empty:
        states = alert_status.drop_duplicates(["segment_value", "class"]).set_index(["segment_value", "class"])
        keys = pd.MultiIndex.from_frame(frame[["segment_value", "class"]])
        state = states["status"].reindex(keys).to_numpy(dtype=object)
        known = pd.notna(state)
        label = np.array([f"alert {str(v).replace('_', ' ')}" if ok else "" for v, ok in
                          zip(state, known, strict=True)], dtype=object)
        frame["status"] = np.where(known, label, frame["status"])
    shortfall = frame["reference_recall"] - frame["recall_high"]
    frame["_score"] = shortfall.where(frame["reference_recall"].notna(), -frame["recall_high"] - 1)
    frame = frame.sort_values(["_insufficient", "_score"], ascending=[True, False], na_position="last",
                              kind="stable")
    return frame[columns].head(limit).reset_index(drop=True)


def sparkline(trend: pd.DataFrame, *, title: str) -> go.Figure:
    """Small minority-recall trend for an Overview card (one line per minority class)."""
    trend, title = plain_frame(trend), plain(title)
    if trend.empty:
        return empty_figure("No data yet", title=title, height=170)
    layout = layout_spec(title=title, height=170)
    layout["margin"] = {"l": 45, "r": 10, "t": 35, "b": 30}
    layout["showlegend"] = False
    layout["xaxis"] = axis_spec()
    layout["yaxis"] = axis_spec(title={"text": "recall"}, range=[0, 1.02])
    data: list[dict] = []
    for index, (cls, part) in enumerate(trend.groupby("class", sort=True)):
        part = part.sort_values("end")
        data.append({"line": {"color": color(index), "width": 2}, "mode": "lines", "name": str(cls),
                     "x": array(part["end"]), "y": array(part["recall"]), "type": "scatter"})
        if "reference_recall" in part and part["reference_recall"].notna().any():
            _add_hline(layout, float(part["reference_recall"].dropna().iloc[0]),
                       line={"color": color(index), "dash": "dot", "width": 1})
    return make_figure(data, layout)


def label_arrival(frame: pd.DataFrame) -> go.Figure:
    """Share of predictions labelled within `delay_hours` of being made (log scale), from
    `monitor.read.quality.label_arrival`: how fast the truth arrives."""
    title = "Label arrival: share of predictions labelled by age"
    if frame.empty:
        return empty_figure("No labels yet", title=title,
                            hint="Label logs arrive later than predictions; run `monitor ingest`.")
    line = {"hovertemplate": "within %{x} h: %{y:.1%} labelled<extra></extra>",
            "line": {"color": color(0), "shape": "hv"}, "mode": "lines+markers", "name": "label coverage",
            "x": array(frame["delay_hours"].clip(lower=0.5)), "y": array(frame["coverage"]), "type": "scatter"}
    layout = layout_spec(title=title, height=340)
    layout["xaxis"] = axis_spec(title={"text": "age of the prediction (hours, log scale)"}, type="log", dtick=1)
    layout["yaxis"] = axis_spec(title={"text": "share labelled (0-1)"}, range=[0, 1.02])
    return make_figure([line], layout)


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

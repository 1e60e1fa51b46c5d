"""Shared look of every figure: a colour-blind-safe palette, titles, units, empty states.

The palette is Okabe-Ito (distinguishable with every common colour-vision deficiency);
sequential scales are viridis/cividis. Every figure has a title and axis titles with units;
a figure without data is `empty_figure(message)`, a titled blank plot that says what to do,
never a broken or silently empty chart. Drift and fairness figures use these helpers too.

Plotly renders a little HTML in every text it draws (axis categories, legend names, hover
text, annotations, titles): `<a href>` becomes a live link, `<b>`/`<br>` markup. Class names,
segment values, feature names and model versions come from data, so every figure function
passes its input frames through `plain_frame` and its data-derived strings through `plain`
before plotly sees them; only the figure's own templates carry markup.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from _plotly_utils.basevalidators import copy_to_readonly_numpy_array

# Okabe & Ito (2008), "Color Universal Design", without black (kept for text).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu"
GOOD = "#009E73"
WARN = "#E69F00"
BAD = "#D55E00"
NEUTRAL = "#999999"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
_MARKUP = re.compile(r"[<>&]")
# an "&" that does not start an entity (so plain(plain(x)) == plain(x))
_BARE_AMPERSAND = re.compile(r"&(?![A-Za-z][A-Za-z0-9]*;|#[0-9]+;|#[xX][0-9A-Fa-f]+;)")


def plain(value: Any) -> str:
    """`value` as text that plotly shows literally: `<` and `>` (and a bare `&`) as entities.

    Idempotent, so a title built from already plain parts can be passed again safely (an
    entity already in the data, e.g. "&amp;", is then shown decoded: "&"). The result has no
    `<` or `>` at all, so plotly can never see a tag in it."""
    text = str(value)
    if not _MARKUP.search(text):
        return text
    return _BARE_AMPERSAND.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def _has_markup(column: pd.Series) -> bool:
    values: np.ndarray | pd.Series
    try:
        values = column.dropna().unique()
    except TypeError:  # unhashable cells (lists, dicts): check every one
        values = column.dropna()
    return any(isinstance(v, str) and _MARKUP.search(v) for v in values)


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every string cell made `plain` (a copy when anything changed, else the
    same frame). Only the distinct values are checked, so it costs little on long frames."""
    replaced: dict[str, pd.Series] = {}
    for name, column in frame.items():
        if column.dtype != object and not isinstance(column.dtype, (pd.StringDtype, pd.CategoricalDtype)):
            continue
        if _has_markup(column):
            dtype = object if isinstance(column.dtype, pd.CategoricalDtype) else column.dtype
            replaced[str(name)] = pd.Series([plain(v) if isinstance(v, str) else v for v in column],
                                            index=column.index, dtype=dtype)
    if not replaced:
        return frame
    frame = frame.copy()
    for name, column in replaced.items():
        frame[name] = column
    return frame


def color(index: int) -> str:
    """The palette's colour number `index` (cycling)."""
    return PALETTE[index % len(PALETTE)]


def rgba(hex_color: str, alpha: float) -> str:
    """'#RRGGBB' -> 'rgba(r,g,b,alpha)' for translucent bands."""
    value = hex_color.lstrip("#")
    red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def layout_spec(*, title: str, height: int = 360, uirevision: str | None = "keep") -> dict[str, Any]:
    """The common layout as a plain dict (for `make_figure`): title, font, margins, legend at
    the foot, colours; `uirevision` keeps zoom on refresh. Axes get `axis_spec()`.

    `uirevision` is the same for every redraw of a figure, so the live refresh (a new figure
    every time new data arrives) keeps the user's zoom, pan and legend choices; traces are
    matched by the uids `make_figure` gives them. Empty figures pass None (nothing to keep)."""
    # No named template: resolving one costs ~40-130 ms per figure; the look is set here.
    spec: dict[str, Any] = {
        # the title on top of the figure, the legend at its foot: a legend that wraps to
        # several rows on a narrow screen pushes the bottom margin instead of covering the title
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}, "yref": "container",
                  "y": 1, "yanchor": "top", "pad": {"t": 10}, "automargin": True},
        "font": {"family": FONT, "size": 12, "color": "#2a3f5f"},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "legend": {"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0, "xanchor": "left",
                   "x": 0},
        "colorway": list(PALETTE),
    }
    if uirevision is not None:
        spec["uirevision"] = uirevision
    return spec


def axis_spec(**extra: Any) -> dict[str, Any]:
    """The common look of an axis (grid and line colours, automargin) plus `extra`."""
    return {"gridcolor": "#EBF0F8", "linecolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "automargin": True,
            **extra}


def base_layout(figure: go.Figure, *, title: str, height: int = 360,
                uirevision: str | None = "keep") -> go.Figure:
    """Apply `layout_spec` to an existing figure (every x and y axis gets `axis_spec`).

    Figures built with `make_figure` put `layout_spec()` in their layout dict instead, which
    skips plotly's per-property validation (the bulk of the cost of this function)."""
    figure.update_layout(layout_spec(title=title, height=height, uirevision=uirevision))
    axis = axis_spec()
    figure.update_xaxes(**axis)
    figure.update_yaxes(**axis)
    return figure


def make_figure(data: list[dict[str, Any]], layout: dict[str, Any], *, grid: tuple[Any, Any] | None = None) -> go.Figure:
    """A go.Figure from trace dicts (each with its "type") and a layout dict, without plotly's
    per-property validation (which costs ~1 ms per trace and dominates callback time).

    The dicts must hold what validation would have stored: arrays from `array()`, lists of
    plain values, plain scalars, no `None` values. The figure then serializes exactly as the
    validated one would (same JSON up to key order). Later edits (`update_layout`, ...) are
    validated again as usual. `grid`: (_grid_str, _grid_ref) of a make_subplots figure with
    these axes, so that `row=`/`col=` keep working on the result.
    """
    _name_traces(data)
    spec: dict[str, Any] = {"data": data, "layout": layout}
    if grid is not None:
        spec["_grid_str"], spec["_grid_ref"] = grid
    figure = go.Figure(spec, _validate=False)
    figure._validate = True
    figure._layout_obj._validate = True
    for trace in figure.data:
        trace._validate = True
    return figure


def _name_traces(data: list[dict[str, Any]]) -> None:
    """Give every trace a `uid` made of what it shows (type, axes, group, name, occurrence).

    With `uirevision`, plotly keeps a user's legend choices (hidden traces) across a redraw by
    matching traces by uid, else by position; a refresh that adds a trace (a new provisional
    tail, one more class) would then hide the wrong one."""
    seen: dict[str, int] = {}
    for trace in data:
        if "uid" in trace:
            continue
        key = "|".join(str(trace.get(k, "")) for k in ("type", "xaxis", "yaxis", "legendgroup", "name"))
        seen[key] = seen.get(key, -1) + 1
        # plotly puts the uid in CSS selectors and class names: a digest, never the data's text
        trace["uid"] = "t" + hashlib.blake2s(f"{key}|{seen[key]}".encode(), digest_size=8).hexdigest()


def array(values: Any) -> Any:
    """`values` as plotly's data-array validators store them: a pandas Series or numpy array
    becomes a numpy array (tz-aware times as local wall time, non-numeric kinds as object),
    a list stays a list."""
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            return values.dt.tz_localize(None).to_numpy()
        if isinstance(dtype, np.dtype) and dtype.kind in "uifM":
            return values.to_numpy(copy=True)
        return copy_to_readonly_numpy_array(values)
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "uifOM":
            return values.copy()
        return copy_to_readonly_numpy_array(values)
    return values


def hline_spec(y: float, *, line: dict[str, Any], text: str | None = None,
               text_position: str = "top right") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What `figure.add_hline(y, line=line, annotation_text=text, annotation_position=...)` adds
    to a figure without subplots: the shape and (when `text`) its annotation at the right end,
    above the line ("top right") or under it ("bottom right")."""
    shape = {"line": line, "type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": y, "y1": y, "yref": "y"}
    if text is None:
        return shape, []
    anchor = {"top right": "bottom", "bottom right": "top"}[text_position]
    return shape, [{"showarrow": False, "text": text, "x": 1, "xanchor": "right", "xref": "x domain", "y": y,
                    "yanchor": anchor, "yref": "y"}]


def hrect_spec(y0: float, y1: float, *, fillcolor: str) -> dict[str, Any]:
    """What `figure.add_hrect(y0, y1, fillcolor=..., line_width=0, layer="below")` adds to a
    figure without subplots: a full-width band behind the data."""
    return {"fillcolor": fillcolor, "layer": "below", "line": {"width": 0}, "type": "rect", "x0": 0, "x1": 1,
            "xref": "x domain", "y0": y0, "y1": y1, "yref": "y"}


def empty_figure(message: str, *, title: str = "", hint: str | None = None,
                 height: int = 300) -> go.Figure:
    """A titled blank figure saying why there is nothing to draw and what to do about it (all
    three texts are shown as plain text)."""
    text = plain(message)
    if hint:
        text += f"<br><span style='font-size:12px'>{plain(hint)}</span>"
    layout = layout_spec(title=plain(title), height=height, uirevision=None)
    layout["annotations"] = [{"font": {"color": "#555", "size": 15}, "showarrow": False, "text": text,
                              "x": 0.5, "xref": "paper", "y": 0.5, "yref": "paper"}]
    layout["xaxis"] = axis_spec(visible=False)
    layout["yaxis"] = axis_spec(visible=False)
    layout["meta"] = {"empty": True, "message": plain(message)}
    return make_figure([], layout)


def is_empty(figure: go.Figure | dict) -> bool:
    """True for figures made by `empty_figure` (tests and pages use it)."""
    layout = figure["layout"] if isinstance(figure, dict) else figure.layout
    meta = layout.get("meta") if isinstance(layout, dict) else layout.meta
    return bool(meta and dict(meta).get("empty"))


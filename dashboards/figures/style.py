"""Shared look of every figure: a colour-blind-safe palette, titles, units, empty states.

The palette is Okabe-Ito (distinguishable with every common colour-vision deficiency);
sequential scales are viridis/cividis. Every figure has a title and axis titles with units;
a figure without data is `empty_figure(message)`, a titled blank plot that says what to do,
never a broken or silently empty chart. Drift and fairness figures use these helpers too.
"""

from __future__ import annotations

import plotly.graph_objects as go

# Okabe & Ito (2008), "Color Universal Design", without black (kept for text).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu"
GOOD = "#009E73"
WARN = "#E69F00"
BAD = "#D55E00"
NEUTRAL = "#999999"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


def color(index: int) -> str:
    """The palette's colour number `index` (cycling)."""
    return PALETTE[index % len(PALETTE)]


def rgba(hex_color: str, alpha: float) -> str:
    """'#RRGGBB' -> 'rgba(r,g,b,alpha)' for translucent bands."""
    value = hex_color.lstrip("#")
    red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def base_layout(figure: go.Figure, *, title: str, height: int = 360,
                uirevision: str | None = "keep") -> go.Figure:
    """Common layout: title, font, margins, legend on top; `uirevision` keeps zoom on refresh."""
    # No named template: resolving one costs ~40-130 ms per figure; the look is set here.
    figure.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        font={"family": FONT, "size": 12, "color": "#2a3f5f"},
        plot_bgcolor="white",
        paper_bgcolor="white",
        height=height,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        colorway=PALETTE,
        uirevision=uirevision,
    )
    axis = {"gridcolor": "#EBF0F8", "linecolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "automargin": True}
    figure.update_xaxes(**axis)
    figure.update_yaxes(**axis)
    return figure


def empty_figure(message: str, *, title: str = "", hint: str | None = None,
                 height: int = 300) -> go.Figure:
    """A titled blank figure saying why there is nothing to draw and what to do about it."""
    figure = go.Figure()
    text = _escape(message)
    if hint:
        text += f"<br><span style='font-size:12px'>{_escape(hint)}</span>"
    figure.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper",
                          showarrow=False, font={"size": 15, "color": "#555"})
    base_layout(figure, title=title, height=height, uirevision=None)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(meta={"empty": True, "message": message})
    return figure


def is_empty(figure: go.Figure | dict) -> bool:
    """True for figures made by `empty_figure` (tests and pages use it)."""
    layout = figure["layout"] if isinstance(figure, dict) else figure.layout
    meta = layout["meta"] if isinstance(layout, dict) else layout.meta
    return bool(meta and dict(meta).get("empty"))


def _escape(text: str) -> str:
    """Plotly annotations interpret a little HTML; data values must stay plain text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

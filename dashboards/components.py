"""Reusable layout pieces for every page (drift and fairness pages use them too).

All text goes through Dash components as plain strings, so values from the data (class
names, segment values, file names) are rendered as text, never as HTML.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

GRAPH_CONFIG: dcc.Graph.Config = {"displaylogo": False,
                "modeBarButtonsToRemove": ["lasso2d", "select2d"]}

STATE_COLORS = {"firing": "danger", "pending": "warning", "resolved": "success",
                "acknowledged": "info", "silenced": "secondary"}


def page_header(title: str, description: str) -> html.Div:
    """Page title and one sentence saying what the page answers."""
    return html.Div([html.H2(title, className="h4 mb-1"),
                     html.P(description, className="text-muted mb-3")], className="page-header")


def graph(graph_id: str | dict, *, height: int | None = None) -> dcc.Graph:
    extra: dict[str, Any] = {"style": {"height": f"{height}px"}} if height else {}
    return dcc.Graph(id=graph_id, config=GRAPH_CONFIG, **extra)


def card(children: Any, *, title: str | None = None, class_name: str = "mb-3") -> dbc.Card:
    body = [html.H3(title, className="h6 card-title")] if title else []
    return dbc.Card(dbc.CardBody(body + (children if isinstance(children, list) else [children])),
                    className=class_name)


def empty_state(message: str, hint: str | None = None, *, color: str = "light",
                alert_id: str | None = None) -> dbc.Alert:
    """What to say instead of a table or figure that has nothing to show (or cannot)."""
    children: list[Any] = [html.Strong(message)]
    if hint:
        children += [html.Br(), html.Span(hint)]
    props: dict[str, Any] = {"id": alert_id} if alert_id else {}
    return dbc.Alert(children, color=color, className="empty-state mb-0", **props)


def state_badge(state: str | None) -> dbc.Badge:
    text = str(state or "unknown")
    return dbc.Badge(text, color=STATE_COLORS.get(text, "secondary"), className="me-1")


def fmt_rate(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "n/a"
    return f"{float(value):.{digits}f}"


def fmt_interval(low: Any, high: Any) -> str:
    if fmt_rate(low) == "n/a" or fmt_rate(high) == "n/a":
        return ""
    return f"[{fmt_rate(low)}, {fmt_rate(high)}]"


def fmt_percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.0%}"


def fmt_time(value: Any) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, TypeError):
        return str(value)


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def table(frame: pd.DataFrame, columns: Sequence[str] | None = None, *,
          headers: dict[str, str] | None = None,
          render: dict[str, Callable[[dict[str, Any]], Any]] | None = None,
          table_id: str | None = None, max_rows: int = 500, class_name: str = "") -> dbc.Table:
    """A plain HTML table of `frame` (text cells; `render[column](row)` for custom cells, with
    `row` a dict of the row's values); each cell's class is `col-<column>` (for CSS), and
    `class_name` is added to the table's."""
    columns = list(columns or frame.columns)
    headers = headers or {}
    render = render or {}
    head = html.Thead(html.Tr([html.Th(headers.get(c, c.replace("_", " "))) for c in columns]))
    rows = []
    # records (dicts), not iterrows: a Series per row costs more than the cells themselves
    # the frames shown have text column names (pandas types any label as Hashable)
    records = cast(list[dict[str, Any]], frame.head(max_rows).to_dict("records"))
    for row in records:
        rows.append(html.Tr([html.Td(render[c](row) if c in render else _cell(row.get(c)), className=f"col-{c}")
                             for c in columns]))
    props: dict[str, Any] = {"id": table_id} if table_id else {}
    return dbc.Table([head, html.Tbody(rows)], bordered=False, hover=True, size="sm", striped=True,
                     responsive=True, className=f"data-table {class_name}".strip(), **props)


def kpi(label: str, value: str, detail: str | None = None, *, color: str | None = None,
        kpi_id: str | None = None) -> html.Div:
    """A big number with a label and a one-line detail (e.g. the interval)."""
    props: dict[str, Any] = {"id": kpi_id} if kpi_id else {}
    if color:
        props["style"] = {"borderLeft": f"4px solid {color}"}
    return html.Div([html.Div(label, className="kpi-label"),
                     html.Div(value, className="kpi-value"),
                     html.Div(detail or "", className="kpi-detail")],
                    className="kpi", **props)

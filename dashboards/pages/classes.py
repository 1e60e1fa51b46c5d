"""Classes: per-class precision, recall and F1 over time, a confusion matrix per window.

Rates carry 95% bands, supports are bars under them, windows whose labels are not yet mature
are drawn provisional, the label-free estimate is dashed next to the realized recall; the
chosen class's best current recall (realized counts plus the estimate of the unlabelled part)
is drawn beside both, with the calibration the estimate used and its warning when flagged,
and a warning when the label-shift estimate of the class's prevalence (BBSE) disagrees with
the score-based one (CBPE) in that window.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from dashboards import components as ui
from dashboards.data import core, estimation
from dashboards.figures import core as figures
from dashboards.figures.estimation import best_recall_figure
from dashboards.figures.style import empty_figure
from dashboards.filters import from_inputs
from dashboards.layout import keep_in_url, query_choice

dash.register_page(__name__, path="/classes", name="Classes", order=1, title="Classes - classifier-monitor",
                   filters=("model", "window", "range", "class"))

FILTERS = [Input("filter-model", "value"), Input("filter-window", "value"),
           Input("filter-range", "start_date"), Input("filter-range", "end_date"),
           Input("filter-class", "value")]


METRICS = ("recall", "precision", "f1")
# the page's own controls, kept in the URL like the filters (?metric=precision&ending=...)
URL_STORE = keep_in_url("classes-url", {"metric": "classes-metric", "ending": "classes-confusion-end"})


def layout(metric: Any = None, ending: Any = None, **_query: Any) -> html.Div:
    """The page; `metric` and `ending` (the confusion matrix's window end) come from the URL."""
    ending = query_choice(ending, None, None)
    return html.Div([
        ui.page_header("Classes", "Per-class rates over rolling windows, keyed by prediction time; "
                       "recent windows stay provisional until their labels arrive."),
        html.Div(id="classes-message"),
        URL_STORE,
        dbc.Row([
            dbc.Col(dbc.RadioItems(id="classes-metric", value=query_choice(metric, METRICS, "recall"), inline=True,
                                   options=[{"label": figures.METRIC_NAMES[m], "value": m}
                                            for m in METRICS]), md="auto"),
        ], className="mb-2"),
        ui.card(ui.graph("classes-over-time")),
        ui.card(ui.graph("classes-detail")),
        ui.card([ui.graph("classes-best"), html.Div(id="classes-best-note")]),
        ui.card([
            dbc.Row([dbc.Col(dbc.Label("Window ending", className="small text-muted"), md="auto"),
                     dbc.Col(dcc.Dropdown(id="classes-confusion-end", clearable=False, value=ending,
                                          options=[{"label": ending, "value": ending}] if ending else []),
                             md=4)],
                    className="g-2 mb-2 align-items-center"),
            ui.graph("classes-confusion"),
        ]),
    ])


@dash.callback(
    Output("classes-over-time", "figure"), Output("classes-detail", "figure"),
    Output("classes-confusion-end", "options"), Output("classes-confusion-end", "value"),
    Output("classes-message", "children"),
    Input("data-version", "data"), *FILTERS, Input("classes-metric", "value"),
    State("classes-confusion-end", "value"),
)
def update_classes(_version: Any, model: str | None, window: str | None, start: str | None,
                   end: str | None, cls: str | None, metric: str | None,
                   chosen_end: str | None) -> tuple[Any, ...]:
    """Rates over time for every class and for the chosen class; the window-end choices."""
    filters = from_inputs(model, window, start, end, cls, None)
    result = core.class_metrics(filters)
    message = ui.empty_state(result.message, result.hint) if result.message else None
    if result.empty:
        blank = empty_figure(result.message or "No data", title="Per-class rates", hint=result.hint)
        return blank, blank, [], None, message
    minority = core.facets(filters.model).minority
    frame = result.frame
    over_time = figures.classes_over_time(frame, metric=metric or "recall", window=filters.window,
                                          minority=minority)
    detail = figures.class_detail(frame, filters.cls, window=filters.window)
    ends = sorted(frame["end"].unique(), reverse=True)
    options = [{"label": f"{e:%Y-%m-%d %H:%M} UTC", "value": e.isoformat()} for e in map(_ts, ends)]
    values = {o["value"] for o in options}
    mature = figures.latest_window(frame)
    default = _ts(mature["end"].iloc[0]).isoformat() if not mature.empty else options[0]["value"]
    return over_time, detail, options, chosen_end if chosen_end in values else default, message


@dash.callback(
    Output("classes-confusion", "figure"),
    Input("classes-confusion-end", "value"), Input("filter-model", "value"),
    Input("filter-window", "value"), Input("data-version", "data"),
)
def update_confusion(end: str | None, model: str | None, window: str | None, _version: Any) -> go.Figure:
    """Confusion matrix of the chosen window (the newest mature one by default)."""
    filters = from_inputs(model, window, None, None, None, None)
    if not end:
        return empty_figure("Choose a window", title="Confusion matrix",
                            hint="No window ends in this date range yet.")
    result = core.confusion(filters, end)
    return figures.confusion_figure(result.frame, result.meta.get("classes", []),
                                    end=result.meta.get("end"), window=filters.window)


@dash.callback(
    Output("classes-best", "figure"), Output("classes-best-note", "children"),
    Input("data-version", "data"), *FILTERS,
)
def update_best(_version: Any, model: str | None, window: str | None, start: str | None,
                end: str | None, cls: str | None) -> tuple[Any, Any]:
    """The chosen class's best current recall beside the realized and estimated ones, with the
    calibration the estimate used, its warning when flagged, and the label-shift warning when
    BBSE and CBPE disagree on the class's prevalence."""
    filters = from_inputs(model, window, start, end, cls, None)
    result = core.class_metrics(filters)
    if result.empty:
        return empty_figure(result.message or "No data", title="Best current recall", hint=result.hint), None
    note = estimation.estimate_note(filters)
    parts: list[Any] = []
    if note is not None:
        parts.append(html.P(note.sentence, className="small text-muted mb-1", id="classes-calibration-note"))
        if note.warning:
            parts.append(dbc.Alert([html.Strong("Estimate flagged: "), note.warning], color="warning",
                                   className="py-2 small mb-0", id="classes-estimation-warning"))
        if note.label_shift:
            parts.append(dbc.Alert([html.Strong("Class mix: "), f"{note.label_shift}. Per window and segment: ",
                                    html.Code("monitor label-shift")],
                                   color="warning", className="py-2 small mb-0 mt-1",
                                   id="classes-label-shift-warning"))
    return best_recall_figure(result.frame, filters.cls, window=filters.window), parts


def _ts(value: Any) -> pd.Timestamp:
    return pd.Timestamp(value)

"""Drift: which inputs (and predicted-class mix, scores) moved away from the reference.

Features ranked by drift at the newest window, sparklines of the chosen method over time, and
reference vs current distributions of a chosen feature, overall or for one value of the filter
bar's segment. Callbacks are thin: `dashboards.data.drift` then `dashboards.figures.drift`.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from dashboards import components as ui
from dashboards.data import drift as data
from dashboards.figures import drift as figures
from dashboards.figures.style import empty_figure
from dashboards.filters import OVERALL, from_inputs
from dashboards.layout import keep_in_url, query_choice

dash.register_page(__name__, path="/drift", name="Drift", order=5, title="Drift - classifier-monitor",
                   filters=("model", "window", "range", "segment"))

FILTERS = [Input("filter-model", "value"), Input("filter-window", "value"),
           Input("filter-range", "start_date"), Input("filter-range", "end_date"),
           Input("filter-segment", "value")]


# the page's own controls, kept in the URL like the filters (?method=psi&feature=age&value=south)
URL_CONTROLS = {"method": "drift-method", "feature": "drift-feature", "value": "drift-segment-value"}
URL_STORE = keep_in_url("drift-url", URL_CONTROLS)


def _dropdown(component_id: str, label: str, options: list[dict[str, str]], value: str | None) -> dbc.Col:
    return dbc.Col([dbc.Label(label, html_for=component_id, className="small mb-0"),
                    dcc.Dropdown(id=component_id, options=options, value=value, clearable=False)], md=4)


def layout(method: Any = None, feature: Any = None, value: Any = None, **_query: Any) -> html.Div:
    """The page; `method`, `feature` and `value` come from the URL (checked by the callbacks)."""
    methods = [{"label": f"{m}: {data.METHOD_LABELS[m]}", "value": m} for m in data.METHODS]
    value = query_choice(value, None, OVERALL)
    feature = query_choice(feature, None, None)
    return html.Div([
        ui.page_header("Drift", "Labels come late; drift is the first sign that something changed. Each "
                       "feature's distribution per window against the reference, overall and per segment value."),
        html.Div(id="drift-message"),
        URL_STORE,
        dbc.Row([
            _dropdown("drift-method", "Method", methods, query_choice(method, data.METHODS, "js")),
            _dropdown("drift-segment-value", "Segment value", _value_options([value]), value),
            _dropdown("drift-feature", "Feature (distribution)", _feature_options([feature] if feature else []),
                      feature),
        ], className="mb-3"),
        ui.card(ui.graph("drift-ranking")),
        ui.card(ui.graph("drift-sparklines")),
        ui.card(ui.graph("drift-distribution")),
    ])


def _feature_options(features: list[str]) -> list[dict[str, str]]:
    return [{"label": figures.feature_label(f), "value": f} for f in features]


def _value_options(values: list[str]) -> list[dict[str, str]]:
    return [{"label": "overall" if v == OVERALL else v, "value": v} for v in values]


def _series_label(segment: str, value: str) -> str:
    return "overall" if value == OVERALL or segment == OVERALL else f"{segment} = {value}"


@dash.callback(
    Output("drift-ranking", "figure"), Output("drift-sparklines", "figure"),
    Output("drift-feature", "options"), Output("drift-feature", "value"),
    Output("drift-segment-value", "options"), Output("drift-message", "children"),
    Input("data-version", "data"), *FILTERS,
    Input("drift-method", "value"), Input("drift-segment-value", "value"),
    State("drift-feature", "value"),
)
def update_drift(_version: Any, model: str | None, window: str | None, start: str | None, end: str | None,
                 segment: str | None, method: str | None, segment_value: str | None,
                 feature: str | None) -> tuple[Any, ...]:
    filters = from_inputs(model, window, start, end, None, segment)
    method = method if method in data.METHODS else "js"
    result = data.drift_records(filters)
    if result.empty:
        blank = empty_figure(result.message or "No drift records", title="Drift by feature", hint=result.hint)
        message = ui.empty_state(result.message or "No drift records", result.hint)
        return blank, blank, [], None, _value_options([OVERALL]), message
    values = data.segment_values(result.frame, filters.segment)
    segment_value = segment_value if segment_value in values else OVERALL
    records = data.series(result.frame, filters.segment, segment_value)
    label = _series_label(filters.segment, segment_value)
    ranked = data.rank_features(records, method)
    ranking = figures.ranking_figure(ranked, method=method, window=filters.window, series_label=label)
    lines = figures.sparklines_figure(records, method=method, features=list(ranked["feature"]), window=filters.window)
    features = result.meta["features"]
    feature = feature if feature in features else (list(ranked["feature"]) or features)[0]
    return (ranking, lines, _feature_options(features), feature, _value_options(values), None)


@dash.callback(
    Output("drift-distribution", "figure"),
    Input("data-version", "data"), *FILTERS,
    Input("drift-feature", "value"), Input("drift-segment-value", "value"),
)
def update_distribution(_version: Any, model: str | None, window: str | None, start: str | None,
                        end: str | None, segment: str | None, feature: str | None,
                        segment_value: str | None) -> Any:
    filters = from_inputs(model, window, start, end, None, segment)
    if not feature:
        return empty_figure("Pick a feature", title="Reference vs current distribution",
                            hint="Choose a feature above to compare its distribution with the reference.")
    result = data.distribution(filters, feature, segment_value or OVERALL)
    if result.empty:
        return empty_figure(result.message or "No data", title=f"{figures.feature_label(feature)}: reference vs current",
                            hint=result.hint)
    return figures.distribution_figure(result.frame, feature=feature, window=filters.window,
                                       end=result.meta.get("end"),
                                       series_label=_series_label(filters.segment, segment_value or OVERALL))

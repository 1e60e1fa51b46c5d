"""Subgroups: recall per segment value x class, over time, and the worst slices ranked.

The segment attribute is the filter bar's `filter-segment`; when it is "*" (no choice) the
attribute with the worst finding (`data.subgroups.worst_attribute`: the slice whose recall
interval lies furthest below its reference). The class for the time series is `filter-class`.
A slice under the minimum support is judged when its interval proves the drop; its status is
the alert state of its series when a rule has evaluated it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dash
from dash import Input, Output, html

from dashboards import components as ui
from dashboards.data import core
from dashboards.data import subgroups as judged
from dashboards.figures import core as figures
from dashboards.figures.style import empty_figure
from dashboards.filters import Filters, from_inputs

dash.register_page(__name__, path="/subgroups", name="Subgroups", order=2,
                   title="Subgroups - classifier-monitor")

WORST_HEADERS = {"segment_value": "value", "recall_low": "95% low", "recall_high": "95% high",
                 "reference_recall": "reference", "drop": "drop vs reference"}


def _chosen(filters: Filters) -> Filters:
    """The filters with the attribute to show: the filter's, else the worst finding's."""
    attribute = judged.worst_attribute(filters, core.facets(filters.model).segments)
    return replace(filters, segment=attribute) if attribute else filters


def layout(**_query: Any) -> html.Div:
    return html.Div([
        ui.page_header("Subgroups", "Where does the model miss the rare cases? Recall per segment value "
                       "and class, with supports; a slice under the minimum support is judged only when its "
                       "interval proves the drop."),
        html.Div(id="subgroups-message"),
        ui.card(ui.graph("subgroups-heatmap")),
        ui.card(ui.graph("subgroups-lines")),
        ui.card(html.Div(id="subgroups-worst"), title="Worst slices (newest mature window): ranked by how far "
                "the upper end of the 95% recall interval lies below the slice's reference recall"),
    ])


@dash.callback(
    Output("subgroups-heatmap", "figure"), Output("subgroups-lines", "figure"),
    Output("subgroups-worst", "children"), Output("subgroups-message", "children"),
    Input("data-version", "data"), Input("filter-model", "value"), Input("filter-window", "value"),
    Input("filter-range", "start_date"), Input("filter-range", "end_date"),
    Input("filter-class", "value"), Input("filter-segment", "value"),
)
def update_subgroups(_version: Any, model: str | None, window: str | None, start: str | None,
                     end: str | None, cls: str | None, segment: str | None) -> tuple[Any, ...]:
    filters = from_inputs(model, window, start, end, cls, segment)
    result = core.subgroup_metrics(_chosen(filters))
    message = ui.empty_state(result.message, result.hint) if result.message else None
    if result.empty:
        blank = empty_figure(result.message or "No data", title="Recall by subgroup", hint=result.hint)
        return blank, blank, ui.empty_state(result.message or "No data", result.hint), message
    attribute = result.meta["segment"]
    if filters.segment != attribute:
        note = ui.empty_state(f"Showing segment '{attribute}' (its slices hold the worst finding)",
                              "Choose a segment attribute in the filter bar to see another one.")
        message = [note, message] if message else note
    latest = figures.latest_window(result.frame)
    min_support, min_drop = result.meta["min_support"], judged.min_drop(filters.model)
    heatmap = figures.segment_heatmap(latest, segment=attribute, min_support=min_support,
                                      window=filters.window, sort_class=filters.cls, min_drop=min_drop)
    lines = figures.segment_lines(result.frame, cls=filters.cls, segment=attribute, window=filters.window,
                                  reference=result.meta["overall_reference"].get(filters.cls))
    worst = figures.worst_slices(latest, min_support=min_support, min_drop=min_drop,
                                 alert_status=judged.alert_status(filters.model, attribute))
    table = ui.table(worst, headers=WORST_HEADERS, table_id="subgroups-worst-table",
                     render={"recall": lambda r: ui.fmt_rate(r["recall"]),
                             "recall_low": lambda r: ui.fmt_rate(r["recall_low"]),
                             "recall_high": lambda r: ui.fmt_rate(r["recall_high"]),
                             "reference_recall": lambda r: ui.fmt_rate(r["reference_recall"]),
                             "drop": lambda r: ui.fmt_rate(r["drop"]),
                             "support": lambda r: str(int(r["support"]))})
    return heatmap, lines, table, message

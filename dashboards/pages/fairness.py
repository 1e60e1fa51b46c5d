"""Fairness: gaps between subgroups over time, one window's groups, the worst groups ranked.

Uses the filter bar (model, window, date range, class, segment); its own controls are the
metric (`fairness-metric`) and the window end for the bars (`fairness-end`). With segment "*"
the gap chart shows every attribute and the bars the one with the worst finding (the group
whose ratio interval lies furthest from parity). Gaps are ranked by what the interval
supports, so a tiny group with a ratio of 0 and an interval up to 0.9 is shown as tiny, not as
the headline.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from dashboards import components as ui
from dashboards.data import fairness as data
from dashboards.figures import fairness as figures
from dashboards.figures.style import empty_figure
from dashboards.filters import from_inputs
from dashboards.layout import keep_in_url, query_choice

dash.register_page(__name__, path="/fairness", name="Fairness", order=4,
                   title="Fairness - classifier-monitor")

WORST_HEADERS = {"attribute": "attribute", "group": "group", "value": "rate",
                 "interval": "95% interval", "support": "support",
                 "reference_group": "reference", "ratio": "ratio",
                 "ratio_interval": "ratio 95% interval",
                 "disparity_at_least": "disparity at least", "flagged": "flagged"}


URL_STORE = keep_in_url("fairness-url", {"metric": "fairness-metric", "ending": "fairness-end"})


def layout(metric: Any = None, ending: Any = None, **_query: Any) -> html.Div:
    metric_options = [{"label": label, "value": value} for value, label in data.METRIC_LABELS.items()]
    controls = html.Div([
        html.Label("Metric", htmlFor="fairness-metric", className="form-label me-2"),
        dcc.Dropdown(id="fairness-metric", options=metric_options, clearable=False,
                     value=query_choice(metric, list(data.METRIC_LABELS), "tpr"),
                     style={"minWidth": "340px"}),
        html.Label("Window ending", htmlFor="fairness-end", className="form-label ms-3 me-2"),
        dcc.Dropdown(id="fairness-end", options=[], value=query_choice(ending, None, None), clearable=True,
                     placeholder="newest", style={"minWidth": "220px"}),
    ], className="d-flex align-items-center flex-wrap mb-3")
    return html.Div([
        ui.page_header("Fairness", "Does the model catch the rare class equally well for every "
                       "group? Per-group rates with 95% intervals, ratios to a reference group, "
                       "and flags only where the whole interval lies outside the tolerance band."),
        URL_STORE,
        controls,
        html.Div(id="fairness-message"),
        ui.card(ui.graph("fairness-gap")),
        ui.card(ui.graph("fairness-groups")),
        ui.card(html.Div(id="fairness-worst"), title="Worst groups in this window (intersections "
                "first when configured): ranked by the smallest disparity the interval supports; "
                "tiny: support under the minimum, judged only when the interval proves it"),
    ])


@dash.callback(
    Output("fairness-gap", "figure"), Output("fairness-groups", "figure"),
    Output("fairness-worst", "children"), Output("fairness-message", "children"),
    Output("fairness-end", "options"),
    Input("data-version", "data"), Input("filter-model", "value"), Input("filter-window", "value"),
    Input("filter-range", "start_date"), Input("filter-range", "end_date"),
    Input("filter-class", "value"), Input("filter-segment", "value"),
    Input("fairness-metric", "value"), Input("fairness-end", "value"),
    State("refresh-interval", "n_intervals"),
)
def update_fairness(_version: Any, model: str | None, window: str | None, start: str | None,
                    end: str | None, cls: str | None, segment: str | None, metric: str | None,
                    chosen_end: str | None, _ticks: Any) -> tuple[Any, ...]:
    filters = from_inputs(model, window, start, end, cls, segment)
    result = data.fairness_view(filters, metric or "tpr", chosen_end)
    meta = result.meta
    if result.empty:
        message = ui.empty_state(result.message or "No data", result.hint)
        blank = empty_figure(result.message or "No data", title="Fairness", hint=result.hint)
        return blank, blank, message, None, []
    chosen = data.segment_choice(filters)
    attributes = [chosen] if chosen else None
    gap = figures.gap_over_time(meta["gaps"], tolerance=meta["tolerance"], metric=meta["metric"],
                                cls=meta["class"], window=meta["window"], attributes=attributes)
    window_frame = result.frame[result.frame["end"] == meta["end"]]
    bars = figures.group_bars(window_frame, attribute=meta["attribute"], metric=meta["metric"],
                              cls=meta["class"], end=meta["end"], tolerance=meta["tolerance"],
                              min_support=meta["min_support"])
    worst = meta["worst"]
    if worst.empty:
        table = ui.empty_state("No group has a ratio in this window",
                               "Groups need cases in the metric's denominator (positives for the "
                               "true positive rate), as does what they are compared with.")
    else:
        table = ui.table(worst.assign(interval="", ratio_interval=""), list(WORST_HEADERS),
                         headers=WORST_HEADERS, table_id="fairness-worst-table", render={
                             "value": lambda r: ui.fmt_rate(r["value"], 3),
                             "interval": lambda r: ui.fmt_interval(r["low"], r["high"]),
                             "ratio": lambda r: ui.fmt_rate(r["ratio"]),
                             "ratio_interval": lambda r: ui.fmt_interval(r["ratio_low"], r["ratio_high"]),
                             "disparity_at_least": lambda r: f"x{r['disparity_at_least']:.2f}",
                             "support": lambda r: str(int(r["support"])) + (" (tiny)" if r["tiny"] else ""),
                             "flagged": lambda r: "yes" if r["flagged"] else ""})
    options = [{"label": f"{e:%Y-%m-%d %H:%M} UTC", "value": e.isoformat()} for e in meta["ends"][::-1]]
    note = None
    if filters.segment not in meta["attributes"]:
        note = ui.empty_state(f"Showing '{meta['attribute']}' (its groups hold the worst finding)",
                              "Choose a segment attribute in the filter bar to see another one.")
    return gap, bars, table, note, options

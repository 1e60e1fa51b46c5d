"""Overview: every model's health at a glance.

Per model: minority-class recall of the newest window vs the reference with its 95% interval,
label coverage, firing alerts, last ingest and rejects, and a 30-window recall trend.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html

from dashboards import components as ui
from dashboards.data import core
from dashboards.figures import core as figures
from dashboards.filters import from_inputs

dash.register_page(__name__, path="/", name="Overview", order=0, title="Overview - classifier-monitor")


def layout(**_query: Any) -> html.Div:
    return html.Div([
        ui.page_header("Overview", "Are the rare cases still being caught? Minority-class recall of "
                       "the newest window against the reference, per model."),
        html.Div(id="overview-cards"),
    ])


@dash.callback(
    Output("overview-cards", "children"),
    Input("data-version", "data"), Input("filter-window", "value"),
    Input("filter-range", "start_date"), Input("filter-range", "end_date"),
)
def update_overview(_version: Any, window: str | None, start: str | None, end: str | None) -> list[Any]:
    """One card per configured model."""
    filters = from_inputs(None, window, start, end, None, None)
    models = core.overview(filters)
    if not models:
        return [ui.empty_state("No model configured", "Add a [[models]] section to monitor.toml.")]
    return [model_card(health, filters.window) for health in models]


def model_card(health: core.ModelHealth, window: str) -> dbc.Card:
    """The card of one model (pure: built from a ModelHealth)."""
    tiles: list[Any] = []
    for _, row in health.minority.iterrows():
        reference = row.get("reference_recall")
        colour = figures.status_color(row["recall"], reference, row["recall_low"], row["recall_high"])
        detail = f"95% {ui.fmt_interval(row['recall_low'], row['recall_high'])} · reference " \
                 f"{ui.fmt_rate(reference)} · n={int(row['support'])}"
        if bool(row.get("provisional")):
            detail += " · provisional"
        tiles.append(ui.kpi(f"Recall of {row['class']} ({window})", ui.fmt_rate(row["recall"]), detail,
                            color=colour))
    tiles.append(ui.kpi("Label coverage", ui.fmt_percent(health.label_coverage),
                        f"{health.n_predictions} predictions in the window"))
    tiles.append(ui.kpi("Firing alerts", str(health.firing), "see Alerts",
                        color=figures.BAD if health.firing else None))
    tiles.append(ui.kpi("Last ingest (UTC)", ui.fmt_time(health.last_ingest).removesuffix(" UTC") or "never",
                        f"{health.rejected_rows} rejected rows · {health.failed_files} failed files"))
    body: list[Any] = [dbc.Row([dbc.Col(tile, md=True) for tile in tiles], className="g-2 mb-2")]
    if health.message:
        body.append(ui.empty_state(health.message, health.hint))
    if not health.trend.empty:
        body.append(dcc.Graph(figure=figures.sparkline(health.trend, title=f"Minority recall, last "
                                                       f"{health.trend['end'].nunique()} windows"),
                              config={"displayModeBar": False}, style={"height": "170px"}))
    header = dbc.CardHeader([html.Span(health.name, className="fw-semibold me-2"),
                             ui.state_badge("firing") if health.firing else dbc.Badge("ok", color="success"),
                             dcc.Link("classes", href=f"/classes?model={health.name}", className="ms-3 small"),
                             dcc.Link("alerts", href=f"/alerts?model={health.name}", className="ms-2 small")])
    return dbc.Card([header, dbc.CardBody(body)], className="mb-3 model-card")

"""Overview: every model's health at a glance.

Per model: minority-class recall of the newest complete window vs the reference with its 95%
interval (the window end on every tile), label coverage, open alerts, last ingest and rejects,
then what is wrong (open incidents with their cause slice, the other open alerts and the
worst slices of every attribute, each a link to its evidence) and a 30-window recall trend. The badge follows the evidence: an interval proving a
drop is red even without an alert. Class and Segment filters do not apply here.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, dcc, html

from dashboards import components as ui
from dashboards.data import core
from dashboards.figures import core as figures
from dashboards.filters import from_inputs
from dashboards.incidents import incident_list

MAX_ITEMS = 8  # open alerts listed on a card; the rest are one link away

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
    ending = f"{window} window ending {_day(health.end)}" if health.end is not None else window
    tiles: list[Any] = []
    for _, row in health.minority.iterrows():
        reference = row.get("reference_recall")
        colour = figures.status_color(row["recall"], reference, row["recall_low"], row["recall_high"],
                                      min_drop=health.min_drop)
        detail = f"95% {ui.fmt_interval(row['recall_low'], row['recall_high'])} · reference " \
                 f"{ui.fmt_rate(reference)} · n={int(row['support'])}"
        if bool(row.get("provisional")):
            detail += " · provisional: labels still arriving"
        tiles.append(ui.kpi(f"Recall of {row['class']} ({ending})", ui.fmt_rate(row["recall"]), detail,
                            color=colour))
    tiles.append(ui.kpi(f"Label coverage ({ending})", ui.fmt_percent(health.label_coverage),
                        f"{health.n_predictions} predictions in the window"))
    tiles.append(ui.kpi("Open alerts (now)", str(len(health.open_alerts)),
                        f"{health.firing} firing · {len(health.open_alerts) - health.firing} pending"
                        + (f" · {len(health.incidents)} incident{'s' if len(health.incidents) != 1 else ''}"
                           if not health.incidents.empty else ""),
                        color=figures.BAD if health.firing else None))
    tiles.append(ui.kpi("Last ingest (UTC)", ui.fmt_time(health.last_ingest).removesuffix(" UTC") or "never",
                        f"{health.rejected_rows} rejected rows · {health.failed_files} failed files"))
    # triage first: the open incidents (the broken slices) above the headline numbers
    body: list[Any] = [open_incidents(health)] if not health.incidents.empty else []
    body.append(dbc.Row([dbc.Col(tile, md=True) for tile in tiles], className="g-2 mb-2"))
    if health.message:
        body.append(ui.empty_state(health.message, health.hint))
    body.append(what_is_wrong(health))
    if not health.trend.empty:
        body.append(dcc.Graph(figure=figures.sparkline(health.trend, title=f"Minority recall, last "
                                                       f"{health.trend['end'].nunique()} windows"),
                              config={"displayModeBar": False}, style={"height": "170px"}))
    header = dbc.CardHeader([html.Span(health.name, className="fw-semibold me-2"), model_badge(health),
                             dcc.Link("classes", href=f"/classes?model={health.name}", className="ms-3 small"),
                             dcc.Link("alerts", href=f"/alerts?model={health.name}", className="ms-2 small")])
    return dbc.Card([header, dbc.CardBody(body)], className="mb-3 model-card")


def model_badge(health: core.ModelHealth) -> dbc.Badge:
    """The model's status, following the evidence on screen as well as the alert state: an
    interval that proves a drop is red even when no alert was evaluated (e.g. a backfill)."""
    if health.firing:
        return ui.state_badge("firing")
    if health.proven_drop:
        return dbc.Badge("drop proven", color="danger", className="me-1 model-status")
    if len(health.open_alerts):
        return ui.state_badge("pending")
    if health.minority.empty:
        return dbc.Badge("no data", color="secondary", className="me-1 model-status")
    return dbc.Badge("ok", color="success", className="me-1 model-status")


def open_incidents(health: core.ModelHealth) -> html.Div:
    """The open incidents: the cause slice, the drop, the series it explains, the evidence."""
    found = health.incidents
    more = len(found) - MAX_ITEMS
    extra = [dcc.Link(f"and {more} more", href=f"/alerts?model={health.name}", className="small")] \
        if more > 0 else []
    return html.Div([html.H6(f"Open incidents ({len(found)})", className="mb-1"),
                     *incident_list(found, limit=MAX_ITEMS), *extra], className="overview-incidents mb-2")


def what_is_wrong(health: core.ModelHealth) -> html.Div:
    """The open alerts no incident explains (class, slice, value vs reference with its
    interval, since when) and the worst slices of every attribute, each a link to its evidence."""
    parts: list[Any] = []
    found = health.incidents
    members = set(found["id"].astype(int)) if not found.empty else set()
    loose = health.open_alerts
    if members and "incident_id" in loose:
        loose = loose[~loose["incident_id"].isin(members)]
    alerts = [_alert_item(row) for _, row in loose.head(MAX_ITEMS).iterrows()]
    more = len(loose) - MAX_ITEMS
    if more > 0:
        alerts.append(html.Li(dcc.Link(f"and {more} more", href=f"/alerts?model={health.name}")))
    heading = "Other open alerts" if members else "Open alerts"
    none = "No other open alerts." if members else "No open alerts."
    parts += [html.H6(heading, className="mb-1"),
              html.Ul(alerts, className="small mb-2 overview-alerts") if alerts
              else html.P(none, className="small text-muted mb-2")]
    if not health.worst.empty:
        ending = f" ({_day(health.end)})" if health.end is not None else ""
        parts += [html.H6(f"Worst slices, all attributes{ending}", className="mb-1"),
                  html.Ul([_slice_item(row) for _, row in health.worst.iterrows()],
                          className="small mb-2 overview-worst")]
    return html.Div(parts, className="overview-triage")



def _slice_name(segment: Any, value: Any) -> str:
    return "overall" if segment == "*" else f"{segment}={value}"


def _alert_item(row: Any) -> html.Li:
    since = f"since {_day(row.get('started_at'))}"
    text = (f"{row['class']} · {_slice_name(row['segment'], row['segment_value'])} · {row['metric']} "
            f"{ui.fmt_rate(row['value'])} {ui.fmt_interval(row['low'], row['high'])} vs reference "
            f"{ui.fmt_rate(row['reference_value'])} · {row['state']} {since}")
    return html.Li([ui.state_badge(str(row["state"])), dcc.Link(text, href=row["href"])])


def _slice_item(row: Any) -> html.Li:
    if row["proven"]:
        mark = dbc.Badge("drop proven", color="danger", className="me-1")
    elif row["status"] == "below reference":
        mark = dbc.Badge("below reference", color="warning", text_color="dark", className="me-1")
    else:
        mark = dbc.Badge(str(row["status"]), color="light", text_color="dark", className="me-1")
    text = (f"{row['class']} · {_slice_name(row['segment'], row['segment_value'])} · recall "
            f"{ui.fmt_rate(row['recall'])} {ui.fmt_interval(row['recall_low'], row['recall_high'])} vs reference "
            f"{ui.fmt_rate(row['reference_recall'])} · n={int(row['support'])}")
    return html.Li([mark, dcc.Link(text, href=row["href"])])


def _day(value: Any) -> str:
    """A window end or time as its UTC date (YYYY-MM-DD), '-' when missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    stamp = pd.Timestamp(value)
    return "-" if pd.isna(stamp) else stamp.strftime("%Y-%m-%d")

"""Alerts: incidents first (the slice that explains a group of alerts, acknowledge and silence
them), then the alert history with state, evidence and its incident, acknowledge and silence
actions, the delivery log.

Actions persist in the database (`monitor.alerts.service`), so an acknowledgement survives a
reload and is seen by the scheduler (no more reminders) and by every other user.

Who may act is `monitor.api.security.dashboard_actor()`: the page disables the buttons when
the dashboard is read-only, and `perform` asks again, because a callback can be called
without the page (a forged POST to /_dash-update-component). With basic auth the action is
recorded under the authenticated user's name, never under a name sent in the request.
"""

from __future__ import annotations

import time
from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from dashboards import components as ui
from dashboards import incidents as incident_views
from dashboards.data import alerts as data
from dashboards.data import incidents as incident_data
from dashboards.data.core import Result
from dashboards.layout import triggered_id
from monitor.api.security import Actor, dashboard_actor

dash.register_page(__name__, path="/alerts", name="Alerts", order=3, title="Alerts - classifier-monitor",
                   filters=("model",))

# state carries the severity and the acknowledgement as badges, `when` the three times: the
# table fits a laptop screen with the message and the silence visible
ALERT_COLUMNS = ["id", "incident", "state", "class", "slice", "value", "evidence", "when", "silenced_until", "message"]
ALERT_HEADERS = {"state": "state", "value": "value vs reference", "evidence": "evidence",
                 "when": "started / fired / resolved (UTC)", "silenced_until": "silenced until"}
# what needs a person first: firing before pending before resolved, critical before warning,
# not yet acknowledged before acknowledged, then the newest
STATE_ORDER = {"firing": 0, "pending": 1, "resolved": 2}
SEVERITY_ORDER = {"critical": 0, "warning": 1}
DELIVERY_COLUMNS = ["created_at", "alert_id", "kind", "severity", "channel", "attempt", "status", "error"]
SILENCE_COLUMNS = ["id", "rule", "class", "segment", "segment_value", "starts_at", "ends_at",
                   "created_by", "comment"]


def layout(**_query: Any) -> html.Div:
    actor = dashboard_actor()
    return html.Div([
        ui.page_header("Alerts", "Minority-recall drops that are both significant and large, with "
                       "their evidence; acknowledge or silence them here."),
        dcc.Store(id="alerts-action-done"), dcc.Store(id="incidents-action-done"),
        ui.card([html.Div(id="alerts-incidents"), html.Hr(),
                 *incident_views.action_form(actor, data.SILENCE_DURATIONS)],
                title="Incidents: the slice that explains a group of alerts (open first, newest first)"),
        dbc.RadioItems(id="alerts-state", value="all", inline=True, className="mb-2",
                       options=[{"label": s, "value": s} for s in data.STATES]),
        ui.card(html.Div(id="alerts-table"), title="Alerts: firing first, then pending, then resolved; "
                "critical before warning; unacknowledged first; newest first"),
        ui.card(action_form(actor), title="Act on an alert"),
        ui.card(html.Div(id="alerts-silences"), title="Active silences"),
        ui.card(html.Div(id="alerts-deliveries"), title="Delivery log (newest 200)"),
    ])


def action_form(actor: Actor) -> list[Any]:
    """The acknowledge / silence form: disabled with the reason when `actor` may not act; the
    name field shows the signed-in user when there is one (and is not editable)."""
    read_only = not actor.allowed
    note = [dbc.Alert(actor.reason, color="warning", className="py-2 small", id="alerts-read-only")] \
        if read_only else []
    return note + [
        dbc.Row([
            dbc.Col([dbc.Label("Alert", className="small text-muted"),
                     dcc.Dropdown(id="alerts-choice", placeholder="choose an alert")], md=4),
            dbc.Col([dbc.Label("Signed in as" if actor.name else "Your name", className="small text-muted"),
                     dbc.Input(id="alerts-by", type="text", maxLength=200, placeholder="e.g. alice",
                               value=actor.name, disabled=read_only or actor.name is not None)], md=2),
            dbc.Col([dbc.Label("Comment", className="small text-muted"),
                     dbc.Input(id="alerts-comment", type="text", maxLength=500)], md=3),
            dbc.Col([dbc.Label("Silence for", className="small text-muted"),
                     dcc.Dropdown(id="alerts-duration", value="1d", clearable=False,
                                  options=[{"label": d, "value": d} for d in data.SILENCE_DURATIONS])],
                    md=1),
            dbc.Col([dbc.Button("Acknowledge", id="alerts-ack", color="primary", className="me-2",
                                disabled=read_only),
                     dbc.Button("Silence", id="alerts-silence", color="secondary", disabled=read_only)],
                    md=2, className="d-flex align-items-end"),
        ], className="g-2"),
        html.Div(id="alerts-feedback", className="mt-2"),
        html.Div(id="alerts-events", className="mt-2"),
    ]


@dash.callback(
    Output("alerts-table", "children"), Output("alerts-choice", "options"),
    Output("alerts-silences", "children"), Output("alerts-deliveries", "children"),
    Output("alerts-incidents", "children"), Output("incidents-choice", "options"),
    Input("data-version", "data"), Input("filter-model", "value"), Input("alerts-state", "value"),
    Input("alerts-action-done", "data"), Input("incidents-action-done", "data"),
)
def update_alerts(_version: Any, model: str | None, state: str | None, _done: Any,
                  _incident_done: Any = None) -> tuple[Any, ...]:
    history = data.alerts(model, state or "all")
    found = incident_data.incidents(model)
    causes: dict[int, str] = {}
    if not found.empty:
        found.frame = found.frame.sort_values("state", key=lambda s: s != "open", kind="stable")
        causes = {int(i): c for i, c in zip(found.frame["id"], found.frame["cause"], strict=True)}
        history.frame = history.frame.assign(incident=[
            "" if pd.isna(i) else f"#{int(i)} {causes.get(int(i), '')}".strip()
            for i in history.frame.get("incident_id", pd.Series([None] * len(history.frame)))])
    if not history.empty:
        history.frame = triage_order(history.frame)
    silences = data.silences(model)
    deliveries = data.deliveries(model)
    choices = [{"label": _choice_label(row), "value": int(row["id"])}
               for _, row in history.frame.iterrows()] if not history.empty else []
    incident_cards = (ui.empty_state(found.message or "No incidents", found.hint) if found.empty
                      else html.Div(incident_views.incident_list(found.frame, limit=20), id="alerts-incident-list"))
    incident_choices = [] if found.empty else [{"label": incident_views.choice_label(row), "value": int(row["id"])}
                                                for row in found.frame.to_dict("records")]
    return (alerts_table(history), choices,
            _table_or_empty(silences, SILENCE_COLUMNS, "alerts-silences-table"),
            _table_or_empty(deliveries, DELIVERY_COLUMNS, "alerts-deliveries-table"),
            incident_cards, incident_choices)


@dash.callback(
    Output("alerts-feedback", "children"), Output("alerts-action-done", "data"),
    Input("alerts-ack", "n_clicks"), Input("alerts-silence", "n_clicks"),
    State("alerts-choice", "value"), State("alerts-by", "value"), State("alerts-comment", "value"),
    State("alerts-duration", "value"),
    prevent_initial_call=True,
)
def act(_ack: Any, _silence: Any, alert_id: int | None, by: str | None, comment: str | None,
        duration: str | None) -> tuple[Any, Any]:
    """Acknowledge or silence the chosen alert; the history refreshes after a success."""
    return perform(triggered_id(), alert_id, by, comment, duration)


def perform(action: Any, alert_id: int | None, by: str | None, comment: str | None,
            duration: str | None) -> tuple[Any, Any]:
    """Run the action of button `action` ("alerts-ack" / "alerts-silence"): feedback + done.

    `by` (typed by the user) is used only when no credential is configured."""
    actor = dashboard_actor()
    if not actor.allowed:
        outcome = data.Outcome(False, actor.reason or "Not allowed.")
    elif action == "alerts-silence":
        outcome = data.silence_alert(alert_id, actor.name or by, duration, comment)
    else:
        outcome = data.acknowledge_alert(alert_id, actor.name or by, comment)
    feedback = dbc.Alert(outcome.message, color="success" if outcome.ok else "warning",
                         className="mb-0", id="alerts-outcome")
    return feedback, (time.time() if outcome.ok else no_update)


@dash.callback(
    Output("incidents-feedback", "children"), Output("incidents-action-done", "data"),
    Input("incidents-ack", "n_clicks"), Input("incidents-silence", "n_clicks"),
    State("incidents-choice", "value"), State("incidents-by", "value"), State("incidents-comment", "value"),
    State("incidents-duration", "value"),
    prevent_initial_call=True,
)
def act_on_incident(_ack: Any, _silence: Any, incident_id: int | None, by: str | None, comment: str | None,
                    duration: str | None) -> tuple[Any, Any]:
    """Acknowledge or silence the chosen incident; the page refreshes after a success."""
    return perform_on_incident(triggered_id(), incident_id, by, comment, duration)


def perform_on_incident(action: Any, incident_id: int | None, by: str | None, comment: str | None,
                        duration: str | None) -> tuple[Any, Any]:
    """As `perform`, for button "incidents-ack" / "incidents-silence" (same rule on who may act)."""
    actor = dashboard_actor()
    if not actor.allowed:
        outcome = data.Outcome(False, actor.reason or "Not allowed.")
    elif action == "incidents-silence":
        outcome = incident_data.silence_incident(incident_id, actor.name or by, duration)
    else:
        outcome = incident_data.acknowledge_incident(incident_id, actor.name or by, comment)
    feedback = dbc.Alert(outcome.message, color="success" if outcome.ok else "warning",
                         className="mb-0", id="incidents-outcome")
    return feedback, (time.time() if outcome.ok else no_update)


@dash.callback(Output("alerts-events", "children"), Input("alerts-choice", "value"),
               Input("alerts-action-done", "data"))
def show_events(alert_id: int | None, _done: Any) -> Any:
    """The chosen alert's notification events (its evidence trail)."""
    if alert_id is None:
        return None
    result = data.events(alert_id)
    if result.empty:
        return ui.empty_state(result.message or "No events", result.hint)
    return ui.table(result.frame, [c for c in ("kind", "severity", "data_time", "created_at", "attempts",
                                              "processed_at", "outcome") if c in result.frame.columns],
                    table_id="alerts-events-table")


def triage_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Alerts in the order a person handles them (see STATE_ORDER): state, severity,
    acknowledgement, then newest first (by when it fired, else started)."""
    acknowledged = frame["acknowledged_by"] if "acknowledged_by" in frame else pd.Series(None, index=frame.index)
    severity = frame["severity"] if "severity" in frame else pd.Series(None, index=frame.index)
    keys = pd.DataFrame({
        "state": frame["state"].map(STATE_ORDER).fillna(len(STATE_ORDER)),
        "severity": severity.map(SEVERITY_ORDER).fillna(len(SEVERITY_ORDER)),
        "acknowledged": acknowledged.notna() & (acknowledged.astype(str) != ""),
        "time": frame["fired_at"].fillna(frame["started_at"]).fillna("").astype(str),
    }, index=frame.index)
    order = keys.sort_values(["state", "severity", "acknowledged", "time"],
                             ascending=[True, True, True, False], kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def alerts_table(history: Result) -> Any:
    """The history table: state with severity and acknowledgement, slice, value vs reference,
    the evidence, the times, the silence and the message."""
    if history.empty:
        return ui.empty_state(history.message or "No alerts", history.hint)
    frame = history.frame.copy()
    frame["slice"] = [f"{s}={v}" if s != "*" else "overall" for s, v in
                      zip(frame["segment"], frame["segment_value"], strict=True)]
    render = {
        "state": _state_cell,
        "value": lambda r: f"{ui.fmt_rate(r['value'])} vs {ui.fmt_rate(r['reference_value'])}",
        "evidence": lambda r: f"95% {ui.fmt_interval(r['low'], r['high'])}, n={_int(r['support'])}"
                              + (f", p={r['p_value']:.2g}" if _number(r.get("p_value")) else ""),
        "when": _when_cell,
        "silenced_until": lambda r: _short_time(r.get("silenced_until")),
        "message": lambda r: r.get("message") or "",
    }
    return ui.table(frame, ALERT_COLUMNS, render=render, table_id="alerts-history-table",
                    headers=ALERT_HEADERS, class_name="alerts-table")


def _state_cell(row: dict[str, Any]) -> Any:
    """State, severity and (when taken) who acknowledged it, as badges."""
    badges = [ui.state_badge(row["state"])]
    if row.get("severity"):
        badges.append(dbc.Badge(str(row["severity"]), color="danger" if row["severity"] == "critical" else "warning",
                                className="me-1", text_color="dark" if row["severity"] != "critical" else None))
    if row.get("acknowledged_by"):
        badges.append(dbc.Badge(f"acknowledged by {row['acknowledged_by']}", color="info", text_color="dark",
                                className="me-1 alerts-acknowledged"))
    return html.Span(badges)


def _when_cell(row: dict[str, Any]) -> Any:
    times = [(label, _short_time(row.get(column))) for label, column in
             (("started", "started_at"), ("fired", "fired_at"), ("resolved", "resolved_at"))]
    return html.Span([html.Div(f"{label} {value}") for label, value in times if value])


def _short_time(value: Any) -> str:
    """'2024-01-15T06:00:00Z' -> '2024-01-15 06:00' (empty for none)."""
    if not value or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value).replace("T", " ")[:16]


def _choice_label(row: pd.Series) -> str:
    where = "overall" if row["segment"] == "*" else f"{row['segment']}={row['segment_value']}"
    return f"#{int(row['id'])} {row['state']} · {row['class']} · {where}"


def _table_or_empty(result: Result, columns: list[str], table_id: str) -> Any:
    if result.empty:
        return ui.empty_state(result.message or "Nothing yet", result.hint)
    return ui.table(result.frame, [c for c in columns if c in result.frame.columns], table_id=table_id)


def _number(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def _int(value: Any) -> str:
    return str(int(value)) if _number(value) else "n/a"

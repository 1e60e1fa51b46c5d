"""How an incident is shown (Overview and Alerts pages): one card per incident naming the cause
slice, the drop with its interval and support, the member series it explains, severity, since
when, and the evidence lines, with a link to the slice's evidence (Subgroups or Classes with the
filters in the URL). Pure: built from incident records with `cause` and `href`
(`dashboards.data.triage.incident_links`); every value is plain text."""

from __future__ import annotations

from typing import Any, cast

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from dashboards import components as ui

MAX_EXPLAINED = 6  # member series named on a card; the rest are counted


def _day(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    return str(value)[:10]


def headline(row: dict[str, Any]) -> str:
    """'Recall of critical dropped in region=south: 0.44 [0.33, 0.57] vs reference 0.74, n=63'."""
    support = row.get("support")
    n = f", n={int(support)}" if support is not None and not pd.isna(support) else ""
    return (f"Recall of {row['class']} dropped in {row['cause']}: {ui.fmt_rate(row['value'])} "
            f"{ui.fmt_interval(row['low'], row['high'])} vs reference {ui.fmt_rate(row['reference_value'])}{n}")


def current(row: dict[str, Any]) -> str | None:
    """'now 0.00 [0.00, 0.10], n=34 (newest evaluation)' for an open incident whose cause slice
    has since moved: the headline keeps the onset's figures. None when unknown or unchanged."""
    value = row.get("now_value")
    if row.get("state") != "open" or value is None or pd.isna(value):
        return None
    if ui.fmt_rate(value) == ui.fmt_rate(row.get("value")) and row.get("now_support") == row.get("support"):
        return None
    support = row.get("now_support")
    n = f", n={int(support)}" if support is not None and not pd.isna(support) else ""
    return (f"now {ui.fmt_rate(value)} {ui.fmt_interval(row.get('now_low'), row.get('now_high'))}{n} "
            "in the newest evaluation (the figures above are from the onset)")


def explained(row: dict[str, Any]) -> str:
    """'explains 6 series: region=south, sex=M, ... (and 2 more)'."""
    members = [str(m) for m in (row.get("explains") or [])]
    names = ["overall" if m == "*" else m for m in members[:MAX_EXPLAINED]]
    more = f" and {len(members) - MAX_EXPLAINED} more" if len(members) > MAX_EXPLAINED else ""
    count = int(row.get("n_alerts") or len(members))
    return f"explains {count} alert{'s' if count != 1 else ''}: {', '.join(names)}{more}"


def badges(row: dict[str, Any]) -> list[Any]:
    """State, severity, acknowledgement and silence as badges."""
    state = str(row.get("state") or "")
    out = [dbc.Badge(f"incident #{int(row['id'])}", color="dark", className="me-1"),
           ui.state_badge("firing" if state == "open" else state)]
    if row.get("severity"):
        critical = row["severity"] == "critical"
        out.append(dbc.Badge(str(row["severity"]), color="danger" if critical else "warning",
                             text_color=None if critical else "dark", className="me-1"))
    if row.get("acknowledged_by"):
        out.append(dbc.Badge(f"acknowledged by {row['acknowledged_by']}", color="info", text_color="dark",
                             className="me-1"))
    if row.get("silenced_until"):
        out.append(dbc.Badge(f"silenced until {str(row['silenced_until']).replace('T', ' ')[:16]}",
                             color="secondary", className="me-1"))
    return out


def incident_card(row: dict[str, Any], *, model: bool = False) -> html.Div:
    """One incident: badges and since when, the headline linked to the slice, the member series,
    the evidence lines."""
    since = f"since {_day(row.get('started_at'))} (fired {_day(row.get('fired_at'))})"
    if row.get("resolved_at"):
        since += f", resolved {_day(row['resolved_at'])}"
    title = ([html.Span(f"{row['model']} · ", className="fw-semibold")] if model else [])
    lines: list[Any] = [
        html.Div(badges(row) + [html.Span(since, className="small text-muted")], className="mb-1"),
        html.Div(title + [html.Span("Cause: ", className="fw-semibold"),
                          dcc.Link(headline(row), href=str(row["href"]), className="incident-cause")]),
    ]
    now = current(row)
    if now:
        lines.append(html.Div(now, className="small fw-semibold incident-now"))
    lines += [
        html.Div(explained(row), className="small text-muted incident-explains"),
    ]
    evidence = [str(e) for e in (row.get("evidence") or [])]
    if evidence:
        lines.append(html.Ul([html.Li(e) for e in evidence], className="small mb-0 incident-evidence"))
    return html.Div(lines, className="incident-card")


def incident_list(frame: pd.DataFrame, *, model: bool = False, limit: int = 8) -> list[Any]:
    """The cards of the first `limit` incidents of `frame` (records with cause and href)."""
    records = cast(list[dict[str, Any]], frame.head(limit).to_dict("records"))
    return [incident_card(row, model=model) for row in records]


def action_form(actor: Any, durations: tuple[str, ...]) -> list[Any]:
    """Acknowledge / silence an incident (ids `incidents-*`), disabled with the reason when
    `actor` (`monitor.api.security.Actor`) may not act; the signed-in name is not editable."""
    read_only = not actor.allowed
    note = [dbc.Alert(actor.reason, color="warning", className="py-2 small", id="incidents-read-only")] \
        if read_only else []
    return note + [
        dbc.Row([
            dbc.Col([dbc.Label("Incident", className="small text-muted"),
                     dcc.Dropdown(id="incidents-choice", placeholder="choose an incident")], md=4),
            dbc.Col([dbc.Label("Signed in as" if actor.name else "Your name", className="small text-muted"),
                     dbc.Input(id="incidents-by", type="text", maxLength=200, placeholder="e.g. alice",
                               value=actor.name, disabled=read_only or actor.name is not None)], md=2),
            dbc.Col([dbc.Label("Comment", className="small text-muted"),
                     dbc.Input(id="incidents-comment", type="text", maxLength=500)], md=3),
            dbc.Col([dbc.Label("Silence for", className="small text-muted"),
                     dcc.Dropdown(id="incidents-duration", value="1d", clearable=False,
                                  options=[{"label": d, "value": d} for d in durations])], md=1),
            dbc.Col([dbc.Button("Acknowledge", id="incidents-ack", color="primary", className="me-2",
                                disabled=read_only),
                     dbc.Button("Silence", id="incidents-silence", color="secondary", disabled=read_only)],
                    md=2, className="d-flex align-items-end"),
        ], className="g-2"),
        html.Div(id="incidents-feedback", className="mt-2"),
    ]


def choice_label(row: dict[Any, Any]) -> str:
    return f"#{int(row['id'])} {row['state']} · {row['class']} · {row['cause']}"

"""Data: what was ingested, what was rejected and why, how fast labels arrive, which segment
attributes overflowed their value limit (new values counted as "(other)"), and, when used, the
stream consumers (lag, pending, last batch) and the HTTP inbox (queued rows, aggregated through)."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, html

from dashboards import components as ui
from dashboards.data import core, ledger, segments
from dashboards.figures import core as figures
from dashboards.filters import from_inputs

dash.register_page(__name__, path="/data", name="Data", order=6, title="Data - classifier-monitor",
                   filters=("model",))

FILE_COLUMNS = ["kind", "path", "status", "rows_read", "rows_accepted", "rows_rejected", "rows_skipped",
                "rows_waiting", "error", "ingested_at"]
FILE_HEADERS = {"rows_read": "read", "rows_accepted": "= accepted", "rows_rejected": "+ rejected",
                "rows_skipped": "+ skipped", "rows_waiting": "+ waiting", "ingested_at": "ingested at"}
FILES_NOTE = ("Every row read is accounted for: read = accepted + rejected + skipped + waiting. Skipped: exact "
              "duplicates, rows an earlier read already stored, label corrections superseded in the same file. "
              "Waiting: rows not visible yet at the monitor's clock, read again later.")
MAX_ROWS = 200  # newest first; `monitor rejects` and the API give everything
CONSUMER_COLUMNS = ["model", "stream", "consumer", "pending", "ack_pending", "lag_seconds", "last_batch_at",
                    "batches", "messages", "predictions", "labels", "rejected"]
CONSUMER_HEADERS = {"pending": "pending (not delivered)", "ack_pending": "delivered, not acked",
                    "lag_seconds": "lag", "last_batch_at": "last batch (UTC)"}
CONSUMERS_NOTE = ("Lag: commit time minus publish time of the oldest message of the last batch. Pending: "
                  "messages of the stream no consumer has received yet.")
INBOX_COLUMNS = ["model", "queued_predictions", "queued_labels", "oldest_queued_at", "aggregated_through"]
INBOX_HEADERS = {"queued_predictions": "queued predictions", "queued_labels": "queued labels",
                 "oldest_queued_at": "oldest queued (UTC)", "aggregated_through": "aggregated through (UTC)"}
INBOX_NOTE = "Every record received before 'aggregated through' is in the metrics; the queued rows are not yet."
REJECT_COLUMNS = ["kind", "source", "row", "field", "reason", "raw", "created_at"]


def layout(**_query: Any) -> html.Div:
    return html.Div([
        ui.page_header("Data", "Ingested files, rejected rows with their reasons, and how long the "
                       "ground truth takes to arrive."),
        html.Div(id="data-segment-overflow"),
        html.Div(id="data-intake"),
        ui.card(ui.graph("data-label-arrival")),
        ui.card([html.P(FILES_NOTE, className="small text-muted mb-2"), html.Div(id="data-files")],
                title="Ingested files (newest 200)"),
        ui.card(html.Div(id="data-rejects"), title="Rejected rows and failed files (newest 200)"),
    ])


@dash.callback(
    Output("data-label-arrival", "figure"), Output("data-files", "children"),
    Output("data-rejects", "children"), Output("data-intake", "children"),
    Output("data-segment-overflow", "children"),
    Input("data-version", "data"), Input("filter-model", "value"),
)
def update_data(_version: Any, model: str | None) -> tuple[Any, ...]:
    filters = from_inputs(model, None, None, None, None, None)
    arrival = ledger.label_arrival(filters)
    files = ledger.files(filters)
    rejects = ledger.rejects(filters, limit=200)
    return (figures.label_arrival(arrival.frame),
            _table_or_empty(files, FILE_COLUMNS, "data-files-table", FILE_HEADERS),
            _table_or_empty(rejects, REJECT_COLUMNS, "data-rejects-table"),
            intake_cards(ledger.stream_consumers(filters), ledger.inbox(filters)),
            overflow_warnings(segments.segment_overflows(filters.model)))


def intake_cards(consumers: core.Result, inbox: core.Result) -> list[Any]:
    """The stream consumers (lag, pending, last batch) and the HTTP inbox (queued rows,
    aggregated through), each only when used: nothing at all for file-only deployments."""
    cards: list[Any] = []
    if not consumers.empty:
        frame = consumers.frame.assign(last_batch_at=[ui.fmt_time(t) for t in consumers.frame["last_batch_at"]],
                                       lag_seconds=[_seconds(v) for v in consumers.frame["lag_seconds"]])
        cards.append(ui.card([html.P(CONSUMERS_NOTE, className="small text-muted mb-2"),
                              ui.table(frame, CONSUMER_COLUMNS, headers=CONSUMER_HEADERS,
                                       table_id="data-consumers-table")],
                             title="Stream consumers (monitor consume)"))
    if not inbox.empty:
        frame = inbox.frame.assign(oldest_queued_at=[ui.fmt_time(t) for t in inbox.frame["oldest_queued_at"]],
                                   aggregated_through=[ui.fmt_time(t) for t in inbox.frame["aggregated_through"]])
        cards.append(ui.card([html.P(INBOX_NOTE, className="small text-muted mb-2"),
                              ui.table(frame, INBOX_COLUMNS, headers=INBOX_HEADERS, table_id="data-inbox-table")],
                             title="HTTP inbox: rows posted, waiting for aggregation"))
    return cards


def _seconds(value: Any) -> str:
    if value is None or value != value:
        return ""
    return f"{float(value):,.0f} s"


def overflow_warnings(overflows: list[segments.SegmentOverflow]) -> list[dbc.Alert]:
    """One warning per model and attribute whose values overflowed (none: nothing shown)."""
    return [dbc.Alert([html.Strong(f"Model {o.model}: "), o.message], color="warning",
                      className="segment-overflow py-2 mb-2") for o in overflows]


def _table_or_empty(result: core.Result, columns: list[str], table_id: str,
                    headers: dict[str, str] | None = None) -> Any:
    if result.empty:
        return ui.empty_state(result.message or "Nothing yet", result.hint)
    present = [c for c in columns if c in result.frame.columns]
    return ui.table(result.frame, present, table_id=table_id, max_rows=MAX_ROWS, headers=headers)

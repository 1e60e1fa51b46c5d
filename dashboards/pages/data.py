"""Data: what was ingested, what was rejected and why, how fast labels arrive, and which
segment attributes overflowed their value limit (new values counted as "(other)")."""

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
REJECT_COLUMNS = ["kind", "source", "row", "field", "reason", "raw", "created_at"]


def layout(**_query: Any) -> html.Div:
    return html.Div([
        ui.page_header("Data", "Ingested files, rejected rows with their reasons, and how long the "
                       "ground truth takes to arrive."),
        html.Div(id="data-segment-overflow"),
        ui.card(ui.graph("data-label-arrival")),
        ui.card([html.P(FILES_NOTE, className="small text-muted mb-2"), html.Div(id="data-files")],
                title="Ingested files (newest 200)"),
        ui.card(html.Div(id="data-rejects"), title="Rejected rows and failed files (newest 200)"),
    ])


@dash.callback(
    Output("data-label-arrival", "figure"), Output("data-files", "children"),
    Output("data-rejects", "children"), Output("data-segment-overflow", "children"),
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
            overflow_warnings(segments.segment_overflows(filters.model)))


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

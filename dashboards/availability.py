"""What the dashboard shows while its database does not answer, and how it comes back.

Nothing at start-up reads the database (the shell and the page layouts are built from the
config alone), so a worker started during an outage registers every callback and serves the
same pages as any other. While the database is down or not migrated yet, a callback's
database error becomes a "Database unavailable" message in each of its outputs
(`on_callback_error`, Dash's global `on_error`), and the shell's banner says so
(`dashboards.layout.refresh_version`). The data version then reads `UNAVAILABLE_VERSION`;
when the database answers again the version changes and every page redraws by itself.
"""

from __future__ import annotations

import logging
from typing import Any

import dash
from dash import no_update
from sqlalchemy.exc import DBAPIError

from dashboards import components as ui
from dashboards.figures.style import empty_figure
from monitor.store.db import is_missing_table
from monitor.store.windows import WindowLimitError

log = logging.getLogger("dashboards")

UNAVAILABLE_VERSION = "database-unavailable"
UNAVAILABLE = "Database unavailable"
UNAVAILABLE_HINT = ("The dashboard cannot reach the monitor's database. This page refreshes by itself "
                    "once the database answers again.")
NOT_MIGRATED = "Database not ready: its tables are missing"
NOT_MIGRATED_HINT = ("Run `monitor db upgrade` (or start the scheduler, which migrates). This page "
                     "refreshes by itself once the tables are there.")
TOO_MANY_WINDOWS = "This range asks for too many windows"


def database_problem(error: BaseException) -> tuple[str, str] | None:
    """(message, hint) when `error` means the database is unreachable or not migrated, else
    None (a bug, which must still surface as one)."""
    if not isinstance(error, DBAPIError):
        return None
    if is_missing_table(error):
        return NOT_MIGRATED, NOT_MIGRATED_HINT
    if error.connection_invalidated or type(error).__name__ in ("OperationalError", "InterfaceError"):
        return UNAVAILABLE, UNAVAILABLE_HINT
    return None


def on_callback_error(error: Exception) -> Any:
    """Dash's `on_error` hook: a database outage fills the callback's outputs with the message
    (figures: a titled empty figure; components: an alert; anything else unchanged); any
    other error is raised again. A read the window limits refuse says what to change."""
    if isinstance(error, WindowLimitError):
        return _fallback(dash.ctx.outputs_list, TOO_MANY_WINDOWS, str(error))
    problem = database_problem(error)
    if problem is None:
        raise error
    log.warning("dashboard callback without database: %s", type(getattr(error, "orig", error)).__name__)
    return _fallback(dash.ctx.outputs_list, *problem)


def banner(problem: tuple[str, str] | None) -> Any:
    """The shell's banner: the problem in red, or nothing when the database answers."""
    if problem is None:
        return None
    message, hint = problem
    return ui.empty_state(message, hint, color="danger", alert_id="database-status-alert")


def _fallback(spec: Any, message: str, hint: str) -> Any:
    if isinstance(spec, list):  # several outputs, or a pattern-matching output
        return [_fallback(item, message, hint) for item in spec]
    prop = spec.get("property") if isinstance(spec, dict) else None
    if prop == "figure":
        return empty_figure(message, hint=hint)
    if prop == "children":
        return ui.empty_state(message, hint, color="warning")
    return no_update

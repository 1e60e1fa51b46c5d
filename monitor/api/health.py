"""`GET /healthz`: 200 `{"status": "ok"}` when the database answers and is migrated, else 503
`{"status": "unavailable", "error": reason}`.

Open even when basic auth is on (container health checks and load balancers). The error
names the failure class only: no URL, host or credentials leak to an unauthenticated caller.
`database_failure` classifies an exception the same way for `/metrics` and the API, so that a
database that is down or unmigrated is a JSON 503 everywhere, never a 500 page.

The check never waits on a write: it has its own small engine per process (on SQLite a
deferred BEGIN, which in WAL mode never waits for the writers' lock; on PostgreSQL its own
pool, so writers queued on a model's lock cannot hold every connection), and it takes no lock.
On PostgreSQL it is one query in autocommit, `to_regclass` of a migrated table, without a ping.
A success is reused for `FRESH_SECONDS` (1 s) by the process that saw it: a load balancer
probing several times a second costs the database one query a second per process, and under
load an answer does not wait for the server's turn on the CPU. A failure is never reused: the
next probe checks again (a database that comes back is seen at once, one that goes away
within a second).
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from monitor.store.db import NOT_MIGRATED, DatabaseError, is_migrated, is_missing_table

log = logging.getLogger("monitor.api")
blueprint = Blueprint("monitor_health", __name__)

# A table every migrated database has (the first migration creates it).
REQUIRED_TABLE = "monitored_models"
_LOCK = threading.Lock()
FRESH_SECONDS = 1.0


def health_engine(app: Flask) -> Engine:
    """This process's engine for /healthz (made on first use, after any fork)."""
    state = app.extensions["monitor_api"]
    if state.get("health_engine") is None:
        with _LOCK:
            if state.get("health_engine") is None:
                from monitor.store.db import make_engine, make_read_engine

                url = state["config"].database_url
                # no ping per checkout on PostgreSQL: the check is one query, retried once on a
                # new connection when the server had closed the pooled one (`_check`)
                state["health_engine"] = (make_read_engine(url) if url.startswith("sqlite")
                                          else make_engine(url, pool_size=1, max_overflow=4, pool_timeout=5,
                                                           pool_pre_ping=False))
    return state["health_engine"]  # type: ignore[no-any-return]


def _missing_table(error: BaseException) -> bool:
    """True for "no such table" from SQLite or UndefinedTable from PostgreSQL (a driver
    error, not any message that happens to mention it)."""
    return isinstance(error, (DBAPIError, OperationalError, ProgrammingError)) and is_missing_table(error)


def database_failure(error: BaseException) -> str | None:
    """The public reason when `error` means the database cannot serve (down, refusing
    connections, bad URL, unmigrated), else None (a bug, to be logged as one)."""
    if _missing_table(error):
        return NOT_MIGRATED
    if isinstance(error, (OperationalError, DatabaseError)) or \
            (isinstance(error, DBAPIError) and error.connection_invalidated):
        return f"database unavailable ({type(getattr(error, 'orig', None) or error).__name__})"
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return None
    if isinstance(error, psycopg.OperationalError):  # raw-cursor paths are not wrapped
        return f"database unavailable ({type(error).__name__})"
    return None


def unavailable(error: BaseException) -> Response:
    """The JSON 503 for a database failure (`database_failure(error)` must not be None)."""
    reason = database_failure(error) or "database unavailable"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    log.warning("database unusable: %s", first)
    response = jsonify({"status": "unavailable", "error": reason})
    response.status_code = 503
    return response


def _check(engine: Engine) -> bool:
    """Whether the database answers (else a driver error) and is migrated. On PostgreSQL one
    query in autocommit (one round trip: under load each one waits for the server's turn on
    the CPU), retried once on a new connection if the server had closed the pooled one."""
    try:
        return _migrated(engine)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return _migrated(engine)  # the pool has dropped the closed connections: a new one


def _migrated(engine: Engine) -> bool:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")  # no BEGIN round trip
        migrated = is_migrated(conn, REQUIRED_TABLE)
        conn.rollback()
    return migrated


@blueprint.get("/healthz")
def healthz() -> Response:
    state = current_app.extensions["monitor_api"]
    if time.monotonic() - state.get("healthy_at", -FRESH_SECONDS) < FRESH_SECONDS:
        return jsonify({"status": "ok"})
    state.pop("healthy_at", None)
    try:
        migrated = _check(health_engine(current_app))  # type: ignore[arg-type]
    except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
        if database_failure(error) is None:
            log.exception("health check failed")
            response = jsonify({"status": "unavailable", "error": f"database unusable ({type(error).__name__})"})
            response.status_code = 503
            return response
        return unavailable(error)
    if not migrated:
        response = jsonify({"status": "unavailable", "error": NOT_MIGRATED})
        response.status_code = 503
        return response
    state["healthy_at"] = time.monotonic()
    return jsonify({"status": "ok"})

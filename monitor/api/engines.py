"""The database engine each API request uses (its own module so that the API's modules and
the package's `register` all import it from below, with no loop through `monitor.api`).

Reads use the dashboard's engine when it has put one in `server.extensions["monitor"]`;
reads without a dashboard use an engine made from `config.database_url` on first use in each
process, so gunicorn workers never share connections across a fork; writes one of their own
(without a ping per checkout).
"""

from __future__ import annotations

import threading

from flask import Flask
from sqlalchemy import Engine

_LOCK = threading.Lock()


def engine_for(server: Flask, *, write: bool = False) -> Engine:
    """The engine for this app's requests. Reads use the dashboard's engine when it has one
    (on SQLite it begins deferred, so reads never wait for writers); writes always use the
    API's own `make_engine` engine (on SQLite `BEGIN IMMEDIATE`, so concurrent writers queue
    on the busy timeout instead of failing to upgrade a read lock). The write engine does not
    ping the server at each checkout (a round trip per POST): a write on a connection the
    server closed fails, invalidates the pool and is retried (`monitor.api.routes._retryable`)."""
    dashboard = server.extensions.get("monitor")
    if not write and dashboard is not None and getattr(dashboard, "engine", None) is not None:
        return dashboard.engine  # type: ignore[no-any-return]
    state = server.extensions["monitor_api"]
    key = "write_engine" if write else "engine"
    if state.get(key) is None:
        with _LOCK:
            if state.get(key) is None:
                from monitor.store.db import make_engine

                state[key] = make_engine(state["config"].database_url, **({"pool_pre_ping": False} if write else {}))
    return state[key]  # type: ignore[no-any-return]

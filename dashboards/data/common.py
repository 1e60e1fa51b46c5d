"""Access to the monitor's config and database from inside Dash callbacks.

The app factory stores them on the Flask app (`server.extensions["monitor"]`), so callbacks
hold no module-level state and gunicorn workers each get their own engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from monitor.config import MonitorConfig
from monitor.context import ModelContext, load_context


@dataclass
class MonitorHandle:
    config: MonitorConfig
    engine: Engine


def handle() -> MonitorHandle:
    return current_app.extensions["monitor"]  # type: ignore[no-any-return]


def config() -> MonitorConfig:
    return handle().config


@contextmanager
def read(model: str | None = None) -> Iterator[tuple[Connection, ModelContext | None]]:
    """A read-only transaction and (when `model` is given) its context."""
    monitor = handle()
    with monitor.engine.connect() as conn:
        ctx = load_context(conn, monitor.config.model(model)) if model else None
        yield conn, ctx
        conn.rollback()


def make_read_engine(url: str) -> Engine:
    """An engine for the dashboard, which only reads.

    On SQLite the engine's transactions start with a deferred BEGIN (not BEGIN IMMEDIATE as
    the writers' do), so that in WAL mode dashboard reads never wait for the scheduler's write
    lock and never block it. Other backends get `make_engine` unchanged.
    """
    from sqlalchemy import create_engine, event

    from monitor.store import db

    if not url.startswith("sqlite"):
        return db.make_engine(url)
    engine = create_engine(url, connect_args={"timeout": 60})
    event.listen(engine, "connect", db._sqlite_pragmas)
    event.listen(engine, "begin", _begin)
    return engine


def _begin(conn: Connection) -> None:
    # writes (alert acknowledgements, silences) ask for the lock up front, reads never do
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write() -> Iterator[Connection]:
    """A short write transaction for the dashboard's user actions (committed on success)."""
    monitor = handle()
    with monitor.engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            yield conn

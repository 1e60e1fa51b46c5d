"""Access to the monitor's config and database from inside Dash callbacks.

The app factory stores them on the Flask app (`server.extensions["monitor"]`), so callbacks
hold no module-level state and gunicorn workers each get their own engine.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from monitor.config import MonitorConfig
from monitor.context import ModelContext, load_context


class ResultCache:
    """A small thread-safe LRU of data-access results, per app (per gunicorn worker).

    Keys include the data version (`dashboards.data.core.data_version`), so an entry is never
    served after new data was ingested; it only spares recomputing the same frames for every
    user, page visit and refresh in between. Cached values must be treated as read-only.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass
class MonitorHandle:
    config: MonitorConfig
    engine: Engine
    cache: ResultCache = field(default_factory=ResultCache)


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

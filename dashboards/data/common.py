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

__all__ = ["MonitorHandle", "ResultCache", "config", "handle", "read", "write"]


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
def read() -> Iterator[Connection]:
    """A read-only transaction (rolled back: the dashboard's reads never write). On SQLite
    it begins deferred (`monitor.store.db.make_read_engine`): reads never wait for writers."""
    monitor = handle()
    with monitor.engine.connect() as conn:
        yield conn
        conn.rollback()


@contextmanager
def write() -> Iterator[Connection]:
    """A short write transaction for the dashboard's user actions (committed on success)."""
    monitor = handle()
    with monitor.engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            yield conn

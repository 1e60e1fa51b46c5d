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

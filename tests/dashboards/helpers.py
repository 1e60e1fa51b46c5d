"""Helpers to call Dash callbacks directly: an app on a database, page modules, text of components."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from dash import Dash

from dashboards.app import create_app
from monitor.config import MonitorConfig, load_config


@contextmanager
def running_app(config: MonitorConfig | Path) -> Iterator[Dash]:
    """An app for `config`, inside a request context (callbacks reach config and database)."""
    if not isinstance(config, MonitorConfig):
        config = load_config(config)
    app = create_app(config)
    with app.server.test_request_context("/"):
        yield app
    app.server.extensions["monitor"].engine.dispose()


def page(name: str) -> ModuleType:
    """The page module as the app imported it (call after create_app)."""
    return sys.modules[f"dashboards.pages.{name}"]


def texts(component: Any) -> list[str]:
    """Every string inside a Dash component tree (what the browser would show as text)."""
    if component is None:
        return []
    if isinstance(component, (str, int, float)):
        return [str(component)]
    if isinstance(component, (list, tuple)):
        return [t for child in component for t in texts(child)]
    children = getattr(component, "children", None)
    return texts(children)


def text_of(component: Any) -> str:
    return " ".join(texts(component))

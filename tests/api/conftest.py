"""A real HTTP server on 127.0.0.1 (werkzeug, own thread, port 0) around the API app."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from werkzeug.serving import make_server

from monitor.api import register
from monitor.config import MonitorConfig, parse_config

CLASSES = ["ok", "rare"]
GROUPS = ["north", "south"]
START = 1_704_067_200  # 2024-01-01T00:00:00Z


def make_config(db_url: str, tmp_path: Path, *, classes: list[str] = CLASSES, segments: list[str] | None = None,
                **extra: Any) -> MonitorConfig:
    return parse_config({
        "database_url": db_url,
        "models": [{"name": "m", "classes": classes, "minority_classes": [classes[-1]],
                    "segments": segments if segments is not None else ["region"], "bucket": "1h"}],
        **extra,
    }, base_dir=tmp_path)


def make_records(n: int, *, seed: int = 7, classes: list[str] = CLASSES, groups: list[str] = GROUPS,
                 prefix: str = "p") -> tuple[list[dict], list[dict]]:
    """n predictions over 5 days and a label for each: (predictions, labels)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(len(classes), size=n, p=[0.8, 0.2] if len(classes) == 2 else None)
    flip = rng.random(n) < 0.3
    predicted = np.where(flip, 1 - truth, truth) if len(classes) == 2 else truth
    group = rng.integers(0, len(groups), size=n)
    times = START + rng.integers(0, 5 * 86400, size=n)
    predictions = [{"prediction_id": f"{prefix}{i}", "timestamp": int(times[i]),
                    "prediction": classes[predicted[i]], "region": groups[group[i]]} for i in range(n)]
    labels = [{"prediction_id": f"{prefix}{i}", "label": classes[truth[i]],
               "label_timestamp": int(times[i]) + 3600} for i in range(n)]
    return predictions, labels


def flush_inbox(config: MonitorConfig) -> int:
    """Aggregate every row the API queued (waiting for a drainer busy with a model), so that
    a test reads what it posted; returns the rows aggregated here."""
    from monitor.ingest.inbox import drain
    from monitor.store.db import make_engine

    engine = make_engine(config.database_url)
    try:
        return drain(engine, config, wait=True)
    finally:
        engine.dispose()


@contextmanager
def running(app: Flask) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[[MonitorConfig], str]]:
    """serve(config) -> base URL of a running app with the API registered (env read then)."""
    stack: list[Any] = []

    def start(config: MonitorConfig) -> str:
        app = Flask("test-api")
        register(app, config)
        context = running(app)
        stack.append((context, app))
        return context.__enter__()

    yield start
    from monitor.api.routes import stop_background

    for context, app in reversed(stack):
        context.__exit__(None, None, None)
        stop_background(app)  # the inbox drainer thread of this app, if a write started it
        state = app.extensions.get("monitor_api", {})
        if state.get("engine") is not None:
            state["engine"].dispose()


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONITOR_API_TOKEN", "MONITOR_BASIC_AUTH", "MONITOR_DATABASE_URL", "MONITOR_MAX_BODY_BYTES"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)

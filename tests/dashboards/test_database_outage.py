"""A dashboard worker whose first requests arrive while its database is missing serves the
whole app (every callback), says "Database unavailable" on its pages, and recovers by itself
once the database is there: the same app object, no restart (issue 12)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from dash import Dash
from sqlalchemy import create_engine, text

from dashboards.app import create_app
from dashboards.availability import NOT_MIGRATED, UNAVAILABLE, UNAVAILABLE_VERSION
from monitor.config import load_config, parse_config
from monitor.context import load_context
from monitor.ingest.pipeline import ingest_frame
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from tests.conftest import _with_database, postgres_admin_url
from tests.dashboards.dash_client import call, dependencies
from tests.dashboards.seeding import Seeded


def refresh(app: Dash, previous: str | None = None) -> tuple[Any, Any]:
    answer = call(app, [("data-version", "data"), ("database-status", "children")],
                  [("refresh-interval", "n_intervals", 1)], [("data-version", "data", previous)])
    assert answer.status_code in (200, 204), answer.get_data(as_text=True)[:300]
    response = answer.get_json()["response"] if answer.status_code == 200 else {}
    return (response.get("data-version", {}).get("data"), response.get("database-status", {}).get("children"))


def overview(app: Dash) -> str:
    answer = call(app, [("overview-cards", "children")],
                  [("data-version", "data", "v"), ("filter-window", "value", "7d"),
                   ("filter-range", "start_date", None), ("filter-range", "end_date", None)])
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return answer.get_data(as_text=True)


def classes_figure(app: Dash) -> str:
    answer = call(app, [("classes-over-time", "figure"), ("classes-detail", "figure"),
                        ("classes-confusion-end", "options"), ("classes-confusion-end", "value"),
                        ("classes-message", "children")],
                  [("data-version", "data", "v"), ("filter-model", "value", "triage"),
                   ("filter-window", "value", "7d"), ("filter-range", "start_date", None),
                   ("filter-range", "end_date", None), ("filter-class", "value", "critical"),
                   ("classes-metric", "value", "recall")],
                  [("classes-confusion-end", "value", None)])
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return answer.get_data(as_text=True)


def healthy_callback_count(config_path: Path) -> int:
    app = create_app(load_config(config_path))
    count = len(dependencies(app))
    app.server.extensions["monitor"].engine.dispose()
    return count


def test_a_worker_started_before_its_sqlite_file_exists_recovers_when_it_appears(
        seeded_sqlite: Seeded, tmp_path: Path) -> None:
    expected_callbacks = healthy_callback_count(seeded_sqlite.config_path)
    target = tmp_path / "not-there-yet" / "monitor.db"
    config_text = seeded_sqlite.config_path.read_text(encoding="utf-8")
    config_path = seeded_sqlite.config_path.parent / f"outage-{uuid.uuid4().hex[:6]}.toml"
    config_path.write_text(config_text.replace(seeded_sqlite.database_url, f"sqlite:///{target}"), encoding="utf-8")
    app = create_app(load_config(config_path))
    client = app.server.test_client()

    assert client.get("/").status_code == 200 and client.get("/classes").status_code == 200
    assert len(dependencies(app)) == expected_callbacks
    assert client.get("/healthz").status_code == 503
    version, banner = refresh(app)
    assert version == UNAVAILABLE_VERSION and UNAVAILABLE in str(banner)
    assert UNAVAILABLE in overview(app)
    assert UNAVAILABLE in classes_figure(app)

    target.parent.mkdir()
    shutil.copy(seeded_sqlite.database_url.removeprefix("sqlite:///"), target)

    assert client.get("/healthz").status_code == 200
    version, banner = refresh(app, UNAVAILABLE_VERSION)
    assert version not in (None, UNAVAILABLE_VERSION) and banner is None
    assert len(dependencies(app)) == expected_callbacks
    cards = overview(app)
    assert UNAVAILABLE not in cards and "triage" in cards and "critical" in cards
    figure = classes_figure(app)
    assert UNAVAILABLE not in figure and "critical (minority)" in figure
    app.server.extensions["monitor"].engine.dispose()


def test_a_worker_started_before_its_postgres_database_exists_recovers_when_it_is_created(
        tmp_path: Path, postgres_template: str | None) -> None:
    admin_url = postgres_admin_url()
    if admin_url is None or postgres_template is None:
        pytest.skip("needs MONITOR_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    name = f"monitor_outage_{uuid.uuid4().hex[:10]}"
    url = _with_database(admin_url, name)
    config = parse_config({"database_url": url, "models": [
        {"name": "m", "classes": ["neg", "pos"], "minority_classes": ["pos"], "segments": ["region"]}]},
        base_dir=tmp_path)
    app = create_app(config)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        assert app.server.test_client().get("/").status_code == 200
        callbacks = len(dependencies(app))
        version, banner = refresh(app)
        assert version == UNAVAILABLE_VERSION and UNAVAILABLE in str(banner)
        assert UNAVAILABLE in overview(app)

        with admin.connect() as conn:  # the database exists, its tables do not yet
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        assert NOT_MIGRATED in overview(app)

        engine = make_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            ingest_frame(conn, load_context(conn, config.model("m")), "predictions", _predictions())
        engine.dispose()

        version, banner = refresh(app, UNAVAILABLE_VERSION)
        assert version not in (None, UNAVAILABLE_VERSION) and banner is None
        cards = overview(app)
        assert UNAVAILABLE not in cards and NOT_MIGRATED not in cards and "No predictions ingested" not in cards
        assert len(dependencies(app)) == callbacks
        assert app.server.test_client().get("/healthz").status_code == 200
    finally:
        app.server.extensions["monitor"].engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _predictions() -> Any:
    import pandas as pd

    start = 1_704_067_200
    return pd.DataFrame({"prediction_id": [f"p{i}" for i in range(48)],
                         "timestamp": [start + 3600 * i for i in range(48)],
                         "prediction": ["pos" if i % 4 == 0 else "neg" for i in range(48)],
                         "region": ["north" if i % 2 else "south" for i in range(48)]})

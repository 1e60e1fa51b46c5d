"""Fixtures for dashboard tests: a seeded database (SQLite and PostgreSQL) and apps on it.

Seeding runs a real scheduler tick on simulated data, so it is done once per session and
backend; tests that write (acknowledge, silence) get their own copy (`writable_seeded`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from monitor.config import load_config
from tests.conftest import _with_database, postgres_admin_url
from tests.dashboards.seeding import Seeded, seed_workspace


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Seeded:
    directory = tmp_path_factory.mktemp("seeded")
    database = directory / "monitor.db"
    shutil.copy(sqlite_template, database)
    return seed_workspace(directory, f"sqlite:///{database}")


@pytest.fixture(scope="session")
def seeded_postgres(tmp_path_factory: pytest.TempPathFactory, postgres_template: str | None) -> Iterator[Seeded]:
    admin_url = postgres_admin_url()
    if admin_url is None or postgres_template is None:
        pytest.skip("PostgreSQL tests need MONITOR_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    name = f"monitor_dash_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    try:
        yield seed_workspace(tmp_path_factory.mktemp("seeded_pg"), _with_database(admin_url, name))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def seeded(request: pytest.FixtureRequest) -> Seeded:
    """The seeded workspace, once per backend (read-only use)."""
    return request.getfixturevalue(f"seeded_{request.param}")


@pytest.fixture
def writable_seeded(seeded_sqlite: Seeded, tmp_path: Path) -> Seeded:
    """A private copy of the seeded SQLite database, for tests that write."""
    source = Path(seeded_sqlite.database_url.removeprefix("sqlite:///"))
    target = tmp_path / "monitor.db"
    shutil.copy(source, target)
    for suffix in ("-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
    text_config = seeded_sqlite.config_path.read_text(encoding="utf-8")
    config_path = seeded_sqlite.config_path.parent / f"monitor-{uuid.uuid4().hex[:6]}.toml"
    config_path.write_text(text_config.replace(seeded_sqlite.database_url, f"sqlite:///{target}"),
                           encoding="utf-8")
    assert load_config(config_path).database_url == f"sqlite:///{target}"
    return Seeded(config_path, f"sqlite:///{target}", seeded_sqlite.data)

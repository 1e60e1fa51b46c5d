"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured).

`db_url` is parametrised over both backends; a test that takes it runs twice. PostgreSQL
tests need MONITOR_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test) and are
skipped with that reason when it is unset; CI always sets it. Each test gets its own fresh,
migrated database (a copy of a template made once per session), so tests and concurrent
pytest runs never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from monitor.store.db import make_engine
from monitor.store.migrate import upgrade

POSTGRES_ENV = "MONITOR_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgres"]


def postgres_admin_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        return None
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    admin_url = postgres_admin_url()
    if admin_url is None:
        yield None
        return
    name = f"monitor_tpl_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_with_database(admin_url, name))
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new migrated database of `backend`, dropped at the end of the test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / f"monitor-{uuid.uuid4().hex[:6]}.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    return new_postgres_database(request, migrated=True)


def new_postgres_database(request: pytest.FixtureRequest, *, migrated: bool) -> str:
    """A new PostgreSQL database (a copy of the migrated template, or empty: no tables),
    dropped at the end of the test; skips (or fails under MONITOR_REQUIRE_POSTGRES) without
    a server."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        reason = f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        if os.environ.get("MONITOR_REQUIRE_POSTGRES"):
            pytest.fail(reason + " and MONITOR_REQUIRE_POSTGRES is set")
        pytest.skip(reason)
    template = f' TEMPLATE "{request.getfixturevalue("postgres_template")}"' if migrated else ""
    name = f"monitor_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{template}'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    request.addfinalizer(drop)
    return _with_database(admin_url, name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh migrated database; the test runs once on SQLite, once on PostgreSQL."""
    return fresh_database_url(request.param, request, tmp_path)


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh migrated SQLite database (for tests that are about logic, not backends)."""
    return fresh_database_url("sqlite", request, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()

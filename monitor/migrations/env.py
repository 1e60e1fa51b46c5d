"""Alembic environment. The URL comes from the caller (`monitor db upgrade` passes a
connection), else $MONITOR_DATABASE_URL, else monitor.toml (found as the CLI finds it)."""

from __future__ import annotations

from logging.config import fileConfig
from pathlib import Path

from alembic import context
from monitor.schema import metadata
from monitor.store.db import make_engine
from monitor.store.partitions import compared_with_models

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# In a source checkout the migrations moved from alembic/versions/ to monitor/migrations/versions/
# (so the wheel carries them); one written to the old place would be silently skipped.
_CHECKOUT = Path(__file__).resolve().parents[2]
_OLD_VERSIONS = _CHECKOUT / "alembic" / "versions"
if (_CHECKOUT / "alembic.ini").is_file() and any(_OLD_VERSIONS.glob("*.py")):
    raise RuntimeError(
        f"{_OLD_VERSIONS} holds migrations: they belong in monitor/migrations/versions/ "
        "(git mv them there; see alembic/README)"
    )

# Tables that belong to libraries, not to our models (APScheduler's job store).
IGNORED_TABLES = {"apscheduler_jobs"}


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table" and name in IGNORED_TABLES:
        return False
    # the weekly partitions of the raw tables on PostgreSQL (migration 0011) and the raw
    # tables' foreign keys there (migration 0012)
    return compared_with_models(obj, name, type_)


def _url() -> str:
    import os

    url = os.environ.get("MONITOR_DATABASE_URL")
    if url:
        return url
    from monitor.config import load_config

    return load_config(None).database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=metadata, literal_binds=True, include_object=include_object,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

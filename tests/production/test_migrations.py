"""The Alembic chain on both backends: down to nothing and up again, and models == schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from alembic import command
from monitor.schema import metadata
from monitor.store.migrate import alembic_config, current_revision, upgrade
from monitor.store.partitions import compared_with_models


def _not_a_partition(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    """As env.py: the weekly partitions of the raw tables and their foreign keys dropped on
    PostgreSQL are not compared."""
    return compared_with_models(obj, name, type_)


def _run(engine: Engine, action: str, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def test_the_chain_downgrades_to_nothing_and_upgrades_again(engine: Engine) -> None:
    head = current_revision(engine)
    assert head is not None
    _run(engine, "downgrade", "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"include_object": _not_a_partition}), metadata)
    assert {"predictions", "labels", "confusion_counts", "prediction_counts"} <= tables
    assert differences == []

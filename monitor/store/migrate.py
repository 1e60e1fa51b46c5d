"""Apply Alembic migrations from code (`monitor db upgrade`, `monitor init`, tests)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine

# The migration environment ships inside the package (package data), so a wheel carries it.
PACKAGED_MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
NOT_FOUND = "alembic migrations not found in {path}: expected env.py and versions/ there"


def script_location() -> Path:
    """The folder holding env.py, script.py.mako and versions/: $MONITOR_ALEMBIC_DIR when set
    (an override for a patched chain), else `monitor/migrations` inside the installed package."""
    override = os.environ.get("MONITOR_ALEMBIC_DIR")
    location = Path(override) if override else PACKAGED_MIGRATIONS
    if not (location / "env.py").is_file() or not (location / "versions").is_dir():
        source = "MONITOR_ALEMBIC_DIR" if override else "the installed package"
        raise FileNotFoundError(NOT_FOUND.format(path=location) + f" ({source})")
    return location


def alembic_config(engine: Engine | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["configure_logger"] = False
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at `engine` to `revision` (idempotent)."""
    from alembic import command

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()

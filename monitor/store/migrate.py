"""Apply Alembic migrations from code (`monitor db upgrade`, `monitor init`, tests)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine


def script_location() -> Path:
    """The folder holding env.py and versions/: $MONITOR_ALEMBIC_DIR, the source tree, or ./alembic."""
    env = os.environ.get("MONITOR_ALEMBIC_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "alembic", Path.cwd() / "alembic"]
    for candidate in candidates:
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("alembic migrations not found; set MONITOR_ALEMBIC_DIR")


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

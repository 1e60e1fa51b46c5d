"""Tables of the alerts domain (owned by that package; migration in alembic/versions)."""

from __future__ import annotations

from monitor.store.base import Base  # noqa: F401

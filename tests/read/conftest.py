"""The read-layer tests reuse the dashboards' seeded workspace (one real tick on simulated
data, once per session and backend)."""

from tests.dashboards.conftest import seeded, seeded_postgres, seeded_sqlite  # noqa: F401

"""The seeded dashboard workspace of tests/dashboards, for the screen tests."""

from tests.dashboards.conftest import seeded, seeded_postgres, seeded_sqlite, writable_seeded  # noqa: F401

"""Triage tests reuse the browser harness of tests/e2e (Chromium, a served dashboard) and the
seeded workspace of tests/dashboards (critical recall collapses in region south)."""

from __future__ import annotations

from tests.e2e.conftest import browser, pytest_collection_modifyitems, serve_dashboard  # noqa: F401 - fixtures
from tests.dashboards.conftest import seeded_sqlite  # noqa: F401 - fixture

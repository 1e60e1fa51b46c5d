"""Triage tests reuse the browser harness of tests/e2e (Chromium, a served dashboard) and the
seeded workspace of tests/dashboards (critical recall collapses in region south)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboards.conftest import seeded_sqlite  # noqa: F401 - fixture
from tests.e2e.conftest import browser, pytest_collection_modifyitems, serve_dashboard  # noqa: F401 - fixtures
from tests.triage.workspaces import backfilled_year


@pytest.fixture(scope="session")
def backfill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A year of 2013 logs ingested today (built once: about a minute)."""
    return backfilled_year(tmp_path_factory.mktemp("backfill"))

"""Fixtures for the production tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fresh_database_url


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh migrated database on the shared PostgreSQL server (skipped without one)."""
    return fresh_database_url("postgres", request, tmp_path)

"""Secrets from `*_FILE` variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, parse_config
from monitor.secrets import secret


def test_it_reads_a_secret_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("s3cr3t\n", encoding="utf-8")
    assert secret("MONITOR_API_TOKEN", {"MONITOR_API_TOKEN_FILE": str(path)}) == "s3cr3t"


def test_the_direct_variable_works_and_unset_is_none() -> None:
    assert secret("MONITOR_API_TOKEN", {"MONITOR_API_TOKEN": "abc"}) == "abc"
    assert secret("MONITOR_API_TOKEN", {}) is None


def test_both_set_is_an_error_naming_the_variables(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="MONITOR_API_TOKEN_FILE"):
        secret("MONITOR_API_TOKEN", {"MONITOR_API_TOKEN": "a", "MONITOR_API_TOKEN_FILE": str(path)})


def test_an_unreadable_file_is_an_error_without_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        secret("MONITOR_BASIC_AUTH", {"MONITOR_BASIC_AUTH_FILE": str(tmp_path / "missing")})


def test_database_url_file_overrides_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "url"
    path.write_text("postgresql://u:p@db:5432/monitor\n", encoding="utf-8")
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    monkeypatch.setenv("MONITOR_DATABASE_URL_FILE", str(path))
    config = parse_config({"database_url": "sqlite:///x.db"}, base_dir=tmp_path)
    assert config.database_url == "postgresql://u:p@db:5432/monitor"


def test_retention_durations_are_validated() -> None:
    with pytest.raises(ConfigError, match="retention.raw_predictions"):
        parse_config({"retention": {"raw_predictions": "ninety days"}})

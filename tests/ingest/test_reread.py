"""`monitor ingest --reread PATTERN`: rows a file lost to a reason since fixed are recovered.

The case: a backfill's oldest rows rejected by `earliest_timestamp`; the user lowers it. The
file is unchanged, so `monitor ingest` alone never reads it again; `--reread` does, and the
rows stored the first time are not counted twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from monitor.cli import main
from tests.hostile.workspace import assert_counted_exactly, good_rows, workspace

EARLY = '[models.limits]\nearliest_timestamp = "2024-01-01T20:00:00Z"\n'
OTHER = good_rows(40, "n").iloc[30:]  # a second file, all of it after `earliest_timestamp`


def _ingest(config_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config_path), "ingest", "--no-progress", *args])
    return result.exit_code, result.stdout, result.stderr


def _files(config_path: Path) -> list[dict]:
    result = CliRunner().invoke(main, ["--config", str(config_path), "files", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _backfill(tmp_path: Path, db_url: str) -> tuple[Path, object]:
    """A file of 40 hourly rows of which the first 20 are older than `earliest_timestamp`."""
    config_path = workspace(tmp_path, db_url, EARLY)
    good = good_rows(40)
    good.to_csv(tmp_path / "predictions" / "old.csv", index=False)
    OTHER.to_csv(tmp_path / "predictions" / "other.csv", index=False)
    code, out, err = _ingest(config_path)
    assert code == 0, err
    assert "30 predictions" in out and "20 rows rejected" in out, out
    config_path.write_text(config_path.read_text().replace(EARLY, ""))  # the fix
    code, out, _ = _ingest(config_path)
    assert code == 0 and "0 predictions" in out, out  # unchanged: not read again
    return config_path, good


def test_reread_recovers_the_rows_of_an_unchanged_file_and_counts_none_twice(tmp_path, db_url, monkeypatch):
    config_path, good = _backfill(tmp_path, db_url)
    monkeypatch.chdir(tmp_path)
    code, out, err = _ingest(config_path, "--reread", "predictions/old.csv")
    assert code == 0, err
    assert "1 file(s) matching 'predictions/old.csv' will be read again" in err
    assert "20 predictions" in out and "0 rows rejected" in out, out
    assert_counted_exactly(config_path, pd.concat([good, OTHER], ignore_index=True))
    ledger = {Path(f["path"]).name: f for f in _files(config_path)}
    old = ledger["old.csv"]
    assert (old["status"], old["rows_accepted"], old["rows_skipped"], old["rows_rejected"]) == ("done", 20, 20, 0)
    code, out, _ = _ingest(config_path)  # marked once: the next tick leaves it alone
    assert code == 0 and "0 files read" in out, out


def test_a_pattern_matching_no_file_is_a_usage_error_and_marks_nothing(tmp_path, sqlite_url, monkeypatch):
    config_path, _ = _backfill(tmp_path, sqlite_url)
    monkeypatch.chdir(tmp_path)
    code, _, err = _ingest(config_path, "--reread", "predictions/*.csv", "--reread", "nothing/*")
    assert code == 2
    assert "no file in the ledger matches" in err and str(tmp_path / "nothing" / "*") in err
    code, out, _ = _ingest(config_path)  # the first pattern's marks rolled back with the error
    assert code == 0 and "0 predictions" in out, out


def test_a_glob_marks_every_file_it_matches_across_directories(tmp_path, sqlite_url):
    config_path, _ = _backfill(tmp_path, sqlite_url)
    code, out, err = _ingest(config_path, "--reread", str(tmp_path / "*.csv"))
    assert code == 0, err
    assert "2 file(s) matching" in err
    assert "2 files read" in out and "20 predictions" in out, out

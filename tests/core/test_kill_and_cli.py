"""A killed ingest leaves nothing half done; the CLI's exit codes, formats and messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from monitor.config import load_config
from monitor.context import load_context
from monitor.metrics.service import metrics_frame
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from tests.core.workspace import make_workspace, small_scenario

DAY = 86400


def _cli(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=600)


def _frame(config) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    engine = make_engine(config.database_url)
    with engine.connect() as conn:
        frame = metrics_frame(conn, load_context(conn, config.models[0]), WindowSpec(7 * DAY, DAY))
    engine.dispose()
    return frame.drop(columns=["provisional", "expected_coverage"])


@pytest.mark.slow
def test_killing_an_ingest_midway_and_running_it_again_gives_exactly_the_same_numbers(tmp_path, db_url):
    scenario = small_scenario(days=10, rows_per_day=12000)  # big enough to be killed midway
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    killed_dir.mkdir()
    clean_dir.mkdir()
    clean_url = f"sqlite:///{clean_dir}/clean.db"
    config, _ = make_workspace(killed_dir, db_url, scenario)
    clean, _ = make_workspace(clean_dir, clean_url, scenario)
    from monitor.store.migrate import upgrade

    upgrade(make_engine(clean.database_url))
    run_tick(make_engine(clean.database_url), clean, notify=False)
    expected = _frame(clean)
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(killed_dir / "monitor.toml"),
                                "ingest", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = make_engine(config.database_url)
    deadline = time.time() + 300
    from sqlalchemy import text

    while time.time() < deadline:  # kill it once some files are in, before all are
        time.sleep(0.05)  # often: a day of predictions takes well under a second
        with engine.connect() as conn:
            done = conn.execute(text("SELECT count(*) FROM ingested_files WHERE status = 'done'")).scalar()
        if done and done >= 2:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    with engine.connect() as conn:
        done_before = conn.execute(text("SELECT count(*) FROM ingested_files WHERE status = 'done'")).scalar()
    assert done_before < 20, "the ingest finished before it could be killed; make the data larger"
    engine.dispose()
    result = _cli("--config", str(killed_dir / "monitor.toml"), "ingest", "--no-progress")
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(_frame(config), expected, check_dtype=False)


def test_metrics_prints_contract_records_as_json_and_csv(tmp_path, sqlite_url):
    config, _ = make_workspace(tmp_path, sqlite_url, small_scenario(days=4))
    run_tick(make_engine(config.database_url), config, notify=False)
    path = str(tmp_path / "monitor.toml")
    result = _cli("--config", path, "metrics", "--window", "1d", "--class", "critical", "--segment", "region",
                  "--format", "json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert records and {r["class"] for r in records} == {"critical"}
    assert {r["segment"] for r in records} == {"region"}
    assert records[0]["end"].endswith("Z") and records[0]["window"] == "1d"
    for key in ("n_predictions", "n_labeled", "label_coverage", "tp", "fp", "fn", "tn", "support", "precision",
                "recall", "f1", "recall_low", "recall_high", "precision_low", "precision_high", "recall_estimated"):
        assert key in records[0]
    csv = _cli("--config", path, "metrics", "--format", "csv", "--segment", "*")
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("model,window,end,class,segment")
    table = _cli("--config", path, "rejects")
    assert table.returncode == 0


def test_bad_usage_and_config_exit_2_with_the_problem_named(tmp_path):
    bad = tmp_path / "monitor.toml"
    bad.write_text('database_url = "sqlite:///x.db"\n[[models]]\nname = "m"\nbukcet = "1h"\n')
    result = _cli("--config", str(bad), "metrics")
    assert result.returncode == 2
    assert "bukcet" in result.stderr and "Traceback" not in result.stderr
    bad.write_text('[[models]]\nname = "m"\nbucket = "an hour"\n')
    result = _cli("--config", str(bad), "ingest")
    assert result.returncode == 2 and "bucket" in result.stderr
    result = _cli("--config", str(tmp_path / "missing.toml"), "ingest")
    assert result.returncode == 2 and "monitor init" in result.stderr
    good = tmp_path / "good.toml"
    good.write_text('database_url = "sqlite:///g.db"\n[[models]]\nname = "m"\n')
    result = _cli("--config", str(good), "metrics", "--window", "soon")
    assert result.returncode == 2 and "duration" in result.stderr
    result = _cli("--config", str(good), "metrics", "--model", "other")
    assert result.returncode == 2 and "unknown model 'other'" in result.stderr


def test_an_unreachable_database_exits_1_with_one_line(tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text('database_url = "postgresql://nobody@127.0.0.1:1/none"\n[[models]]\nname = "m"\n')
    result = _cli("--config", str(config), "ingest")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "database unreachable" in lines[0], result.stderr


def test_the_database_url_environment_variable_wins(tmp_path, monkeypatch):
    config = tmp_path / "monitor.toml"
    config.write_text('database_url = "sqlite:///file.db"\n[[models]]\nname = "m"\n')
    monkeypatch.setenv("MONITOR_DATABASE_URL", "sqlite:////tmp/elsewhere.db")
    assert load_config(config).database_url == "sqlite:////tmp/elsewhere.db"
    monkeypatch.delenv("MONITOR_DATABASE_URL")
    assert load_config(config).database_url == f"sqlite:///{tmp_path}/file.db"


def test_init_writes_a_valid_example_and_a_migrated_database(tmp_path):
    result = _cli("init", str(tmp_path / "ws"))
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "ws" / "monitor.toml")
    assert config.models[0].minority_classes == ["critical"]
    again = _cli("--config", str(tmp_path / "ws" / "monitor.toml"), "ingest")
    assert again.returncode == 0, again.stderr
    assert _cli("init", str(tmp_path / "ws")).returncode != 0  # never overwrites silently

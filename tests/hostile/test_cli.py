"""The command line under bad conditions: one line naming the problem and the contract's exit
code, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.hostile.workspace import workspace


def _monitor(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def test_an_unmigrated_database_says_to_run_db_upgrade(tmp_path):
    config = workspace(tmp_path, f"sqlite:///{tmp_path / 'never-migrated.db'}")
    for args in (["ingest", "--no-progress"], ["metrics", "--model", "m"], ["alerts"]):
        done = _monitor(config, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.strip().splitlines()[-1] == \
            "Error: database not migrated (tables missing): run `monitor db upgrade`", done.stderr
        assert "Traceback" not in done.stderr


def test_windows_no_read_may_ask_for_are_usage_errors(tmp_path, sqlite_url):
    config = workspace(tmp_path, sqlite_url)
    for args in (["--window", "99999999999999999999d"], ["--step", "0s"], ["--window", "3651d"]):
        done = _monitor(config, "metrics", "--model", "m", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_one_second_step_over_days_of_data_is_refused_with_what_to_change(tmp_path, sqlite_url):
    from tests.hostile.workspace import good_rows, tick

    config = workspace(tmp_path, sqlite_url)
    good_rows(40).to_csv(tmp_path / "predictions" / "p.csv", index=False)
    tick(config)
    done = _monitor(config, "metrics", "--model", "m", "--step", "1s")
    assert done.returncode == 2, done.stderr
    assert "--step" in done.stderr or "step" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_an_as_of_outside_the_years_1_to_9999_is_a_usage_error(tmp_path, sqlite_url):
    config = workspace(tmp_path, sqlite_url)
    for value in ("-99999999999", "99999999999999999999999999", "+275760-01-01", "1e30"):
        done = _monitor(config, "ingest", "--no-progress", "--as-of", value)
        assert done.returncode == 2, (value, done.stderr)
        assert "--as-of" in done.stderr and "Traceback" not in done.stderr


def test_the_configured_max_window_ends_bounds_every_read_command(tmp_path, sqlite_url):
    from tests.hostile.workspace import good_rows, tick

    config = workspace(tmp_path, sqlite_url, extra="[models.limits]\nmax_window_ends = 5")
    good_rows(40).to_csv(tmp_path / "predictions" / "p.csv", index=False)
    tick(config)
    for command in ("metrics", "fairness"):  # drift needs a reference; it shares the same check
        done = _monitor(config, command, "--model", "m", "--window", "1d", "--step", "1h",
                        "--from", "2023-12-01", "--to", "2024-01-03")
        assert done.returncode == 2, (command, done.stderr)
        assert "limit of 5" in done.stderr and "max_window_ends" in done.stderr, done.stderr
    assert _monitor(config, "metrics", "--model", "m", "--window", "1d", "--step", "1d").returncode == 0


def test_table_options_are_checked_and_a_closed_pipe_ends_quietly(tmp_path, sqlite_url):
    from tests.hostile.workspace import good_rows, tick

    config = workspace(tmp_path, sqlite_url)
    good_rows(40).to_csv(tmp_path / "predictions" / "p.csv", index=False)
    tick(config)
    done = _monitor(config, "metrics", "--model", "m", "--columns", "end,recal")
    assert done.returncode == 2 and "recall_low" in done.stderr and "Traceback" not in done.stderr
    reader = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(config), "metrics",
                               "--model", "m", "--window", "1h", "--step", "1h", "--wide"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.readline()
    reader.stdout.close()  # like `| head -1`
    errors = reader.stderr.read().decode()
    assert "Traceback" not in errors and "BrokenPipe" not in errors and reader.wait(timeout=120) in (0, 1)


def _monitor_without(module: str, config: Path, *args: str) -> subprocess.CompletedProcess:
    """`monitor` in a Python where `module` cannot be imported (as when it is not installed)."""
    code = (f"import runpy, sys; sys.modules[{module!r}] = None; "
            f"sys.argv = ['monitor', '--config', {str(config)!r}, *{list(args)!r}]; "
            "runpy.run_module('monitor.cli', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_postgresql_url_without_psycopg_says_what_to_install(tmp_path):
    config = workspace(tmp_path, "postgresql://watcher:s3cret@127.0.0.1:1/none")
    for args in (["db", "upgrade"], ["ingest", "--no-progress"]):
        done = _monitor_without("psycopg", config, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.strip().splitlines()[-1] == ("Error: postgresql:// URLs need psycopg 3, which is not "
                                                        "installed: pip install 'classifier-monitor[postgres]'"), done.stderr
        assert "Traceback" not in done.stderr and "s3cret" not in done.stderr


def test_a_database_url_error_never_shows_its_password(tmp_path):
    config = workspace(tmp_path, "nosuchdb://watcher:s3cret@127.0.0.1/x")
    done = _monitor(config, "db", "upgrade")
    assert done.returncode == 1, done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "nosuchdb://watcher:***@127.0.0.1/x" in done.stderr, done.stderr

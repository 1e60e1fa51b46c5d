"""A killed ingest leaves nothing half done; the CLI's exit codes, formats and messages."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text

from monitor.config import load_config
from monitor.context import load_context
from monitor.metrics.service import metrics_frame
from monitor.simulate import write_config
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


LEDGER_COLUMNS = ["kind", "path", "status", "rows_read", "rows_accepted", "rows_rejected", "rows_waiting"]


def _reader(url: str) -> Engine:
    """An engine for watching a database another process is writing to. Not `make_engine`
    on SQLite: its transactions start with BEGIN IMMEDIATE, i.e. they take the write lock,
    so a poll waits for the ingest's file transaction and, as the ingest takes the lock
    again right after each commit, can be starved for seconds (the poll then sees the
    ledger many files late and the kill lands far later than asked, or after the end).
    Plain pysqlite reads in WAL mode never wait for the writer."""
    return create_engine(url) if url.startswith("sqlite") else make_engine(url)


def _ledger(engine: Engine | str) -> pd.DataFrame:
    """The committed ledger rows, file names only (the two workspaces differ in directory)."""
    reader = _reader(engine) if isinstance(engine, str) else engine
    with reader.connect() as conn:
        rows = conn.execute(text("SELECT kind, path, status, rows_read, rows_accepted, rows_rejected, "
                                 "rows_waiting FROM ingested_files")).all()
    if reader is not engine:
        reader.dispose()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=LEDGER_COLUMNS)
    frame["path"] = frame["path"].map(lambda p: os.path.basename(p))
    return frame.sort_values(["kind", "path"], kind="stable").reset_index(drop=True)


def _describe_ledger(ledger: pd.DataFrame) -> str:
    if ledger.empty:
        return "empty (nothing committed)"
    counts = ", ".join(f"{kind} {status}: {n}" for (kind, status), n in
                       ledger.groupby(["kind", "status"]).size().items())
    done = ledger.loc[ledger["status"] == "done"]
    return f"{counts}; done files: {', '.join(done['kind'].str[0] + ':' + done['path'])}"


def _plain(value):  # type: ignore[no-untyped-def]
    """numpy scalars as Python values (for readable messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _ledger_differences(got: pd.DataFrame, expected: pd.DataFrame) -> list[str]:
    """Files whose ledger row (status, rows read/accepted/...) differs between the runs."""
    merged = got.merge(expected, on=["kind", "path"], how="outer", suffixes=("_got", "_expected"), indicator=True)
    lines = []
    for row in merged.to_dict("records"):
        if row["_merge"] != "both":
            lines.append(f"ledger: {row['kind']} {row['path']} only in the "
                         f"{'killed' if row['_merge'] == 'left_only' else 'clean'} run")
            continue
        changed = [f"{c} {_plain(row[c + '_got'])!r} (clean {_plain(row[c + '_expected'])!r})" for c in LEDGER_COLUMNS[2:]
                   if row[c + "_got"] != row[c + "_expected"]]
        if changed:
            lines.append(f"ledger: {row['kind']} {row['path']}: {', '.join(changed)}")
    return lines


def _frame_differences(got: pd.DataFrame, expected: pd.DataFrame, limit: int = 25) -> list[str]:
    """Human-readable cells where `got` differs from `expected` (floats: rtol 1e-5, as
    assert_frame_equal), rows present in one frame only, keyed by window end/class/series."""
    keys = ["end", "class", "segment", "segment_value"]
    merged = got.merge(expected, on=keys, how="outer", suffixes=("_got", "_expected"), indicator=True)
    lines = [f"row {tuple(row[k] for k in keys)} only in the {'killed' if row['_merge'] == 'left_only' else 'clean'} run"
             for _, row in merged.loc[merged["_merge"] != "both"].iterrows()]
    both = merged.loc[merged["_merge"] == "both"]
    for column in (c for c in expected.columns if c not in keys):
        a, b = both[f"{column}_got"], both[f"{column}_expected"]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            same = np.isclose(x, y, rtol=1e-5, atol=1e-8, equal_nan=True)
        else:
            same = ((a == b) | (a.isna() & b.isna())).to_numpy()
        for position in np.flatnonzero(~same):
            row = both.iloc[position]
            lines.append(f"{tuple(row[k] for k in keys)} {column}: killed+rerun {_plain(row[f'{column}_got'])!r}, "
                         f"clean {_plain(row[f'{column}_expected'])!r}")
    return lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~30 s alone; several times that on a loaded 2-CPU runner (253 s seen)
def test_killing_an_ingest_midway_and_running_it_again_gives_exactly_the_same_numbers(tmp_path, db_url, monkeypatch):
    scenario = small_scenario(days=10, rows_per_day=12000)  # big enough to be killed midway
    # The killed ingest (a subprocess) commits batches of 3 prediction files (12k rows each)
    # and then of ~17 label files, so the kill lands inside a batch that spans several files;
    # the clean ingest runs in this process with the default batch (all 10 prediction files).
    monkeypatch.setenv("MONITOR_INGEST_BATCH_ROWS", "25000")
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    killed_dir.mkdir()
    clean_dir.mkdir()
    clean_url = f"sqlite:///{clean_dir}/clean.db"
    config, _ = make_workspace(killed_dir, db_url, scenario)
    shutil.copytree(killed_dir, clean_dir, dirs_exist_ok=True)  # the same logs (simulated once)
    clean = load_config(write_config(clean_dir, scenario, database_url=clean_url))
    from monitor.store.migrate import upgrade

    upgrade(make_engine(clean.database_url))
    with monkeypatch.context() as default_batch:
        default_batch.delenv("MONITOR_INGEST_BATCH_ROWS")
        run_tick(make_engine(clean.database_url), clean, notify=False)
    expected = _frame(clean)
    expected_ledger = _ledger(clean.database_url)
    n_files = len(expected_ledger)

    # Kill it as soon as the ledger shows 2 files committed: the ingest is then (almost
    # surely) inside the transaction of the next batch, and far from done (10 prediction files
    # of a good fraction of a second each, then ~70 label files; the poll reads every 20 ms
    # and, through `_reader`, never waits for the ingest's write lock).
    stderr_path = tmp_path / "killed-ingest.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(killed_dir / "monitor.toml"),
                                    "ingest", "--no-progress"], stdout=subprocess.DEVNULL, stderr=stderr)
    reader = _reader(config.database_url)
    deadline = time.monotonic() + 300
    seen = 0
    while time.monotonic() < deadline and process.poll() is None:
        seen = int((_ledger(reader)["status"] == "done").sum())
        if seen >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    at_kill = _ledger(reader)  # what the killed ingest committed
    reader.dispose()
    assert process.returncode == -signal.SIGKILL, (
        f"the ingest ended by itself (exit {process.returncode}) before the kill, with {seen} files seen done: "
        f"{stderr_path.read_text(errors='replace')[-3000:]}")
    assert seen >= 2, f"no 2 files were committed within 300 s; ledger: {_describe_ledger(at_kill)}"
    done_at_kill = int((at_kill["status"] == "done").sum())
    assert done_at_kill < n_files, f"the ingest finished before it could be killed: {_describe_ledger(at_kill)}"

    result = _cli("--config", str(killed_dir / "monitor.toml"), "ingest", "--no-progress")
    assert result.returncode == 0, result.stderr
    context = (f"\nkilled with {done_at_kill} of {n_files} files committed; ledger at the kill: "
               f"{_describe_ledger(at_kill)}\nrerun: {result.stdout.strip()}\n{result.stderr.strip()[-2000:]}")
    got = _frame(config)
    problems = (_ledger_differences(_ledger(config.database_url), expected_ledger)
                + _frame_differences(got, expected))
    if problems:
        pytest.fail("killed + rerun differs from the clean ingest:\n" + "\n".join(problems) + context)
    try:
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    except AssertionError as error:
        raise AssertionError(f"{error}{context}") from None


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
    assert "did you mean 'bucket'?" in result.stderr and 'name="m"' in result.stderr
    assert "Usage:" not in result.stderr  # the command line was fine: no usage banner
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

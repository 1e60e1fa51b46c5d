"""Ingest in batches of files gives exactly what one file per transaction gives.

Many small files are read, validated and stored one by one, but counted (core counts, drift
and estimation hooks, label application) once per batch, in one transaction
(`monitor.ingest.ledger.ingest_files`). Every stored table must be the same as with batches
of one file (`MONITOR_INGEST_BATCH_ROWS=1`), ledger included, and a bad file inside a batch
fails alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from monitor.config import load_config
from monitor.ingest.sweep import sweep
from monitor.simulate import simulate, write_config, write_logs
from monitor.store.db import make_engine
from tests.conftest import fresh_database_url
from tests.core.workspace import small_scenario

SKIP_TABLES = {"ingest_runs", "alembic_version", "ingest_commits"}  # ingest_commits: one row per write, however batched
SKIP_COLUMNS = {"id", "ingested_at", "created_at", "started_at", "finished_at", "updated_at", "path", "source"}


def _workspace(root: Path, db_url: str):  # type: ignore[no-untyped-def]
    scenario = small_scenario(days=6, rows_per_day=600)
    data = simulate(scenario, seed=3)
    write_logs(data, root, fmt="jsonl", files_per_day=4)  # ~24 prediction files, more label files
    return load_config(write_config(root, scenario, database_url=db_url)), scenario


def _tables(url: str) -> dict[str, pd.DataFrame]:
    engine = make_engine(url)
    out = {}
    with engine.connect() as conn:
        for table in sorted(set(inspect(conn).get_table_names()) - SKIP_TABLES):
            frame = pd.read_sql_query(text(f'SELECT * FROM "{table}"'), conn)  # noqa: S608 - our own table names
            frame = frame.drop(columns=[c for c in frame.columns if c in SKIP_COLUMNS or c.endswith("_at")])
            if "n" in frame.columns and ("_counts" in table):
                # a label and its correction in one batch cancel before they are written; one
                # file at a time leaves a count of 0 behind: the same sums either way
                frame = frame.loc[frame["n"] != 0]
            for column in [c for c in frame.columns if frame[c].dtype == object]:  # JSON, bytes: comparable text
                frame[column] = frame[column].map(
                    lambda v: v if v is None or isinstance(v, str) else v.hex() if isinstance(v, bytes) else json.dumps(v))
            # sums of floats may differ in the last bits (other grouping): sort by the rest
            keys = [c for c in frame.columns if not pd.api.types.is_float_dtype(frame[c])]
            out[table] = frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys else frame
    engine.dispose()
    return out


def assert_same_tables(url: str, other_url: str) -> None:
    """Every stored table of the two databases the same (`_tables`)."""
    got, expected = _tables(url), _tables(other_url)
    assert got.keys() == expected.keys()
    for table in expected:
        pd.testing.assert_frame_equal(got[table], expected[table], check_dtype=False, obj=table)


def _ingest(config, as_of: int):  # type: ignore[no-untyped-def]
    engine = make_engine(config.database_url)
    summary = sweep(engine, config, as_of=as_of)
    engine.dispose()
    return summary.models[0]


@pytest.mark.slow
@pytest.mark.parametrize("big_files", [False, True], ids=["small-files", "big-files"])
def test_batched_ingest_stores_exactly_what_one_file_at_a_time_stores(tmp_path, db_url, request, monkeypatch,
                                                                       big_files):
    config, scenario = _workspace(tmp_path, db_url)
    as_of = scenario.start_epoch + 6 * 86_400
    if big_files:  # every file counts as big: the earlier files of its batch are flushed first
        import monitor.ingest.ledger as ledger

        monkeypatch.setattr(ledger, "BIG_FILE_BYTES", 0)
        monkeypatch.setenv("MONITOR_INGEST_BATCH_ROWS", "400")  # batches of ~3 files
    batched = _ingest(config, as_of)  # one batch per kind: the files are small
    assert not batched.errors and batched.files_read > 40
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    one_url = fresh_database_url(backend, request, tmp_path)
    one_config = load_config(write_config(tmp_path, scenario, database_url=one_url))
    monkeypatch.setenv("MONITOR_INGEST_BATCH_ROWS", "1")  # every file its own transaction
    single = _ingest(one_config, as_of)
    assert (batched.predictions, batched.labels, batched.skipped, batched.rejected, batched.waiting) == \
        (single.predictions, single.labels, single.skipped, single.rejected, single.waiting)
    assert_same_tables(db_url, one_url)


def test_a_bad_file_inside_a_batch_fails_alone(tmp_path, db_url):
    config, scenario = _workspace(tmp_path, db_url)
    predictions = sorted((tmp_path / "predictions").iterdir())
    (tmp_path / "predictions" / (predictions[5].stem + "x.parquet")).write_bytes(b"not a parquet file")
    model = _ingest(config, scenario.start_epoch + 6 * 86_400)
    engine = make_engine(config.database_url)
    with engine.connect() as conn:
        ledger = dict(conn.execute(text("SELECT path, status FROM ingested_files WHERE kind = 'predictions'")).all())
        stored = conn.execute(text("SELECT COUNT(*) FROM predictions")).scalar_one()
        counted = conn.execute(text("SELECT SUM(n) FROM prediction_counts")).scalar_one()
    engine.dispose()
    assert ledger.pop(str(tmp_path / "predictions" / (predictions[5].stem + "x.parquet"))) == "failed"
    assert set(ledger.values()) == {"done"}, ledger
    assert model.files_failed == 1 and stored == counted == model.predictions > 0

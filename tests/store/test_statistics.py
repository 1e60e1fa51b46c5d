"""Statistics after a large write (monitor.store.partitions.analyze_grown, PostgreSQL): the
partitioned table as a whole gets them when it has none or the write doubled it, a partition
that never had any gets them, a grown one at doubling, a locked one is left to autovacuum, and
a tick that stored a backfill leaves both raw tables with statistics."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, make_url, text

from monitor.config import parse_config
from monitor.context import load_context
from monitor.ingest import sweep
from monitor.ingest.pipeline import ingest_frame
from monitor.store import partitions
from monitor.store.db import make_engine
from monitor.store.partitions import analyze_grown, default_name, ensure_weeks, partition_name
from monitor.tick import run_tick
from tests.conftest import fresh_database_url

DAY = 86_400
MONDAY = 1_733_097_600  # 2024-12-02 00:00 UTC
CLASSES = ["a", "b"]


def _config(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_config({"database_url": db_url, "models": [{
        "name": "m", "classes": CLASSES, "segments": ["g"],
        "predictions": {"path": "predictions/*.csv"}, "labels": {"path": "labels/*.csv"}}]}, base_dir=tmp_path)


def _predictions(n: int, start: int, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame({"prediction_id": [f"{prefix}{i}" for i in range(n)],
                         "timestamp": start + np.arange(n) * 60,
                         "prediction": rng.choice(CLASSES, n), "g": rng.choice(["x", "y"], n)})


def _store(engine: Engine, config, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        result = ingest_frame(conn, load_context(conn, config.model("m")), "predictions", frame,
                              as_of=MONDAY + 60 * DAY)
    assert result.accepted == len(frame)


def _counted(engine: Engine, name: str) -> float:
    """The rows the table's last ANALYZE counted (-1: never analysed)."""
    with engine.connect() as conn:
        return float(conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                                  {"t": name}).scalar_one())


def test_sqlite_has_nothing_to_analyse(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url("sqlite", request, tmp_path))
    assert analyze_grown(engine, "predictions", 10**6) == []
    engine.dispose()


def test_the_whole_table_then_only_what_the_write_left_without_statistics(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = fresh_database_url("postgres", request, tmp_path)
    engine, config = make_engine(url), _config(url, tmp_path)
    default, week = default_name("predictions"), partition_name("predictions", MONDAY)
    with engine.begin() as conn:
        ensure_weeks(conn, "predictions", {MONDAY})
    _store(engine, config, _predictions(1000, MONDAY + DAY, "w"))
    _store(engine, config, _predictions(300, MONDAY - 20 * DAY, "a"))  # no weekly partition: DEFAULT
    # never analysed as a whole (autovacuum never does it): the whole table, partitions included
    assert analyze_grown(engine, "predictions", 1300) == ["predictions"]
    assert (_counted(engine, "predictions"), _counted(engine, week), _counted(engine, default)) == (1300, 1000, 300)
    # a small write into partitions that have statistics: nothing to do
    _store(engine, config, _predictions(20, MONDAY - 20 * DAY, "b"))
    assert analyze_grown(engine, "predictions", 20) == []
    # a new week's partition filled after that: it alone, not the whole table again
    with engine.begin() as conn:
        ensure_weeks(conn, "predictions", {MONDAY + 7 * DAY})
    later = partition_name("predictions", MONDAY + 7 * DAY)
    assert _counted(engine, later) < 0
    _store(engine, config, _predictions(100, MONDAY + 8 * DAY, "c"))
    assert analyze_grown(engine, "predictions", 100) == [later]
    assert _counted(engine, later) == 100
    assert _counted(engine, "predictions") == 1300  # the whole table's were kept
    # a partition that at least doubled, by at least ANALYZE_MIN_PAGES (one page here)
    monkeypatch.setattr(partitions, "ANALYZE_MIN_PAGES", 1)
    _store(engine, config, _predictions(600, MONDAY - 20 * DAY, "d"))
    assert analyze_grown(engine, "predictions", 600) == [default]
    assert _counted(engine, default) == 920
    # writes as large as the rows counted double the table: the whole table again
    assert analyze_grown(engine, "predictions", 1300) == ["predictions"]
    assert _counted(engine, "predictions") == 2020
    engine.dispose()


def test_a_locked_table_is_left_to_autovacuum(request: pytest.FixtureRequest, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    url = fresh_database_url("postgres", request, tmp_path)
    engine, config = make_engine(url), _config(url, tmp_path)
    _store(engine, config, _predictions(50, MONDAY - 20 * DAY, "a"))
    monkeypatch.setattr(partitions, "ANALYZE_LOCK_TIMEOUT", "200ms")
    other = make_engine(url)
    with other.connect() as holder:  # what a running VACUUM or ANALYZE holds
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql("LOCK TABLE predictions IN SHARE UPDATE EXCLUSIVE MODE")
        with caplog.at_level(logging.WARNING, logger="monitor.partitions"):
            assert analyze_grown(engine, "predictions", 50) == []
        holder.exec_driver_sql("ROLLBACK")
    assert any("ANALYZE predictions skipped" in r.getMessage() for r in caplog.records)
    assert _counted(engine, "predictions") < 0
    assert analyze_grown(engine, "predictions", 50) == ["predictions"]  # the next large write does it
    other.dispose()
    engine.dispose()


def test_a_backfill_tick_leaves_both_raw_tables_with_statistics(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = fresh_database_url("postgres", request, tmp_path)
    engine, config = make_engine(url), _config(url, tmp_path)
    monkeypatch.setattr(sweep, "ANALYZE_AFTER_ROWS", 100)  # the threshold, scaled down to a test's rows
    (tmp_path / "predictions").mkdir()
    (tmp_path / "labels").mkdir()
    for day in range(3):
        frame = _predictions(400, MONDAY - 20 * DAY + day * DAY, f"d{day}-")
        frame.to_csv(tmp_path / "predictions" / f"p{day}.csv", index=False)
        frame[["prediction_id"]].assign(label=frame["prediction"], timestamp=frame["timestamp"] + 3600).to_csv(
            tmp_path / "labels" / f"l{day}.csv", index=False)
    summary = run_tick(engine, config, as_of=MONDAY, notify=False)
    assert summary.models[0].predictions == 1200 and summary.models[0].labels == 1200
    assert _counted(engine, "predictions") == 1200
    assert _counted(engine, "labels") == 1200
    engine.dispose()


def test_growth_by_any_way_in_gets_the_whole_table_analysed_at_doubling(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows that come by HTTP or a stream (stored here as the inbox's drain stores them) are in
    no tick's `written`, and autovacuum analyses the partitions, never the whole. Once the
    partitions' own statistics count twice the rows of the whole table's, and at least
    ANALYZE_MIN_ROWS, the whole table is analysed again; an empty one never is."""
    url = fresh_database_url("postgres", request, tmp_path)
    engine, config = make_engine(url), _config(url, tmp_path)
    default = default_name("predictions")
    monkeypatch.setattr(partitions, "ANALYZE_MIN_ROWS", 500)
    assert analyze_grown(engine, "predictions") == []  # no rows: nothing to learn
    _store(engine, config, _predictions(300, MONDAY - 20 * DAY, "a"))
    assert analyze_grown(engine, "predictions") == ["predictions"]  # rows and no statistics yet
    assert _counted(engine, "predictions") == 300

    def autovacuum() -> None:  # what autovacuum does: the partition alone
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {default}")

    _store(engine, config, _predictions(150, MONDAY - 19 * DAY, "b"))
    autovacuum()
    assert analyze_grown(engine, "predictions") == []  # 450 counted: not yet twice 300 nor 500
    assert _counted(engine, "predictions") == 300
    _store(engine, config, _predictions(200, MONDAY - 18 * DAY, "c"))
    autovacuum()
    assert analyze_grown(engine, "predictions") == ["predictions"]  # 650 >= 2 x 300 and >= 500
    assert _counted(engine, "predictions") == 650
    # every row deleted, the dead ones still on their pages: counted once as none, then left be
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM predictions")
    assert analyze_grown(engine, "predictions", 650) == ["predictions"]
    assert _counted(engine, "predictions") == 0
    assert analyze_grown(engine, "predictions") == []
    assert analyze_grown(engine, "predictions") == []
    engine.dispose()


def test_a_tick_analyses_what_came_in_without_files(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A deployment that writes only by HTTP: the tick (no files at all) gives the raw tables
    their first statistics, so its recalibration's join is not planned blind."""
    url = fresh_database_url("postgres", request, tmp_path)
    engine, config = make_engine(url), _config(url, tmp_path)
    frame = _predictions(700, MONDAY - 20 * DAY, "h")
    _store(engine, config, frame)
    with engine.begin() as conn:
        ingest_frame(conn, load_context(conn, config.model("m")), "labels",
                     frame[["prediction_id"]].assign(label=frame["prediction"], timestamp=frame["timestamp"] + 60),
                     as_of=MONDAY + 60 * DAY)
    assert _counted(engine, "predictions") < 0 and _counted(engine, "labels") < 0
    run_tick(engine, config, as_of=MONDAY, notify=False)
    assert (_counted(engine, "predictions"), _counted(engine, "labels")) == (700, 700)
    engine.dispose()


def test_tables_the_role_does_not_own_are_left_to_autovacuum(
        request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A role that may read and write but does not own the tables: PostgreSQL would skip the
    ANALYZE with a warning; it is not attempted, and the log says why."""
    url = fresh_database_url("postgres", request, tmp_path)
    engine, config = make_engine(url), _config(url, tmp_path)
    _store(engine, config, _predictions(50, MONDAY - 20 * DAY, "a"))
    role = f"monitor_t_{uuid.uuid4().hex[:10]}"
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        conn.commit()
    viewer = make_engine(make_url(url).set(username=role).render_as_string(hide_password=False))
    try:
        with caplog.at_level(logging.INFO, logger="monitor.partitions"):
            assert analyze_grown(viewer, "predictions") == []
            assert analyze_grown(viewer, "predictions") == []  # the next tick: not said again
        told = [r for r in caplog.records if "left to autovacuum: the role does not own them" in r.getMessage()]
        assert len(told) == 1, [r.getMessage() for r in caplog.records]
        assert _counted(engine, "predictions") < 0
        assert analyze_grown(engine, "predictions") == ["predictions"]  # the owner does it
    finally:
        viewer.dispose()
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
            conn.commit()
        engine.dispose()

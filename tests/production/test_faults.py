"""Fault tests on a private PostgreSQL server that the test starts, stops and restarts itself.

- The server dies (immediate stop) in the middle of an ingest: the tick fails with a one-line
  error and leaves no half-ingested file; after a restart the next tick completes and every
  count equals that of an uninterrupted run (compared with a clean database on the same data).
- Two ingest ticks running at once on the same files (two schedulers without the lock) never
  count a record twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from monitor.simulate import Scenario, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import (
    ConfusionCount,
    IngestedFile,
    Label,
    LabelArrivalCount,
    Prediction,
    PredictionCount,
)
from tests.production.pgserver import private_postgres  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _workspace(directory: Path, database_url: str, *, days: int, rows_per_day: int) -> Path:
    scenario = Scenario(days=days, rows_per_day=rows_per_day, reference_rows=3000)
    write_logs(simulate(scenario, seed=11), directory, fmt="csv")
    return write_config(directory, scenario, database_url=database_url)


def _ingest(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MONITOR_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(config), "ingest", "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _migrated(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    return engine


def snapshot(engine: Engine) -> dict:
    """Everything that must be exact, keyed independently of slice ids."""
    with engine.connect() as conn:
        def rows(statement) -> list:  # type: ignore[no-untyped-def]
            return sorted(tuple(r) for r in conn.execute(statement).all())

        return {
            "predictions": conn.execute(select(func.count()).select_from(Prediction)).scalar_one(),
            "labels": conn.execute(select(func.count()).select_from(Label)).scalar_one(),
            "prediction_counts": rows(select(PredictionCount.bucket_start, PredictionCount.pred_class,
                                             func.sum(PredictionCount.n)).group_by(PredictionCount.bucket_start,
                                                                                   PredictionCount.pred_class)),
            "confusion_counts": rows(select(ConfusionCount.bucket_start, ConfusionCount.true_class,
                                            ConfusionCount.pred_class, func.sum(ConfusionCount.n))
                                     .group_by(ConfusionCount.bucket_start, ConfusionCount.true_class,
                                               ConfusionCount.pred_class)),
            "label_arrival_counts": rows(select(LabelArrivalCount.bucket_start, LabelArrivalCount.delay_bin,
                                                func.sum(LabelArrivalCount.n))
                                         .group_by(LabelArrivalCount.bucket_start, LabelArrivalCount.delay_bin)),
        }


def _done_files(engine: Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(IngestedFile)
                                    .where(IngestedFile.status == "done", IngestedFile.kind == "predictions")).scalar_one())
    except Exception:  # noqa: BLE001 - not there yet
        return 0


def test_postgres_dies_during_an_ingest_and_the_next_tick_is_exact(private_postgres, tmp_path: Path) -> None:  # noqa: F811
    server = private_postgres
    faulty_url = server.create_database("faulty")
    clean_url = server.create_database("clean")
    faulty, clean = _migrated(faulty_url), _migrated(clean_url)
    config = _workspace(tmp_path / "ws", faulty_url, days=6, rows_per_day=8000)

    tick = _ingest(config)
    try:
        # "during": at least one prediction file committed, the tick still running
        assert server.wait_until(lambda: _done_files(faulty) >= 1 or tick.poll() is not None, timeout=240)
        assert tick.poll() is None, "the tick finished before the fault could be injected"
        faulty.dispose()
        server.stop("immediate")
        _, stderr = tick.communicate(timeout=120)
    finally:
        if tick.poll() is None:
            tick.kill()
    assert tick.returncode == 1
    # the contract's exit-1 message: one last line naming the reason (logs may come before it)
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and ("Operational" in last or "unreachable" in last
                                          or "unavailable" in last), last
    assert "Traceback" not in stderr, stderr[-3000:]  # one line per failure, never a traceback

    server.start()
    with faulty.connect() as conn:  # nothing half-done: every stored row belongs to a done file
        done = conn.execute(select(func.coalesce(func.sum(IngestedFile.rows_accepted), 0))
                            .where(IngestedFile.kind == "predictions", IngestedFile.status == "done")).scalar_one()
        stored = conn.execute(select(func.count()).select_from(Prediction)).scalar_one()
        summed = conn.execute(select(func.coalesce(func.sum(PredictionCount.n), 0))).scalar_one()
    assert 0 < stored == done == summed

    second = _ingest(config)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err

    clean_config = _workspace(tmp_path / "clean", clean_url, days=6, rows_per_day=8000)
    reference = _ingest(clean_config)
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err
    expected, got = snapshot(clean), snapshot(faulty)
    assert expected["predictions"] == 48000
    assert got == expected
    faulty.dispose()
    clean.dispose()


def test_two_ticks_at_once_never_double_count(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    config = _workspace(tmp_path / "ws", postgres_url, days=3, rows_per_day=3000)
    first, second = _ingest(config), _ingest(config)
    for process in (first, second):
        _, err = process.communicate(timeout=600)
        assert process.returncode in (0, 1), err
    # a third tick finishes whatever a conflict made one of them skip
    third = _ingest(config)
    _, err = third.communicate(timeout=600)
    assert third.returncode == 0, err
    got = snapshot(engine)
    assert got["predictions"] == 9000
    assert sum(n for *_, n in got["prediction_counts"]) == 9000
    assert sum(n for *_, n in got["confusion_counts"]) == got["labels"] - _pending(engine)
    engine.dispose()


def _pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Label).where(Label.needs_apply.is_(True))).scalar_one())

"""High availability: two `monitor run` schedulers on one PostgreSQL database. One holds the
lock and ticks; the other waits, takes over when the first is killed, and no record is ever
counted twice (runs never overlap, counts equal the data)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from monitor.simulate import Scenario, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.models import IngestRun, Prediction, PredictionCount

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _scheduler(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MONITOR_DATABASE_URL", None)
    with open(log, "w", encoding="utf-8") as out:
        return subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(config), "-v", "run"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _finished_runs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(IngestRun)
                                .where(IngestRun.finished_at.is_not(None))).scalar_one())


def test_a_waiting_scheduler_takes_over_and_nothing_is_double_counted(postgres_url: str, tmp_path: Path) -> None:
    scenario = Scenario(days=3, rows_per_day=2000, reference_rows=2000)
    write_logs(simulate(scenario, seed=5), tmp_path, fmt="csv")
    config = write_config(tmp_path, scenario, database_url=postgres_url,
                          extra={"scheduler": {"interval": "2s", "notify_interval": "2s"}})
    engine = make_engine(postgres_url)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _scheduler(config, first_log)
    second = None
    try:
        assert _wait(lambda: "scheduler lock held" in first_log.read_text(), 120), first_log.read_text()
        second = _scheduler(config, second_log)
        assert _wait(lambda: _finished_runs(engine) >= 2, 240)
        assert _wait(lambda: "another scheduler holds the lock" in second_log.read_text(), 120), second_log.read_text()
        assert "scheduler lock held" not in second_log.read_text()
        before = _finished_runs(engine)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert _wait(lambda: "scheduler lock held" in second_log.read_text(), 60), second_log.read_text()
        assert _wait(lambda: _finished_runs(engine) >= before + 2, 240)
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=120)
        assert second.returncode == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)

    with engine.connect() as conn:
        predictions = conn.execute(select(func.count()).select_from(Prediction)).scalar_one()
        counted = conn.execute(select(func.sum(PredictionCount.n))).scalar_one()
        runs = conn.execute(select(IngestRun.started_at, IngestRun.finished_at)
                            .where(IngestRun.finished_at.is_not(None)).order_by(IngestRun.started_at)).all()
    engine.dispose()
    assert predictions == counted == 6000
    for earlier, later in zip(runs, runs[1:], strict=False):  # one active scheduler: runs never overlap
        assert later.started_at >= earlier.finished_at

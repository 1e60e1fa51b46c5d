"""The scheduler process: ticks on its interval, keeps its jobs in the database, stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from sqlalchemy import text

from monitor.store.db import make_engine
from tests.core.workspace import make_workspace, small_scenario


def test_the_scheduler_ingests_on_its_interval_and_stops_cleanly_on_sigterm(tmp_path, db_url):
    config, data = make_workspace(tmp_path, db_url, small_scenario(days=3, rows_per_day=200))
    config_path = tmp_path / "monitor.toml"
    config_path.write_text(config_path.read_text() + '\n[scheduler]\ninterval = "2s"\nnotify_interval = "2s"\n')
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(config_path), "-v", "run"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    engine = make_engine(config.database_url)
    try:
        deadline = time.time() + 240
        runs = 0
        while time.time() < deadline and runs < 2:
            time.sleep(1)
            try:
                with engine.connect() as conn:
                    runs = conn.execute(text("SELECT count(*) FROM ingest_runs WHERE status = 'ok'")).scalar() or 0
            except Exception:  # noqa: BLE001 - tables may not exist for a moment
                runs = 0
        assert runs >= 2, "the scheduler did not tick twice"
        with engine.connect() as conn:
            jobs = {row[0] for row in conn.execute(text("SELECT id FROM apscheduler_jobs"))}
            stored = conn.execute(text("SELECT count(*) FROM predictions")).scalar()
        assert {"monitor-tick", "monitor-notify"} <= jobs
        assert stored == len(data.predictions)  # ticks after the first add nothing
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        engine.dispose()
    assert process.returncode == 0, output
    assert "scheduler stopped" in output

"""`monitor demo` prepares a working monitor on a fresh machine, and its feeder adds new files."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import text

from monitor.config import load_config
from monitor.demo import LIVE_GAP, feed_once
from monitor.store.db import make_engine


def test_the_demo_ingests_its_history_and_then_feeds_new_files(tmp_path):
    workspace = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "monitor.cli", "demo", "--dir", str(workspace), "--days", "4",
                             "--no-serve"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    config = load_config(workspace / "monitor.toml")
    engine = make_engine(config.database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM predictions")).scalar()
    assert stored > 0
    clock = int((workspace / ".pending" / "clock").read_text())
    predictions, labels = feed_once(workspace, now=clock + LIVE_GAP)
    assert predictions > 0 and labels > 0
    assert len(list((workspace / "predictions").glob("live-*.csv"))) == 1
    engine.dispose()

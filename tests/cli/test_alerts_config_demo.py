"""`monitor alerts --series` values and ids, the backfill hint of `monitor alerts`, config
errors placed as the TOML reads, and the demo's readiness check."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from monitor.alerts.models import AlertSeries
from monitor.cli import main
from monitor.demo import wait_until_serving
from monitor.store.db import make_engine
from monitor.tick import run_tick
from tests.alerts.helpers import context, feed, make_config, observation
from tests.core.workspace import make_workspace, small_scenario

TOML = """database_url = "{url}"
[[models]]
name = "triage"
classes = ["routine", "urgent", "critical"]
minority_classes = ["critical"]
segments = ["region"]
"""


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": "100"})
    return result.exit_code, result.stdout, result.stderr


def test_series_keep_their_last_value_and_print_ids_as_integers(sqlite_url: str, tmp_path: Path) -> None:
    config = make_config(sqlite_url)
    engine = make_engine(sqlite_url)
    ctx = context(engine, config)
    feed(engine, config, ctx, [observation(10, 0, 40, segment="region", value="south")])
    feed(engine, config, ctx, [observation(10, 0, 40, segment="region", value="south")])  # nothing new
    with engine.connect() as conn:  # the engine keeps the stored value on a tick with no new end
        assert conn.execute(select(AlertSeries.last_value, AlertSeries.last_support)).one() == (0.0, 40)
    engine.dispose()
    path = tmp_path / "monitor.toml"
    path.write_text(TOML.format(url=sqlite_url))
    code, out, _ = _invoke("--config", str(path), "alerts", "--series", "--format", "json")
    [series] = json.loads(out)
    assert code == 0 and series["last_value"] == 0.0 and series["last_support"] == 40
    assert isinstance(series["alert_id"], int)
    code, out, _ = _invoke("--config", str(path), "alerts", "--series")
    [row] = [line for line in out.splitlines() if "region=south" in line]
    assert row.split()[-3:] == ["0", "40", str(series["alert_id"])]  # last_value, last_support, id


def test_alerts_on_a_backfill_say_why_there_are_none_on_stderr(tmp_path: Path, sqlite_url: str) -> None:
    config, _ = make_workspace(tmp_path, sqlite_url, small_scenario(days=4))  # data from 2024
    run_tick(make_engine(config.database_url), config, notify=False)  # ingested today
    code, out, err = _invoke("--config", str(tmp_path / "monitor.toml"), "alerts", "--format", "json")
    assert code == 0 and json.loads(out) == []  # stdout stays clean json
    assert "older than the alert rules look back" in err
    assert "monitor backtest --model" in err and "--as-of 2024-03-0" in err


def test_config_errors_name_the_toml_section_and_the_closest_key(tmp_path: Path) -> None:
    bad = tmp_path / "monitor.toml"
    bad.write_text('database_url = "sqlite:///x.db"\n[[models]]\nname = "triage"\nbukcet = "1h"\n'
                   '[[models.alerts]]\nname = "r1"\nmin_dorp = 0.1\n[scheduler]\nintervl = "1m"\n')
    done = subprocess.run([sys.executable, "-m", "monitor.cli", "--config", str(bad), "metrics"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Usage:" not in done.stderr and "--help" not in done.stderr
    assert "[[models]] name=\"triage\": unknown key 'bukcet' (did you mean 'bucket'?)" in done.stderr
    assert ("[[models.alerts]] name=\"r1\" in [[models]] name=\"triage\": unknown key 'min_dorp' "
            "(did you mean 'min_drop'?)") in done.stderr
    assert "unknown key 'scheduler.intervl' (did you mean 'scheduler.interval'?)" in done.stderr
    assert "models.0" not in done.stderr


def test_the_demo_waits_for_the_server_before_printing_its_url() -> None:
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert wait_until_serving(f"http://127.0.0.1:{server.server_port}/", alive, timeout=10)
        server.shutdown()
        server.server_close()
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        assert not wait_until_serving(f"http://127.0.0.1:{server.server_port}/", dead, timeout=10)
    finally:
        alive.kill()
        alive.wait()

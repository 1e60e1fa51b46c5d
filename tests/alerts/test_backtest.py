"""`monitor backtest` replays simulated log files in time order into its own database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.simulate import Fault, Scenario, simulate, write_config, write_logs
from monitor.timeutil import parse_time


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_backtest_prints_the_alert_timeline_in_data_time_from_a_separate_database(tmp_path: Path) -> None:
    scenario = Scenario(start="2024-01-01", days=14, rows_per_day=600, segments=("region",), n_regions=2,
                        label_delay_median_hours=6, faults=[Fault(start_day=5, segment=None, value=None,
                                                                  cls="critical", recall_factor=0.0)])
    workspace = tmp_path / "ws"
    write_logs(simulate(scenario, seed=2), workspace)
    config = write_config(workspace, scenario, database_url="sqlite:///live.db")
    replay_db = tmp_path / "replay.db"
    result = CliRunner().invoke(main, [
        "--config", str(config), "backtest", "--model", "triage", "--from", "2024-01-04",
        "--to", "2024-01-15", "--db", f"sqlite:///{replay_db}", "--format", "json"])
    assert result.exit_code == 0, result.output + result.stderr
    assert str(replay_db) in result.stderr and "12 ticks" in result.stderr
    assert not (workspace / "live.db").exists()  # the configured database is untouched
    timeline = json.loads(result.stdout)
    overall = [a for a in timeline if a["segment"] == "*" and a["class"] == "critical" and a["fired_at"]]
    assert overall, timeline
    alert = overall[0]
    fault_start = parse_time("2024-01-06")
    assert fault_start < parse_time(alert["fired_at"]) <= parse_time(alert["fired_as_of"])
    assert parse_time(alert["fired_at"]) - fault_start <= 4 * 86400
    assert alert["severity"] == "critical" and alert["value"] < 0.2

"""`monitor alerts`, `ack`, `silence`, `silences`, `unsilence` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from monitor.alerts.service import ALERT_COLUMNS
from monitor.cli import main
from monitor.store.db import make_engine
from tests.alerts.helpers import context, feed, make_config, observation

TOML = """database_url = "{url}"
[[models]]
name = "triage"
classes = ["routine", "urgent", "critical"]
minority_classes = ["critical"]
segments = ["region"]
"""


def setup(db_url: str, tmp_path: Path) -> list[str]:
    config = make_config(db_url)
    engine = make_engine(db_url)
    feed(engine, config, context(engine, config), [observation(10, 0, 40, segment="region", value="south")])
    engine.dispose()
    path = tmp_path / "monitor.toml"
    path.write_text(TOML.format(url=db_url))
    return ["--config", str(path)]


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result.exit_code, result.output


def test_monitor_alerts_prints_the_contract_records_as_json(sqlite_url: str, tmp_path: Path) -> None:
    base = setup(sqlite_url, tmp_path)
    code, output = run([*base, "alerts", "--state", "firing", "--format", "json"])
    assert code == 0
    [record] = json.loads(output)
    assert list(record)[: len(ALERT_COLUMNS)] == ALERT_COLUMNS
    assert (record["segment_value"], record["value"], record["support"]) == ("south", 0.0, 40)
    code, output = run([*base, "alerts", "--state", "resolved", "--format", "json"])
    assert json.loads(output) == []
    code, output = run([*base, "alerts", "--series", "--format", "csv"])
    assert "firing" in output


def test_an_unknown_state_or_model_is_a_usage_error(sqlite_url: str, tmp_path: Path) -> None:
    base = setup(sqlite_url, tmp_path)
    assert run([*base, "alerts", "--state", "burning"])[0] == 2
    code, output = run([*base, "alerts", "--model", "nope"])
    assert code == 2 and "unknown model 'nope'" in output


def test_ack_and_silences_from_the_command_line(sqlite_url: str, tmp_path: Path) -> None:
    base = setup(sqlite_url, tmp_path)
    alert_id = json.loads(run([*base, "alerts", "--format", "json"])[1])[0]["id"]
    assert run([*base, "ack", str(alert_id), "--by", "ana"]) == (0, f"alert {alert_id} acknowledged\n")
    assert json.loads(run([*base, "alerts", "--format", "json"])[1])[0]["acknowledged_by"] == "ana"
    assert run([*base, "ack", "999"])[0] == 2
    code, output = run([*base, "silence", "--model", "triage", "--segment", "region", "--value", "south",
                        "--for", "2h", "--by", "ana", "--comment", "maintenance"])
    assert code == 0 and output.startswith("silence ")
    [silence] = json.loads(run([*base, "silences", "--format", "json"])[1])
    assert (silence["segment_value"], silence["created_by"]) == ("south", "ana")
    assert json.loads(run([*base, "alerts", "--format", "json"])[1])[0]["silenced_until"] is not None
    assert run([*base, "unsilence", str(silence["id"])])[0] == 0
    assert json.loads(run([*base, "silences", "--format", "json"])[1]) == []
    assert run([*base, "silence", "--model", "triage"])[0] == 2  # neither --until nor --for

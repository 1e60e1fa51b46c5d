"""`monitor backtest --incidents` prints the replay's incidents, and its alert records carry
the incident each alert was grouped into; `monitor incidents ack|silence` act on one."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.simulate import Fault, Scenario, simulate, write_config, write_logs


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_backtest_prints_incidents_and_alerts_with_their_incident(tmp_path: Path) -> None:
    scenario = Scenario(start="2024-01-01", days=14, rows_per_day=600, segments=("region",), n_regions=2,
                        label_delay_median_hours=6, faults=[Fault(start_day=5, segment="region", value="south",
                                                                  cls="critical", recall_factor=0.0)])
    workspace = tmp_path / "ws"
    write_logs(simulate(scenario, seed=2), workspace)
    config = write_config(workspace, scenario, database_url="sqlite:///live.db")
    replay = f"sqlite:///{tmp_path / 'replay.db'}"
    arguments = ["--config", str(config), "backtest", "--model", "triage", "--from", "2024-01-04",
                 "--to", "2024-01-15", "--db", replay, "--format", "json"]
    result = CliRunner().invoke(main, [*arguments, "--incidents"])
    assert result.exit_code == 0, result.output + result.stderr
    incidents = json.loads(result.stdout)
    [incident] = incidents  # one fault, one incident (its cause: tests/incidents/test_grouping.py)
    assert incident["n_alerts"] >= 2 and "region=south" in incident["explains"] and "*" in incident["explains"]

    result = CliRunner().invoke(main, arguments)  # the same replay database, read again: alerts
    assert result.exit_code == 0, result.output + result.stderr
    grouped = [a for a in json.loads(result.stdout) if a["metric"] == "recall" and a["fired_at"]]
    assert grouped and {a["incident_id"] for a in grouped} == {incident["id"]}

    live = ["--config", str(tmp_path / "replay.toml")]
    (tmp_path / "replay.toml").write_text(Path(config).read_text().replace("sqlite:///live.db", replay))
    ack = CliRunner().invoke(main, [*live, "incidents", "ack", str(incident["id"]), "--by", "oncall"])
    assert ack.exit_code == 0 and "acknowledged" in ack.output, ack.output
    silenced = CliRunner().invoke(main, [*live, "incidents", "silence", str(incident["id"]), "--for", "2d"])
    assert silenced.exit_code == 0, silenced.output
    listed = CliRunner().invoke(main, [*live, "incidents", "--state", "open", "--format", "json"])
    [row] = json.loads(listed.stdout)
    assert row["acknowledged_by"] == "oncall" and row["silenced_until"] is not None
    # csv: a list field is one JSON array per cell; the default table shows the whole cause slice
    as_csv = CliRunner().invoke(main, [*live, "incidents", "--format", "csv"])
    [csv_row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert json.loads(csv_row["explains"]) == row["explains"] and json.loads(csv_row["evidence"]) == row["evidence"]
    table = CliRunner(env={"COLUMNS": "100"}).invoke(main, [*live, "incidents"])
    cause = "*" if row["segment"] == "*" else f"{row['segment']}={row['segment_value']}"
    assert table.exit_code == 0 and f"  {cause}  " in table.stdout and "…" not in table.stdout, table.stdout
    explains = CliRunner(env={"COLUMNS": "300"}).invoke(main, [*live, "incidents", "--columns", "id,explains"])
    assert ", ".join(row["explains"]) in explains.stdout and "[" not in explains.stdout, explains.stdout
    unknown = CliRunner().invoke(main, [*live, "incidents", "ack", "999"])
    assert unknown.exit_code == 2 and "no incident with id 999" in unknown.output

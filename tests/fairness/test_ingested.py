"""End to end: simulated log files -> `monitor ingest` tick -> `monitor fairness`, checked
against fairlearn's MetricFrame on the rows visible at the tick's clock."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from monitor.cli import main
from monitor.config import load_config
from monitor.simulate import Fault, Scenario, simulate, visible, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.models import Label, Prediction
from monitor.tick import run_tick
from monitor.timeutil import parse_time
from tests.fairness.helpers import comparison_value, metric_frames, raw_rows, window_rows

DAY = 86_400
AS_OF = "2024-01-08T06:00:00Z"


@pytest.fixture(scope="module")
def data():
    return simulate(Scenario(days=8, rows_per_day=600, faults=[Fault(start_day=3)]), seed=5)


def test_fairness_after_ingest_equals_fairlearn_on_visible_rows(db_url, tmp_path, data):
    write_logs(data, tmp_path, fmt="csv")
    path = write_config(tmp_path, data.scenario, database_url=db_url,
                        model_extra={"intersections": True})
    config = load_config(path)
    engine = make_engine(config.database_url)
    run_tick(engine, config, as_of=parse_time(AS_OF), notify=False)
    engine.dispose()

    result = CliRunner().invoke(main, ["--config", str(path), "fairness", "--window", "3d",
                                       "--step", "2d", "--class", "critical,urgent",
                                       "--attribute", "region,sex&region", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert list(records[0])[:15] == ["model", "window", "end", "class", "attribute", "group",
                                     "metric", "value", "low", "high", "support",
                                     "reference_group", "difference", "ratio", "flagged"]
    assert {r["window"] for r in records} == {"3d"}

    raw = raw_rows(*visible(data, AS_OF), list(data.scenario.segments))
    raw["sex&region"] = raw["sex"] + "&" + raw["region"]
    checked = 0
    by_key: dict[tuple, list[dict]] = {}
    for record in records:
        by_key.setdefault((record["end"], record["class"], record["attribute"]), []).append(record)
    for (end, cls, attribute), group in by_key.items():
        subset = window_rows(raw, parse_time(end), 3 * DAY)
        _, nullable = metric_frames(subset, cls, attribute)
        for record in group:
            expected = nullable.by_group.loc[record["group"], record["metric"]]
            assert record["reference_group"] != record["group"]
            ref_value = comparison_value(subset, cls, attribute, record["group"],
                                         record["reference_group"], nullable.by_group, record["metric"])
            if np.isnan(expected):
                assert record["value"] is None and record["ratio"] is None
            else:
                assert record["value"] == pytest.approx(expected, rel=1e-12)
                if not np.isnan(ref_value):
                    assert record["difference"] == pytest.approx(expected - ref_value, abs=1e-12)
            checked += 1
    assert checked > 200

    # the gaps are computed from the stored counts only: without raw rows, the same records
    engine = make_engine(config.database_url)
    with engine.begin() as conn:
        conn.execute(delete(Label.__table__))
        conn.execute(delete(Prediction.__table__))
    engine.dispose()
    again = CliRunner().invoke(main, ["--config", str(path), "fairness", "--window", "3d",
                                      "--step", "2d", "--class", "critical,urgent",
                                      "--attribute", "region,sex&region", "--format", "json"])
    assert again.exit_code == 0 and json.loads(again.output) == records

    # the largest gap per attribute, flagged records only, and usage errors (exit code 2)
    runner = CliRunner()
    largest = runner.invoke(main, ["--config", str(path), "fairness", "--largest", "--format",
                                   "json", "--class", "critical"])
    assert largest.exit_code == 0
    assert {"group_max", "group_min", "difference", "ratio"} <= set(json.loads(largest.output)[0])
    flagged = runner.invoke(main, ["--config", str(path), "fairness", "--flagged", "--format",
                                   "json"])
    assert flagged.exit_code == 0 and all(r["flagged"] for r in json.loads(flagged.output))
    for bad in (["--class", "nope"], ["--attribute", "*"], ["--attribute", "colour"],
                ["--metric", "accuracy"]):
        result = runner.invoke(main, ["--config", str(path), "fairness", *bad])
        assert result.exit_code == 2, (bad, result.output)

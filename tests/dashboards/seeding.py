"""A seeded monitor workspace for dashboard tests (unit and browser).

`seed_workspace(directory, database_url)` simulates a triage model (3 classes, `critical`
rare) whose `critical` recall collapses in region `south` from day 10 (a concept fault), adds a
file with a hostile segment value and a row that must be rejected, writes monitor.toml and
runs one real scheduler tick (`monitor.tick.run_tick`) as of the end of the data. Returns the
config path and the simulated data (the oracle for expected values).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from monitor.config import load_config
from monitor.simulate import Fault, Scenario, SimulatedData, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.timeutil import parse_time

START = "2024-01-01"
DAYS = 21
AS_OF = parse_time(START) + DAYS * 86400
HOSTILE = "<script>window.__xss=1</script>"
SCENARIO = Scenario(start=START, days=DAYS, rows_per_day=1200,
                    faults=[Fault(start_day=10, segment="region", value="south", cls="critical",
                                  recall_factor=0.2)])


@dataclass
class Seeded:
    config_path: Path
    database_url: str
    data: SimulatedData


def seed_workspace(directory: Path, database_url: str) -> Seeded:
    from monitor.tick import run_tick

    data = simulate(SCENARIO, seed=7)
    write_logs(data, directory, fmt="csv")
    _write_extra_predictions(directory / "predictions", data)
    path = write_config(directory, SCENARIO, database_url=database_url)
    config = load_config(path)
    engine = make_engine(config.database_url)
    try:
        run_tick(engine, config, as_of=AS_OF, notify=False)
    finally:
        engine.dispose()
    return Seeded(path, config.database_url, data)


def _write_extra_predictions(folder: Path, data: SimulatedData) -> None:
    """Three predictions in a segment value that is an HTML payload, and one bad row."""
    rows = data.predictions.iloc[:4].copy()
    rows["prediction_id"] = [f"extra-{i}" for i in range(4)]
    rows["timestamp"] = pd.Timestamp(AS_OF - 9 * 86400 - 43200, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    rows["region"] = HOSTILE
    rows.loc[rows.index[-1], "timestamp"] = "not-a-time"
    rows.to_csv(folder / "predictions_extra.csv", index=False)

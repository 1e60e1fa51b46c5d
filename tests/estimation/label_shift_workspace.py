"""A simulated workspace under label shift, for the front ends of the BBSE estimate (CLI, API,
dashboard): `critical` has four times its prior odds from day 7 of 14 (the simulator's
`label_shift` fault: P(x | class) unchanged, about 3% -> 11%), ingested by one real scheduler
tick as of the end of the data. `realized_share` is the oracle: the true share of a class
among a window's predictions, from the simulated truth with numpy."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from monitor.config import load_config
from monitor.simulate import Fault, Scenario, SimulatedData, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.tick import run_tick

DAY = 86400
SCENARIO = Scenario(start="2024-01-01", days=14, rows_per_day=1500, segments=("sex", "region"),
                    reference_rows=20_000, label_max_delay_days=5,
                    faults=[Fault(start_day=7, kind="label_shift", segment=None, value=None, prior_factor=4.0)])
END = SCENARIO.start_epoch + SCENARIO.days * DAY  # the clock of the tick; the newest window's end
SHIFT = SCENARIO.start_epoch + 7 * DAY


@cache
def simulated() -> SimulatedData:
    return simulate(SCENARIO, seed=21)


def make_workspace(directory: Path, database_url: str) -> Path:
    """Logs, monitor.toml (model `triage`) and one tick; returns the config path."""
    write_logs(simulated(), directory, fmt="csv")
    path = write_config(directory, SCENARIO, database_url=database_url)
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        run_tick(engine, load_config(path), as_of=END, notify=False)
    finally:
        engine.dispose()
    return path


def realized_share(cls: str, end: int, window: int = 7 * DAY) -> float:
    data = simulated()
    inside = (data.prediction_epoch >= end - window) & (data.prediction_epoch < end)
    truth = data.predictions[["prediction_id"]][inside].merge(data.truth, on="prediction_id")
    return float(np.mean(truth["label"].to_numpy() == cls))

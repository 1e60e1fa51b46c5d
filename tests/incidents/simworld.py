"""A simulated workspace with a known fault, ingested by the real tick, for slice tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.config import MonitorConfig, load_config
from monitor.incidents.slices import slices_frame
from monitor.read.context import model_context
from monitor.simulate import Scenario, SimulatedData, simulate, visible, write_config, write_logs
from monitor.store.db import make_engine
from monitor.tick import run_tick

DAY = 86400
WINDOW = 7 * DAY
LABEL_DAYS = 10  # the tick runs this long after the data: most labels have arrived


def scenario(**overrides) -> Scenario:  # type: ignore[no-untyped-def]
    base = dict(start="2024-01-01", days=21, rows_per_day=1500, reference_rows=20_000, n_regions=4,
                n_numeric=1, n_categorical=1)
    base.update(overrides)
    return Scenario(**base)


def break_pair(data: SimulatedData, *, start: int, cls: str, share: float = 0.9, seed: int = 3) -> None:
    """Concept fault in one intersection (region=south & sex=F), which `Fault` cannot name:
    from `start` (epoch s), `share` of the true `cls` cases there are predicted as another class."""
    predictions = data.predictions
    truth = data.labels.drop_duplicates("prediction_id", keep="last").set_index("prediction_id")["label"]
    label = predictions["prediction_id"].map(truth)
    inside = ((predictions["region"] == "south") & (predictions["sex"] == "F") & (label == cls)
              & (data.prediction_epoch >= start))
    rows = np.array(inside, dtype=bool)
    rows &= np.random.default_rng(seed).random(len(rows)) < share
    other = predictions.loc[~predictions["prediction"].eq(cls), "prediction"].mode().iloc[0]
    predictions.loc[rows, "prediction"] = other


@dataclass
class World:
    config: MonitorConfig
    config_path: Path
    data: SimulatedData
    as_of: int  # the tick's clock
    end: int  # the end of the data: the window searched ends here


def build(directory: Path, db_url: str, scen: Scenario, *, seed: int = 5, pair_fault: int | None = None) -> World:
    """The logs of `scen` (plus a pair fault from day `pair_fault`), ingested by one tick
    LABEL_DAYS after the end of the data."""
    data = simulate(scen, seed=seed)
    if pair_fault is not None:
        break_pair(data, start=scen.start_epoch + pair_fault * DAY, cls="critical")
    write_logs(data, directory, fmt="csv")
    path = write_config(directory, scen, database_url=db_url)
    config = load_config(path)
    end = scen.start_epoch + scen.days * DAY
    engine = make_engine(config.database_url)
    try:
        run_tick(engine, config, as_of=end + LABEL_DAYS * DAY, notify=False)
    finally:
        engine.dispose()
    return World(config, path, data, end + LABEL_DAYS * DAY, end)


def read_slices(world: World, *, depth: int = 2, window: int = WINDOW) -> pd.DataFrame:
    engine = make_engine(world.config.database_url)
    try:
        with engine.connect() as conn:
            ctx = model_context(conn, world.config.models[0])
            return slices_frame(conn, ctx, cls="critical", end=world.end, window=window, depth=depth)
    finally:
        engine.dispose()


def visible_rows(data: SimulatedData, as_of: int, end: int, window: int) -> pd.DataFrame:
    """Labelled predictions in [end - window, end) as the monitor sees them at `as_of`."""
    predictions, labels = visible(data, as_of)
    stamps = pd.to_datetime(predictions["timestamp"], utc=True, format="ISO8601")
    epochs = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    inside = predictions[(epochs >= end - window) & (epochs < end)]
    return inside.merge(labels, on="prediction_id", how="inner")

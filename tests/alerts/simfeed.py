"""Drive the real tick with simulated logs as they would arrive in production.

`LiveFeed.tick(as_of)` writes the predictions made and the label rows received since the last
tick as new files (log shipping), then runs `monitor.tick.run_tick` with that clock and no
notification. Each tick ingests only the new files, so a year of days stays affordable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.config import MonitorConfig, load_config
from monitor.simulate import Scenario, simulate, write_config
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.tick import run_tick

DAY = 86400


class LiveFeed:
    def __init__(self, scenario: Scenario, seed: int, root: Path, database_url: str,
                 model_extra: dict[str, Any] | None = None) -> None:
        self.data = simulate(scenario, seed=seed)
        self.root = root
        (root / "predictions").mkdir(parents=True, exist_ok=True)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        self.data.reference.to_parquet(root / "reference.parquet", index=False)
        write_config(root, scenario, database_url=database_url, model_extra=model_extra)
        self.config: MonitorConfig = load_config(root / "monitor.toml")
        self.config.database_url = database_url
        self.engine = make_engine(database_url)
        upgrade(self.engine)
        self.clock = scenario.start_epoch
        self.start = scenario.start_epoch

    def tick(self, as_of: int) -> None:
        data, previous = self.data, self.clock
        new_predictions = (data.prediction_epoch > previous) & (data.prediction_epoch <= as_of)
        new_labels = (data.label_epoch > previous) & (data.label_epoch <= as_of)
        if previous == self.start:  # the first tick also takes what happened at the start
            new_predictions |= data.prediction_epoch == previous
            new_labels |= data.label_epoch == previous
        if new_predictions.any():
            data.predictions[new_predictions].to_parquet(self.root / "predictions" / f"p{as_of}.parquet", index=False)
        if new_labels.any():
            data.labels[new_labels].to_parquet(self.root / "labels" / f"l{as_of}.parquet", index=False)
        self.clock = as_of
        run_tick(self.engine, self.config, as_of=as_of, notify=False)

    def run_days(self, first_day: int, last_day: int, step_days: int = 1) -> None:
        for day in range(first_day, last_day + 1, step_days):
            self.tick(self.start + day * DAY)

    def close(self) -> None:
        self.engine.dispose()

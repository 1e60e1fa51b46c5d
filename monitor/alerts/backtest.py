"""`monitor backtest`: replay a period in time order into a separate database.

At each clock value t = from, from + step, ..., to, one scheduler tick runs with `as_of = t`
(the tick's sweep with the alert rules and no delivery: no notification is sent): predictions
become visible at their `timestamp`, labels at their `label_timestamp`, exactly as the
scheduler would have seen them. The sweep is called directly, not through `monitor.tick`,
which sits above the alerts package. The result is the alert timeline: when each alert started and fired in data time
(window ends) and at which clock it fired (`fired_as_of`, later than `fired_at` by however
long the labels took to mature), the incident each alert was grouped into (`incident_id`) and
the incidents themselves. A user tunes rules on history before trusting them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from monitor.alerts.engine import evaluate
from monitor.alerts.incidents import INCIDENT_COLUMNS, incidents_frame
from monitor.alerts.service import alerts_frame
from monitor.config import MonitorConfig
from monitor.ingest.sweep import sweep
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.timeutil import floor_to

TIMELINE_COLUMNS = [
    "id", "model", "rule", "metric", "class", "segment", "segment_value", "severity", "state",
    "started_at", "fired_at", "fired_as_of", "resolved_at", "value", "reference_value", "low",
    "high", "support", "message", "incident_id",
]


@dataclass
class BacktestResult:
    database_url: str
    ticks: int
    timeline: pd.DataFrame
    incidents: pd.DataFrame  # incident records of the replay, oldest first


def default_database_url() -> str:
    folder = Path(tempfile.mkdtemp(prefix="monitor-backtest-"))
    return f"sqlite:///{folder / 'backtest.db'}"


def run_backtest(config: MonitorConfig, *, model: str, start: int, end: int, step: int,
                 database_url: str | None = None,
                 on_tick: Callable[[int], None] | None = None) -> BacktestResult:
    """Replay [start, end] by `step` into `database_url` (default: a new SQLite file in a
    temporary folder) and return the alert timeline, oldest first."""
    if end < start:
        raise ValueError("--to must not be before --from")
    config.model(model)  # validates the name
    url = database_url or default_database_url()
    replay = config.model_copy(deep=True)
    replay.database_url = url
    engine = make_engine(url)
    try:
        upgrade(engine)
        ticks = 0
        clock = start
        while clock <= end:
            sweep(engine, replay, model=model, as_of=clock, evaluate=evaluate)  # no deliver: nobody is notified
            ticks += 1
            if on_tick is not None:
                on_tick(clock)
            clock += step
        with engine.begin() as conn:
            frame = alerts_frame(conn, model=model)
            incidents = incidents_frame(conn, model=model)
    finally:
        engine.dispose()
    timeline = frame.sort_values(["started_at", "id"], kind="stable") if len(frame) else frame
    incidents = incidents.sort_values(["fired_at", "id"], kind="stable") if len(incidents) else incidents
    return BacktestResult(url, ticks, timeline[TIMELINE_COLUMNS].reset_index(drop=True),
                          incidents[INCIDENT_COLUMNS].reset_index(drop=True))


def clock_range(start: int, end: int, step: int) -> list[int]:
    """The clock values of a backtest (exposed for the CLI's progress display)."""
    first = floor_to(start, 1)
    return list(range(first, end + 1, step))

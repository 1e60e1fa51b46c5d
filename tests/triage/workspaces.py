"""Small simulated workspaces for the triage tests: a year of old logs backfilled today, and
logs running up to the clock (the current window is partial)."""

from __future__ import annotations

from pathlib import Path

from monitor.config import load_config
from monitor.simulate import Fault, Scenario, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.timeutil import to_iso

DAY = 86400


def build(directory: Path, scenario: Scenario, *, as_of: int | None = None) -> Path:
    """Logs, config and a migrated SQLite database; one real tick at `as_of` (None: now)."""
    from monitor.tick import run_tick

    data = simulate(scenario, seed=11)
    write_logs(data, directory, fmt="csv")
    path = write_config(directory, scenario, database_url=f"sqlite:///{directory / 'monitor.db'}")
    config = load_config(path)
    engine = make_engine(config.database_url)
    try:
        upgrade(engine)
        run_tick(engine, config, as_of=as_of, notify=False)
    finally:
        engine.dispose()
    return path


def backfilled_year(directory: Path) -> Path:
    """2013's logs ingested today: critical recall collapses everywhere from day 200, so the
    newest window proves a drop, but every window is older than the alert look-back."""
    scenario = Scenario(start="2013-01-01", days=365, rows_per_day=100, class_priors=(0.6, 0.3, 0.1),
                        faults=[Fault(start_day=300, segment=None, value=None, recall_factor=0.05)])
    return build(directory, scenario)


def up_to_now(directory: Path, now: int) -> Path:
    """Three weeks of logs up to the clock `now` (mid-day), ingested as of `now`."""
    first_day = now - now % DAY - 20 * DAY
    scenario = Scenario(start=str(to_iso(first_day))[:10], days=21, rows_per_day=600, label_delay_median_hours=6.0)
    return build(directory, scenario, as_of=now)

"""One scheduler tick: ingest new files, update aggregates, evaluate alerts, notify.

`monitor ingest` runs one tick; `monitor run` runs them on an interval; `monitor backtest`
sweeps the same way with a moving `as_of` and no delivery. The sweep itself (files, labels,
error handling, the `ingest_runs` record) is `monitor.ingest.sweep`; the tick plugs the alert
rules and the outbox into it.
"""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.alerts.engine import evaluate
from monitor.alerts.outbox import deliver_pending
from monitor.config import MonitorConfig
from monitor.ingest.sweep import ModelSummary, TickSummary, sweep
from monitor.store.partitions import maintain_partitions
from monitor.timeutil import now_epoch

__all__ = ["ModelSummary", "TickSummary", "run_tick"]


def run_tick(engine: Engine, config: MonitorConfig, *, model: str | None = None, as_of: int | None = None,
             notify: bool = True, progress: bool = False, full_scan: bool = True) -> TickSummary:
    """Run one tick for every model (or one). `as_of` None means now (live). On PostgreSQL the
    raw tables' weekly partitions are created ahead first (monitor.store.partitions).
    `full_scan` False (the scheduler after its first tick): files settled for a day are
    looked at in one hour of the day only, so the tick grows little with the files kept."""
    maintain_partitions(engine, as_of if as_of is not None else now_epoch())
    return sweep(engine, config, model=model, as_of=as_of, evaluate=evaluate,
                 deliver=deliver_pending if notify else None, progress=progress, full_scan=full_scan)

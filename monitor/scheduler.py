"""The scheduler process (`monitor run`): APScheduler 3 with a persistent job store.

Jobs are module-level functions with explicit ids, `coalesce=True` (a backlog of missed runs
becomes one), `max_instances=1` (a slow tick is never overlapped by the next) and a misfire
grace time; job state lives in the database (`apscheduler_jobs`), so a restart resumes the
schedule. Only one scheduler per database runs jobs: the others wait on `scheduler_lock`
and take over when the holder dies. SIGTERM and SIGINT stop it cleanly after the running job.

Jobs receive the config path (a string, picklable) and load the config afresh: an edited
monitor.toml takes effect at the next tick.

While it holds the lock, the scheduler also drains the HTTP write inbox every half second
(`monitor.ingest.inbox.Drainer`, a thread beside the jobs rather than a job, so that a
one-second interval writes nothing to the job store): rows queued by an API process that
died before aggregating them are aggregated here.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from monitor.config import MonitorConfig, load_config
from monitor.store.db import make_engine
from monitor.timeutil import parse_duration

log = logging.getLogger(__name__)

TICK_JOB = "monitor-tick"
NOTIFY_JOB = "monitor-notify"
RETENTION_JOB = "monitor-retention"


def _guarded(job: Callable[[MonitorConfig], Any], config_path: str | None) -> None:
    """Run one job; errors are logged, never raised (the scheduler must go on)."""
    try:
        config = load_config(config_path)
        job(config)
    except Exception:  # noqa: BLE001 - a failing tick is recorded and retried next interval
        log.exception("job failed")


_scanned: set[str] = set()  # databases whose files this process has scanned in full once


def _tick(config: MonitorConfig) -> None:
    """One tick. The first of the process looks at every file (changes made while the
    scheduler was down); later ones at settled files only in their hour of the day."""
    from monitor.tick import run_tick

    engine = make_engine(config.database_url)
    try:
        summary = run_tick(engine, config, notify=False, full_scan=config.database_url not in _scanned)
        _scanned.add(config.database_url)
        log.info("%s", summary.render())
    finally:
        engine.dispose()


def _notify(config: MonitorConfig) -> None:
    from monitor.alerts.outbox import deliver_pending

    engine = make_engine(config.database_url)
    try:
        counts = deliver_pending(engine, config)
        if any(counts.values()):
            log.info("notifications: %s", counts)
    finally:
        engine.dispose()


def _retention(config: MonitorConfig) -> None:
    from monitor.retention import apply_retention
    from monitor.timeutil import now_epoch

    engine = make_engine(config.database_url)
    try:
        with engine.begin() as conn:
            log.info("retention: %s", apply_retention(conn, config, now_epoch()))
    finally:
        engine.dispose()


def tick_job(config_path: str | None) -> None:
    """Ingest new files, update aggregates, evaluate alerts (job `monitor-tick`)."""
    _guarded(_tick, config_path)


def notify_job(config_path: str | None) -> None:
    """Deliver due alert events through the outbox (job `monitor-notify`)."""
    _guarded(_notify, config_path)


def retention_job(config_path: str | None) -> None:
    """Delete raw rows past the retention age, keeping aggregates (job `monitor-retention`)."""
    _guarded(_retention, config_path)


def build_scheduler(config: MonitorConfig, config_path: str | None, *, blocking: bool = True):  # type: ignore[no-untyped-def]
    """A configured (not started) APScheduler with our jobs in a SQLAlchemy job store."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    engine = make_engine(config.database_url)
    settings = config.scheduler
    kind = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = kind(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": parse_duration(settings.misfire_grace_time)},
        timezone="UTC",
    )
    path = str(config_path) if config_path else None
    scheduler.add_job(tick_job, "interval", seconds=parse_duration(settings.interval), id=TICK_JOB,
                      name="ingest, aggregate, evaluate alerts", args=[path], replace_existing=True,
                      next_run_time=_now())
    scheduler.add_job(notify_job, "interval", seconds=parse_duration(settings.notify_interval), id=NOTIFY_JOB,
                      name="deliver notifications", args=[path], replace_existing=True)
    if config.retention.raw_predictions:
        scheduler.add_job(retention_job, "interval", hours=24, id=RETENTION_JOB, name="retention",
                          args=[path], replace_existing=True)
    elif scheduler.get_job(RETENTION_JOB):
        scheduler.remove_job(RETENTION_JOB)
    return scheduler


def _now():  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    return datetime.now(tz=timezone.utc)


def run_scheduler(config: MonitorConfig, *, config_path: str | None = None) -> None:
    """Run until SIGTERM/SIGINT. Waits for the scheduler lock first (one active per database)."""
    from monitor.locking import scheduler_lock
    from monitor.store.migrate import upgrade

    engine = make_engine(config.database_url)
    upgrade(engine)  # a fresh database works out of the box; no-op when current
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping after the running job", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("waiting for the scheduler lock")
    lock = scheduler_lock(engine, wait=True, poll_interval=5.0, stop=stop)
    if not lock.acquire():
        return  # stopped while waiting
    from monitor.ingest.inbox import Drainer

    # polled every half second (no write nudges this process): API workers step in only
    # after routes.API_DRAIN_AFTER, so under load the scheduler does the aggregating
    drainer = Drainer(lambda: engine, config, idle_exit=float("inf"), interval=0.5, gap=0.0)
    try:
        log.info("scheduler lock held: starting jobs (tick every %s)", config.scheduler.interval)
        scheduler = build_scheduler(config, config_path, blocking=False)
        scheduler.start()
        drainer.nudge()  # starts the inbox thread
        while not stop.wait(1.0):
            if not lock.verify():
                log.error("scheduler lock lost (database connection broke): stopping")
                break
        scheduler.shutdown(wait=True)
    finally:
        drainer.stop()
        lock.release()
        engine.dispose()
    log.info("scheduler stopped")

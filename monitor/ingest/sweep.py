"""One ingest sweep over the models: the scheduler tick, with its alert steps passed in.

For each model: load its context and reference, read its new files, apply the labels that
waited for predictions of other files, then run `evaluate` (the tick passes the alert rules);
after all models, `deliver` (the tick's notifications). A sweep never stops at a bad file or a
bad model: each is recorded with its error and the rest goes on; the run is recorded in
`ingest_runs`.

The alert steps are parameters, not imports, because the alerts package sits above ingest:
`monitor.tick` plugs them in, and `monitor backtest` (in the alerts package) sweeps without
delivery, so neither imports the other's layer backwards (no import cycle).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.config import MonitorConfig
from monitor.context import ModelContext, load_context
from monitor.ingest.hooks import tick_hooks
from monitor.ingest.inbox import drain_one
from monitor.ingest.ledger import BatchFailed, FileOutcome, discover, ingest_files
from monitor.ingest.pipeline import IngestResult, apply_labels
from monitor.ingest.recent import RecentPredictions
from monitor.ingest.reference import UnusableReference, prepare_reference
from monitor.locking import ingest_lock
from monitor.store.base import utcnow
from monitor.store.bulk import inserted_id
from monitor.store.db import DatabaseError
from monitor.store.models import IngestRun
from monitor.store.partitions import analyze_grown
from monitor.timeutil import now_epoch, to_iso

if TYPE_CHECKING:  # rich is imported only when a progress bar is shown
    from rich.progress import Progress, TaskID

ANALYZE_AFTER_ROWS = 50_000  # rows of a kind stored by a tick before its tables' statistics are looked at

# (connection, config, model, clock) -> counts for the model's summary, e.g. alerts fired
class Evaluate(Protocol):
    """(conn, config, ctx, as_of, errors=) -> counts; a failing rule's message goes to `errors`."""

    def __call__(self, conn: Connection, config: MonitorConfig, ctx: ModelContext, as_of: int, *,
                 errors: list[str]) -> dict[str, int]: ...


# (engine, config) -> counts for the summary, e.g. notifications sent
Deliver = Callable[[Engine, MonitorConfig], dict[str, int]]

log = logging.getLogger(__name__)


@dataclass
class ModelSummary:
    model: str
    files_read: int = 0
    files_failed: int = 0
    predictions: int = 0
    labels: int = 0
    rejected: int = 0
    waiting: int = 0
    skipped: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: FileOutcome) -> None:
        if outcome.status == "unchanged":
            return
        if outcome.status == "failed":
            self.files_failed += 1
            self.errors.append(outcome.error or outcome.path)
            return
        self.files_read += 1
        if outcome.kind == "predictions":
            self.predictions += outcome.result.accepted
        else:
            self.labels += outcome.result.accepted
        self.rejected += outcome.result.rejected
        self.waiting += outcome.result.waiting
        self.skipped += outcome.result.skipped


@dataclass
class TickSummary:
    as_of: int
    models: list[ModelSummary] = field(default_factory=list)
    notifications: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": to_iso(self.as_of),
            "models": [vars(m) for m in self.models],
            "notifications": self.notifications,
        }

    def render(self) -> str:
        lines = [f"tick as of {to_iso(self.as_of)}"]
        for m in self.models:
            lines.append(
                f"  {m.model}: {m.files_read} files read, {m.files_failed} failed; "
                f"{m.predictions} predictions and {m.labels} labels accepted, {m.rejected} rows rejected"
                + (f", {m.waiting} not yet visible" if m.waiting else "")
                + (f"; alerts {', '.join(f'{k} {v}' for k, v in m.alerts.items())}" if m.alerts else "")
            )
            for error in m.errors:
                lines.append(f"    ! {error}")
        if self.notifications:
            lines.append("  notifications: " + ", ".join(f"{k} {v}" for k, v in self.notifications.items()))
        if any(m.rejected or m.files_failed for m in self.models):
            lines.append("  see `monitor rejects` for rejected rows and failed files")
        return "\n".join(lines)


def _ingest_model(engine: Engine, config: MonitorConfig, ctx: ModelContext, as_of: int | None,
                  summary: ModelSummary, progress: Progress | None, full_scan: bool = True) -> None:
    recent = RecentPredictions()  # the predictions stored here, for the label files' join
    for kind in ("predictions", "labels"):
        paths = discover(ctx, kind, config.base_dir)
        task = progress.add_task(f"{ctx.name} {kind}", total=len(paths), rows=0) if progress else None
        advance = partial(_advance, progress, task) if progress is not None and task is not None else None
        done = written = 0
        while done < len(paths):
            try:
                outcomes = ingest_files(engine, ctx, kind, paths[done:], as_of=as_of, on_file=advance,
                                        full_scan=full_scan, recent=recent)
            except BatchFailed as failed:
                _batch_failed(failed, summary)
                outcomes = [FileOutcome(str(failed.path), kind, "unchanged", IngestResult())] * failed.consumed
            for outcome in outcomes:
                summary.add(outcome)
                written += outcome.result.accepted
            done += len(outcomes)
            if written >= ANALYZE_AFTER_ROWS and analyze_grown(engine, kind, written):
                written = 0  # a backfill: its next batches and the tick's next steps are planned on fresh statistics


def _advance(progress: Progress, task: TaskID, outcome: FileOutcome) -> None:
    """One more file read (shown as it is read; it commits with its batch)."""
    progress.update(task, advance=1, rows=progress.tasks[task].fields["rows"] + outcome.result.read)


def _batch_failed(failed: BatchFailed, summary: ModelSummary) -> None:
    """A batch that could not commit: its files are read again on the next tick."""
    error = failed.__cause__ or failed
    if isinstance(error, DBAPIError):  # database trouble: one line, the next tick retries
        log.error("ingesting %s failed: %s", failed.path, _first_line(error))
        summary.files_failed += 1
        summary.errors.append(f"{failed.path}: {type(error).__name__}")
        if _database_gone(error):  # every other file would fail the same way
            raise error
        return
    log.error("ingesting %s failed", failed.path, exc_info=error)
    summary.files_failed += 1
    summary.errors.append(f"{failed.path}: {type(error).__name__}: {error}")


def sweep(engine: Engine, config: MonitorConfig, *, model: str | None = None, as_of: int | None = None,
          evaluate: Evaluate | None = None, deliver: Deliver | None = None,
          progress: bool = False, full_scan: bool = True) -> TickSummary:
    """Ingest every model (or one), evaluating each after its files; then deliver. `as_of`
    None means now (live). `full_scan` False: settled files are looked at only in their hour
    of the day (`monitor.ingest.ledger.ingest_files`)."""
    clock = as_of if as_of is not None else now_epoch()
    summary = TickSummary(as_of=clock)
    with engine.begin() as conn:
        run_id = inserted_id(conn.execute(insert(IngestRun).values(started_at=utcnow(), as_of=clock, status="running")))
    models = [config.model(model)] if model else config.models
    for table in ("predictions", "labels"):  # grown since the last tick by any way in (HTTP, stream):
        analyze_grown(engine, table)  # this tick's steps are planned on those statistics (PostgreSQL)
    bar = _progress() if progress else None
    status, error_text = "ok", None
    try:
        if bar:
            bar.start()
        for model_config in models:
            model_summary = ModelSummary(model=model_config.name)
            summary.models.append(model_summary)
            try:
                with engine.begin() as conn:
                    ctx = load_context(conn, model_config)
                    prepare_reference(conn, ctx, config.base_dir)
                _ingest_model(engine, config, ctx, as_of, model_summary, bar, full_scan)
                if as_of is None:  # live: HTTP writes still in the inbox (issue 15) go in first
                    drain_one(engine, model_config, wait=True)
                with engine.begin() as conn:
                    ingest_lock(conn, ctx.model_id)
                    apply_labels(conn, ctx)  # labels that waited for predictions of other files
                    for tick_hook in tick_hooks():  # e.g. recalibration on matured labels
                        tick_hook(conn, ctx, clock)
                if evaluate is not None:
                    with engine.begin() as conn:
                        rule_errors: list[str] = []
                        model_summary.alerts = evaluate(conn, config, ctx, clock, errors=rule_errors)
                    if rule_errors:  # a broken rule: the others ran, the run is recorded as failed
                        model_summary.errors.extend(rule_errors)
                        status, error_text = "failed", f"{model_config.name}: {rule_errors[-1]}"
            except UnusableReference as error:
                model_summary.errors.append(str(error))
                status, error_text = "failed", str(error)
            except DBAPIError as error:
                model_summary.errors.append(f"{type(error).__name__}: {_first_line(error)}")
                status, error_text = "failed", f"{model_config.name}: {_first_line(error)}"
                if _database_gone(error):
                    raise DatabaseError(f"database unavailable during the tick: {_first_line(error)}") from None
                log.error("tick for model %s failed: %s", model_config.name, _first_line(error))
            except Exception as error:
                log.exception("tick for model %s failed", model_config.name)
                model_summary.errors.append(f"{type(error).__name__}: {error}")
                status, error_text = "failed", f"{model_config.name}: {type(error).__name__}: {error}"
        if deliver is not None:
            summary.notifications = deliver(engine, config)
    finally:
        if bar:
            bar.stop()
        try:
            with engine.begin() as conn:
                conn.execute(update(IngestRun).where(IngestRun.id == run_id).values(
                    finished_at=utcnow(), status=status, summary=summary.to_dict(), error=error_text))
        except DBAPIError as error:  # the database went away: said once, by the caller
            log.debug("could not record the end of ingest run %s: %s", run_id, _first_line(error))
    return summary


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _database_gone(error: DBAPIError) -> bool:
    """The connection failed or was lost (not a constraint or data error of one file)."""
    return isinstance(error, OperationalError) or bool(error.connection_invalidated)


def _progress() -> Progress:
    """Files, rows and rows/s per model and kind. `monitor ingest` asks for it only when
    stderr is a terminal (and not with --no-progress), so a piped ingest stays quiet."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class RowsColumn(ProgressColumn):
        def render(self, task):  # type: ignore[no-untyped-def]
            rows, elapsed = task.fields.get("rows", 0), task.elapsed or 0.0
            rate = f", {rows / elapsed:,.0f} rows/s" if elapsed > 0 else ""
            return Text(f"{rows:,} rows{rate}")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RowsColumn(),
                    TimeElapsedColumn(), transient=True)

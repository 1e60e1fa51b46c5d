"""Retention: delete raw predictions and labels once they can no longer change any count.

A prediction's raw row is only needed to join a label that has not arrived yet (and to dedupe
re-sent rows). Once it is older than `retention.raw_predictions` and than
`retention.label_horizon` (after which no label is expected), its row and its label's row are
deleted. Every aggregate (confusion, prediction, label-arrival, drift and estimation counts)
is kept, so metrics, drift, fairness and alerts read exactly the same before and after.

Rules, per model, with `cutoff = now - max(raw_predictions, label_horizon)`:
- a prediction with `ts < cutoff` is deleted with its label, unless that label is not yet
  applied to the counts (`needs_apply`): it is kept until a tick has applied it;
- a pending label (no prediction) with `label_ts < cutoff` is deleted: its prediction would
  be older than the cutoff too;
- rejected rows and finished tick records (`ingest_runs`) written before the cutoff go too.
Disabled while `raw_predictions` is unset. Runs inside the caller's transaction.
Note: a prediction re-sent after its raw row was deleted cannot be recognised as a duplicate;
ingestion is expected to refuse predictions older than the cutoff (see docs/deployment.md).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, cast

import click
from sqlalchemy import Table, and_, delete, exists, func, select
from sqlalchemy.engine import Connection

from monitor.cli_common import State, handle_errors, pass_state, time_callback
from monitor.config import MonitorConfig
from monitor.context import ensure_model
from monitor.store.models import IngestRun, Label, Prediction, RejectedRow
from monitor.timeutil import now_epoch, parse_duration, to_iso

log = logging.getLogger("monitor.retention")
PREDICTIONS = cast(Table, Prediction.__table__)
LABELS = cast(Table, Label.__table__)


def retention_cutoff(config: MonitorConfig, now: int) -> int | None:
    """Predictions older than this (epoch s) are deleted; None when retention is off."""
    settings = config.retention
    if settings.raw_predictions is None:
        return None
    return now - max(parse_duration(settings.raw_predictions), parse_duration(settings.label_horizon))


def _old_predictions(model_id: int, cutoff: int) -> Any:
    """WHERE clause of the predictions to delete (bucket_start too, so the index is used)."""
    unapplied = exists().where(
        LABELS.c.model_id == PREDICTIONS.c.model_id,
        LABELS.c.prediction_id == PREDICTIONS.c.prediction_id,
        LABELS.c.needs_apply.is_(True),
    )
    return and_(PREDICTIONS.c.model_id == model_id, PREDICTIONS.c.bucket_start < cutoff,
                PREDICTIONS.c.ts < cutoff, ~unapplied)


def _apply_model(conn: Connection, model_id: int, cutoff: int, dry_run: bool) -> dict[str, int]:
    old = _old_predictions(model_id, cutoff)
    old_ids = select(PREDICTIONS.c.prediction_id).where(old)
    labels_of_old = and_(LABELS.c.model_id == model_id, LABELS.c.prediction_id.in_(old_ids))
    orphan = and_(
        LABELS.c.model_id == model_id, LABELS.c.label_ts < cutoff,
        ~exists().where(PREDICTIONS.c.model_id == LABELS.c.model_id,
                        PREDICTIONS.c.prediction_id == LABELS.c.prediction_id),
    )
    if dry_run:
        def count(table: Any, where: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())

        return {"predictions": count(PREDICTIONS, old), "labels": count(LABELS, labels_of_old),
                "pending_labels": count(LABELS, orphan)}
    # Labels first: their selection needs the predictions that are about to go.
    labels = conn.execute(delete(LABELS).where(labels_of_old)).rowcount
    predictions = conn.execute(delete(PREDICTIONS).where(old)).rowcount
    pending = conn.execute(delete(LABELS).where(orphan)).rowcount
    return {"predictions": int(predictions), "labels": int(labels), "pending_labels": int(pending)}


def _housekeeping(conn: Connection, cutoff: int, dry_run: bool) -> dict[str, int]:
    """Rejected rows and the tick history older than the cutoff (by when they were written):
    they grow with time and nothing reads them once their data is past retention. The ledger
    keeps each file's reject count."""
    since = datetime.fromtimestamp(cutoff, tz=timezone.utc)
    old_rejects = RejectedRow.created_at < since
    old_runs = and_(IngestRun.started_at < since, IngestRun.finished_at.is_not(None))
    if dry_run:
        return {name: int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())
                for name, table, where in (("rejected_rows", RejectedRow, old_rejects),
                                           ("ingest_runs", IngestRun, old_runs))}
    return {"rejected_rows": int(conn.execute(delete(RejectedRow).where(old_rejects)).rowcount),
            "ingest_runs": int(conn.execute(delete(IngestRun).where(old_runs)).rowcount)}


def apply_retention(conn: Connection, config: MonitorConfig, now: int, *, dry_run: bool = False) -> dict[str, Any]:
    """Delete (or with `dry_run` count) the raw rows past retention for every configured
    model, then rejected rows and finished tick records written before the cutoff. Returns
    {"enabled", "dry_run", "cutoff" (ISO or None), "predictions", "labels", "pending_labels",
    "rejected_rows", "ingest_runs", "models": {name: {...}}}; aggregates are never touched."""
    cutoff = retention_cutoff(config, now)
    summary: dict[str, Any] = {"enabled": cutoff is not None, "dry_run": dry_run,
                               "cutoff": to_iso(cutoff) if cutoff is not None else None,
                               "predictions": 0, "labels": 0, "pending_labels": 0,
                               "rejected_rows": 0, "ingest_runs": 0, "models": {}}
    if cutoff is None:
        return summary
    for model in config.models:
        counts = _apply_model(conn, ensure_model(conn, model), cutoff, dry_run)
        summary["models"][model.name] = counts
        for key, value in counts.items():
            summary[key] += value
    summary.update(_housekeeping(conn, cutoff, dry_run))
    log.info("retention%s: cutoff %s, %d predictions, %d labels, %d pending labels, %d rejected rows, "
             "%d tick records", " (dry run)" if dry_run else "", summary["cutoff"], summary["predictions"],
             summary["labels"], summary["pending_labels"], summary["rejected_rows"], summary["ingest_runs"])
    return summary


def retention_job(engine: Any, config: MonitorConfig, now: int | None = None) -> dict[str, Any]:
    """The scheduled job: one transaction, wall-clock now unless given."""
    with engine.begin() as conn:
        return apply_retention(conn, config, now_epoch() if now is None else now)


@click.command("retention")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--now", "now", callback=time_callback, help="The clock (ISO 8601 or epoch s); default: now.")
@pass_state
@handle_errors
def retention_command(state: State, dry_run: bool, now: int | None) -> None:
    """Delete raw predictions and labels past [retention] (aggregates are kept)."""
    config = state.config
    if config.retention.raw_predictions is None:
        click.echo('retention is off: set [retention] raw_predictions (e.g. "90d") in monitor.toml')
        return
    with state.engine().begin() as conn:
        summary = apply_retention(conn, config, now_epoch() if now is None else now, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {summary['predictions']} predictions, {summary['labels']} labels and "
               f"{summary['pending_labels']} pending labels older than {summary['cutoff']}, and "
               f"{summary['rejected_rows']} rejected rows and {summary['ingest_runs']} tick records "
               "written before it; aggregates kept")

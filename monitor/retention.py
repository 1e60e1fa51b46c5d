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

On PostgreSQL, where the raw tables are partitioned by week (monitor.store.partitions), a
week wholly older than the cutoff is dropped as a table instead of deleted row by row, when
the rules above allow it for every row of it: no label of its predictions is waiting to be
applied, and it holds no row of a model that is not configured (those are never touched).
The week that holds the cutoff is kept whole until it is wholly older (up to a week more of
raw rows than on SQLite: deleting it day by day would leave retention nothing to drop); the
rows of weeks that cannot be dropped and of the DEFAULT partition go through the DELETEs.
Labels are partitioned by their own time: a label newer than the cutoff whose prediction went
with a dropped week stays until its week is dropped (it can no longer move any count).
Note: a prediction re-sent after its raw row was deleted cannot be recognised as a duplicate;
ingestion is expected to refuse predictions older than the cutoff (see docs/deployment.md).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, cast

import click
from sqlalchemy import Table, and_, delete, exists, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from monitor.cli_common import State, handle_errors, pass_state, time_callback
from monitor.config import MonitorConfig
from monitor.context import ensure_model
from monitor.store.models import IngestRun, Label, MonitoredModel, Prediction, RejectedRow
from monitor.store.partitions import (
    Partition,
    default_name,
    drop_partition,
    is_partitioned,
    older_than,
    week_start,
)
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


def _older(table: Table, column: Any, cutoff: int, weeks_before: int | None) -> Any:
    """`column < cutoff`; on the partitioned tables (`weeks_before` set) only the DEFAULT
    partition's rows go by the exact cutoff, the weekly ones by whole weeks (`weeks_before`,
    the start of the week holding the cutoff), so that a week is never DELETEd day by day
    and then dropped empty."""
    if weeks_before is None:
        return column < cutoff
    return or_(column < weeks_before,
               and_(literal_column(f'"{table.name}".tableoid = \'{default_name(table.name)}\'::regclass'),
                    column < cutoff))


def _old_predictions(model_id: int, cutoff: int, weeks_before: int | None = None) -> Any:
    """WHERE clause of the predictions to delete (bucket_start too, so the index is used)."""
    unapplied = exists().where(
        LABELS.c.model_id == PREDICTIONS.c.model_id,
        LABELS.c.prediction_id == PREDICTIONS.c.prediction_id,
        LABELS.c.needs_apply,  # the partial index of waiting labels (migration 0015)
    )
    return and_(PREDICTIONS.c.model_id == model_id, PREDICTIONS.c.bucket_start < cutoff,
                _older(PREDICTIONS, PREDICTIONS.c.ts, cutoff, weeks_before), ~unapplied)


def _apply_model(conn: Connection, model_id: int, cutoff: int, dry_run: bool,
                 weeks_before: int | None = None) -> dict[str, int]:
    old = _old_predictions(model_id, cutoff, weeks_before)
    old_ids = select(PREDICTIONS.c.prediction_id).where(old)
    labels_of_old = and_(LABELS.c.model_id == model_id, LABELS.c.prediction_id.in_(old_ids))
    orphan = and_(
        LABELS.c.model_id == model_id, _older(LABELS, LABELS.c.label_ts, cutoff, weeks_before),
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


def _blocked(conn: Connection, table: str, part: Partition, configured: list[int], others: list[int]) -> bool:
    """True when a row of `part` must survive the cutoff: a row of a model that is not
    configured, or (predictions) a prediction whose label waits to be applied, or (labels) a
    label waiting to be applied to a stored prediction. Index probes only."""
    name = part.table
    for model_id in others:
        if conn.exec_driver_sql(f'SELECT 1 FROM "{name}" WHERE model_id = %(m)s LIMIT 1',  # noqa: S608
                                {"m": model_id}).first() is not None:
            return True
    if not configured:
        return False
    if table == "predictions":
        waiting = (f'SELECT 1 FROM labels l JOIN "{name}" p ON p.model_id = l.model_id '  # noqa: S608
                   "AND p.prediction_id = l.prediction_id WHERE l.model_id = ANY(%(ids)s) AND l.needs_apply LIMIT 1")
    else:
        waiting = (f'SELECT 1 FROM "{name}" l WHERE l.model_id = ANY(%(ids)s) AND l.needs_apply AND EXISTS '  # noqa: S608
                   "(SELECT 1 FROM predictions p WHERE p.model_id = l.model_id AND p.prediction_id = l.prediction_id) LIMIT 1")
    return conn.exec_driver_sql(waiting, {"ids": configured}).first() is not None


def _drop_partitions(conn: Connection, configured: list[int], cutoff: int, dry_run: bool) -> dict[str, int]:
    """Drop (or count) the weekly partitions of predictions and labels older than `cutoff`
    whose rows may all go; returns rows per table and the number of partitions."""
    out = {"predictions": 0, "labels": 0, "partitions": 0}
    if not is_partitioned(conn, "predictions"):
        return out
    known = conn.execute(select(MonitoredModel.id)).scalars().all()
    others = sorted(set(known) - set(configured))
    for table in ("predictions", "labels"):
        if not is_partitioned(conn, table):
            continue
        for part in older_than(conn, table, cutoff):
            if _blocked(conn, table, part, configured, others):
                continue
            out["partitions"] += 1
            if not dry_run:
                out[table] += int(conn.exec_driver_sql(f'SELECT count(*) FROM "{part.table}"').scalar_one())  # noqa: S608
                drop_partition(conn, table, part)
    return out


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
    "rejected_rows", "ingest_runs", "partitions", "models": {name: {...}}}; aggregates are
    never touched. On PostgreSQL whole weeks go first ("partitions": how many; their rows are
    in the totals of predictions and labels, not in the per-model counts, which are the
    DELETEs')."""
    cutoff = retention_cutoff(config, now)
    summary: dict[str, Any] = {"enabled": cutoff is not None, "dry_run": dry_run,
                               "cutoff": to_iso(cutoff) if cutoff is not None else None,
                               "predictions": 0, "labels": 0, "pending_labels": 0,
                               "rejected_rows": 0, "ingest_runs": 0, "partitions": 0, "models": {}}
    if cutoff is None:
        return summary
    model_ids = [ensure_model(conn, model) for model in config.models]
    # whole weeks first (PostgreSQL); a dry run only counts them: its row counts are the
    # DELETE rules' over everything, as if no week were dropped
    dropped = _drop_partitions(conn, model_ids, cutoff, dry_run)
    summary["partitions"] = dropped["partitions"]
    summary["predictions"] += dropped["predictions"]
    summary["labels"] += dropped["labels"]
    weeks_before = week_start(cutoff) if is_partitioned(conn, "predictions") else None
    summary["weeks_before"] = to_iso(weeks_before) if weeks_before is not None else None
    for model, model_id in zip(config.models, model_ids, strict=True):
        counts = _apply_model(conn, model_id, cutoff, dry_run, weeks_before)
        summary["models"][model.name] = counts
        for key, value in counts.items():
            summary[key] += value
    summary.update(_housekeeping(conn, cutoff, dry_run))
    log.info("retention%s: cutoff %s, %d predictions, %d labels, %d pending labels, %d rejected rows, "
             "%d tick records, %d whole partitions", " (dry run)" if dry_run else "", summary["cutoff"],
             summary["predictions"], summary["labels"], summary["pending_labels"], summary["rejected_rows"],
             summary["ingest_runs"], summary["partitions"])
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
    weeks = (f" ({summary['partitions']} whole weekly partitions {'would be ' if dry_run else ''}dropped)"
             if summary["partitions"] else "")
    click.echo(f"{verb} {summary['predictions']} predictions, {summary['labels']} labels and "
               f"{summary['pending_labels']} pending labels older than {summary['cutoff']}{weeks}, and "
               f"{summary['rejected_rows']} rejected rows and {summary['ingest_runs']} tick records "
               "written before it; aggregates kept")

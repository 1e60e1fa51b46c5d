"""Rolling recalibration on matured labels (issue 18).

The reference calibration holds only while P(class | score) stays as on the reference; in
most deployments it drifts slowly. Labels keep arriving, only late, so once a span of
predictions has its labels in (their coverage has reached `maturity` of the usual final
coverage, from the label arrival curve of `monitor.metrics.maturity`), the per-class maps are
refitted on that span's (score, label) pairs and stored as a new calibration.

- `packed_scores` (through `monitor.estimation.aggregate.kept_scores`, as a prediction is
  stored): its logged scores, kept in `predictions.scores`, what a refit needs (the counts
  tables keep no scores).
- `recalibrate` (once per tick, after labels are applied): every `recalibration_every`, fits a
  calibration on the mature predictions with `fit_end - recalibration_span <= ts < fit_end`,
  `fit_end` the maturity frontier, when every class has `recalibration_min_positives`
  labelled positives and negatives there; otherwise a `skipped` record (span and positives,
  no maps) says so and the newest earlier calibration (the reference one when there is none)
  stays in use. Scores older than any future fit span are then cleared (`clear_scores`).
  A span with more than `recalibration_max_pairs` labelled predictions (the daily confusion
  counts say how many) is fitted on a uniform sample of about that many, picked by content
  hash in the database, so a busy model's refit reads a bounded number of rows.
- `choose` (in the prediction hook): the calibration each prediction is estimated with: the
  rolling one with the latest `fit_end <= ts` (fitted strictly before the prediction: it
  never sees the labels it estimates), else the reference one. `calibration_usage` counts the
  predictions per (bucket, calibration), so every estimate can be traced to what it used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation.calibration import ClassCalibration, fit_class
from monitor.estimation.models import CalibrationUsage, EstimationCalibration
from monitor.store.bulk import add_counts, statement_settings
from monitor.store.models import ConfusionCountDaily, Label, Prediction
from monitor.timeutil import parse_duration

log = logging.getLogger(__name__)
CALIBRATIONS = cast(Table, EstimationCalibration.__table__)
CONFUSION_DAILY = cast(Table, ConfusionCountDaily.__table__)
DAY = 86_400
PREDICTIONS = cast(Table, Prediction.__table__)
USAGE = cast(Table, CalibrationUsage.__table__)
LABELS = cast(Table, Label.__table__)
NO_CALIBRATION = 0  # calibration_usage id of predictions estimated from raw scores


@dataclass(frozen=True)
class Calibration:
    """A stored calibration: its id, kind, fit span and per-class maps (ctx.classes order)."""

    id: int
    kind: str
    fit_start: int | None
    fit_end: int | None
    n_labels: int
    classes: list[ClassCalibration | None]


def _class_maps(ctx: ModelContext, maps: dict[str, Any], n_labels: int,
                n_positive: dict[str, Any]) -> list[ClassCalibration | None]:
    out: list[ClassCalibration | None] = []
    for name in ctx.classes:
        found = maps.get(name)
        out.append(ClassCalibration(
            class_name=name, applied=found is not None, x=(found or {}).get("x"), y=(found or {}).get("y"),
            ece_before=None, ece_after=None, badly_calibrated=False, n_reference=n_labels,
            n_positive=int(n_positive.get(name, 0)),
        ))
    return out


def record_reference(conn: Connection, ctx: ModelContext, fitted: list[ClassCalibration],
                     reference: pd.DataFrame, n_labels: int) -> None:
    """Store the reference calibration as a traceable row (fit span: the reference's times)."""
    ts = pd.to_numeric(reference["ts"], errors="coerce") if "ts" in reference.columns else pd.Series(dtype=float)
    start = None if ts.dropna().empty else int(ts.min())
    end = None if ts.dropna().empty else int(ts.max()) + 1
    conn.execute(insert(CALIBRATIONS).values(
        model_id=ctx.model_id, kind="reference", fit_start=start, fit_end=end, as_of=None, n_labels=n_labels,
        n_positive={c.class_name: c.n_positive for c in fitted},
        maps={c.class_name: ({"x": c.x, "y": c.y} if c.applied else None) for c in fitted},
    ))


def usable(conn: Connection, ctx: ModelContext) -> tuple[Calibration | None, list[Calibration]]:
    """(the current reference calibration, the rolling ones fitted after it by fit_end)."""
    table = CALIBRATIONS
    rows = conn.execute(select(table).where(table.c.model_id == ctx.model_id).order_by(table.c.id)).mappings().all()
    reference: Calibration | None = None
    rolling: list[Calibration] = []
    for row in rows:
        found = Calibration(int(row["id"]), row["kind"], row["fit_start"], row["fit_end"], int(row["n_labels"]),
                            _class_maps(ctx, row["maps"] or {}, int(row["n_labels"]), row["n_positive"] or {}))
        if row["kind"] == "reference":
            reference, rolling = found, []
        elif row["kind"] == "rolling":
            rolling.append(found)
    rolling.sort(key=lambda c: (c.fit_end or 0, c.id))
    return reference, rolling


def choose(ts: np.ndarray, rolling: list[Calibration]) -> np.ndarray:
    """Index into `rolling` of the calibration for each time (latest fit_end <= ts), -1: none."""
    ends = np.array([c.fit_end for c in rolling], dtype=np.int64)
    return np.searchsorted(ends, np.asarray(ts, dtype=np.int64), side="right") - 1


def record_usage(conn: Connection, ctx: ModelContext, buckets: np.ndarray, ids: np.ndarray) -> None:
    """Add scored predictions per (bucket, calibration id) to `calibration_usage`."""
    if len(buckets) == 0:
        return
    frame = pd.DataFrame({"bucket_start": buckets.astype(np.int64), "calibration_id": ids.astype(np.int64), "n_scored": 1})
    frame = frame.groupby(["bucket_start", "calibration_id"], as_index=False).sum()
    frame.insert(0, "model_id", ctx.model_id)
    add_counts(conn, USAGE, frame, key_columns=["model_id", "bucket_start", "calibration_id"], value_columns=["n_scored"])


SCORE_DTYPE = np.dtype(">f8")  # how `predictions.scores` packs a row: big-endian float64s


def pack_scores(scores: np.ndarray) -> list[bytes]:
    """One bytes value per row: its floats as big-endian float64 (exact, and what PostgreSQL's
    float8send gives, so migration 0016 converts old text rows in SQL), classes in order."""
    values = np.ascontiguousarray(np.asarray(scores, dtype=np.float64).astype(SCORE_DTYPE, copy=False))
    if values.ndim != 2 or values.shape[1] == 0:
        return [b""] * len(values)
    return cast(list[bytes], values.view(np.dtype((np.void, values.shape[1] * 8))).ravel().tolist())


def unpack_scores(packed: list[bytes], k: int) -> np.ndarray:
    """The (rows, k) float64 matrix of `pack_scores` values."""
    return np.frombuffer(b"".join(packed), dtype=SCORE_DTYPE).astype(np.float64).reshape(-1, k)


def packed_scores(scores: np.ndarray, complete: np.ndarray) -> list[bytes | None]:
    """The packed scores of the rows with every score (`complete`), None for the others."""
    packed: list[bytes | None] = list(pack_scores(scores))
    if not complete.all():
        for i in np.flatnonzero(~complete).tolist():
            packed[i] = None
    return packed


def maturity_age(ctx: ModelContext, bins: np.ndarray, shares: np.ndarray) -> int | None:
    """Seconds after which a prediction's labels have usually reached `maturity` of their
    final coverage, from the label arrival curve (delay bins in hours, share labelled within
    each: `monitor.metrics.maturity.coverage_curve`); None while no label has arrived."""
    if len(shares) == 0 or shares[-1] <= 0:
        return None
    target = ctx.config.estimation.maturity * shares[-1]
    reached = np.flatnonzero(shares >= target)
    i = int(reached[0]) if len(reached) else len(shares) - 1
    if i == 0 or shares[i] <= shares[i - 1]:
        return int(bins[i] * 3600)
    # the bins double: interpolate within the last one on a log scale (linear from 0)
    low, high = float(bins[i - 1]), float(bins[i])
    share = (target - shares[i - 1]) / (shares[i] - shares[i - 1])
    hours = low + share * (high - low) if low <= 0 else low * (high / low) ** share
    return int(round(hours * 3600))


def _latest_as_of(conn: Connection, ctx: ModelContext) -> int | None:
    table = CALIBRATIONS
    return cast(int | None, conn.execute(select(func.max(table.c.as_of)).where(
        table.c.model_id == ctx.model_id, table.c.kind.in_(["rolling", "skipped"]))).scalar())


PAIR_CHUNK = 50_000  # rows of (scores, label) read and parsed at a time
SAMPLE_MODULUS = 100_000  # a sampled refit keeps the pairs with |content_hash % this| < its share of it


def labelled_in(conn: Connection, ctx: ModelContext, start: int, end: int) -> int:
    """Labelled predictions of the days that [start, end) touches, from the daily confusion
    counts (a few thousand rows, not the span's pairs): what a refit would read, or a little more."""
    table = CONFUSION_DAILY
    return int(conn.execute(select(func.coalesce(func.sum(table.c.n), 0)).where(
        table.c.model_id == ctx.model_id, table.c.bucket_start >= start - start % DAY,
        table.c.bucket_start < end)).scalar() or 0)


def sample_share(labelled: int, max_pairs: int) -> int | None:
    """Of SAMPLE_MODULUS, the share of pairs a refit reads: None (all of them) when the span
    holds at most `max_pairs`; otherwise about `max_pairs` of them (at least 1 in 100,000)."""
    if labelled <= max_pairs:
        return None
    return max(1, SAMPLE_MODULUS * max_pairs // labelled)


def mature_pairs(conn: Connection, ctx: ModelContext, start: int, end: int, *,
                 share: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores (rows, classes), label strings) of stored predictions in [start, end) with a
    label; with `share`, only those whose content hash falls in `share` of SAMPLE_MODULUS (a
    uniform sample: the hash is of the prediction's time, class and segments, not of its
    scores or label). The pairs come sorted by content hash, scores and label, so what is
    fitted on them (the held-out split of `fit_class` is by position) does not depend on the
    order in which the database returned them."""
    table = PREDICTIONS
    query = (select(table.c.scores, LABELS.c.label, table.c.content_hash)
             .join(LABELS, (LABELS.c.model_id == table.c.model_id) & (LABELS.c.prediction_id == table.c.prediction_id))
             .where(table.c.model_id == ctx.model_id, table.c.scores.is_not(None),
                    # bucket_start for the (model_id, bucket_start) index; ts is PostgreSQL's partition key
                    table.c.bucket_start > start - ctx.bucket, table.c.bucket_start < end,
                    table.c.ts >= start, table.c.ts < end))
    if share is not None:  # % keeps the dividend's sign on both backends: |remainder| < share
        remainder = table.c.content_hash % SAMPLE_MODULUS
        query = query.where(remainder > -share, remainder < share)
    k = len(ctx.classes)
    parts: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    hashes: list[np.ndarray] = []
    # in chunks: 28 days of a busy model are millions of rows, and rows plus one split list of
    # all their scores (as text then) held about 0.6 GB at 1M predictions (the ingest's peak
    # memory); on the driver's cursor (server-side on PostgreSQL): no Row objects
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    driver = conn.connection.driver_connection
    postgres = conn.dialect.name == "postgresql"
    cursor = driver.cursor(name="monitor_mature_pairs") if postgres else driver.cursor()  # type: ignore[union-attr]
    try:
        if postgres:
            cursor.itersize = PAIR_CHUNK
            # A named cursor is planned for its first tenth of rows (`cursor_tuple_fraction`),
            # which favours a nested loop; every row is read here, so it is planned for all
            # of them (264,000 pairs of the 1M bench: 1.4-1.7 s against 2.4-2.8 s). For this
            # statement only: the setting is put back once it is planned.
            with driver.cursor() as plain, statement_settings(plain, [("cursor_tuple_fraction", "1")]):  # type: ignore[union-attr]
                cursor.execute(str(compiled), params)
        else:
            cursor.execute(str(compiled), [params[name] for name in compiled.positiontup or []])
        while chunk := cursor.fetchmany(PAIR_CHUNK):
            parts.append(unpack_scores([r[0] for r in chunk], k))
            labels.append(np.array([r[1] for r in chunk], dtype=object))
            hashes.append(np.fromiter((r[2] for r in chunk), dtype=np.int64, count=len(chunk)))
    finally:
        cursor.close()
    if not parts:
        return np.empty((0, k)), np.empty(0, dtype=object)
    scores, label = np.concatenate(parts), np.concatenate(labels)
    codes = pd.factorize(label, sort=True)[0]  # np.unique's codes, by hashing (it sorted every label)
    order = np.lexsort((codes, *scores.T[::-1], np.concatenate(hashes)))  # the last key sorts first
    return scores[order], label[order]


def fit_rolling(ctx: ModelContext, scores: np.ndarray, labels: np.ndarray
                ) -> tuple[dict[str, Any] | None, dict[str, int]]:
    """(per-class maps, class -> {"x", "y"} or None; labelled positives per class). The maps
    are None when a class has fewer than `recalibration_min_positives` labelled positives or
    negatives."""
    settings = ctx.config.estimation
    positives = {name: int((labels == name).sum()) for name in ctx.classes}
    if any(min(n, len(labels) - n) < settings.recalibration_min_positives for n in positives.values()):
        return None, positives
    maps: dict[str, Any] = {}
    for column, name in enumerate(ctx.classes):
        truth = (labels == name).astype(np.int8)
        fitted = fit_class(name, scores[:, column], truth, mode=settings.calibration, max_ece=settings.max_ece)
        maps[name] = {"x": fitted.x, "y": fitted.y} if fitted.applied else None
    return maps, positives


def recalibrate(conn: Connection, ctx: ModelContext, as_of: int, age: int | None) -> int | None:
    """Fit and store a rolling calibration when one is due; its id, else None (see module).
    `age`: `maturity_age` at `as_of` (None: no label yet, nothing to fit). A due refit with
    too few labels is recorded as kind `skipped` (with its span and positives, no maps): it
    says why the older calibration stays in use, and keeps the next attempt a day away."""
    settings = ctx.config.estimation
    if not due(conn, ctx, as_of) or age is None:
        return None
    span = parse_duration(settings.recalibration_span)
    fit_end = as_of - age
    fit_end -= fit_end % ctx.bucket
    labelled = labelled_in(conn, ctx, fit_end - span, fit_end)
    share = sample_share(labelled, settings.recalibration_max_pairs)
    scores, labels = mature_pairs(conn, ctx, fit_end - span, fit_end, share=share)
    if share is not None:
        log.info("%s: the span holds about %d labelled predictions: the refit reads %d of them, a uniform "
                 "sample (recalibration_max_pairs %d)", ctx.name, labelled, len(labels),
                 settings.recalibration_max_pairs)
    maps, positives = fit_rolling(ctx, scores, labels)
    new_id = conn.execute(insert(CALIBRATIONS).values(
        model_id=ctx.model_id, kind="rolling" if maps is not None else "skipped", fit_start=fit_end - span,
        fit_end=fit_end, as_of=as_of, n_labels=len(labels), n_positive=positives, maps=maps or {},
    )).inserted_primary_key
    clear_scores(conn, ctx, fit_end - 2 * span, span)
    return int(new_id[0]) if new_id and maps is not None else None


def clear_scores(conn: Connection, ctx: ModelContext, before: int, span: int) -> None:
    """Clear the kept scores of predictions older than `before` (no future fit reads them).
    Only the span below `before` is looked at, so the cost stays that of a span whatever the
    history: a refit runs every `recalibration_every`, shorter than a span, and scores
    further back were cleared by an earlier one."""
    table = PREDICTIONS
    conn.execute(update(table).where(
        table.c.model_id == ctx.model_id, table.c.scores.is_not(None),
        table.c.bucket_start >= before - span - ctx.bucket, table.c.bucket_start < before,
        table.c.ts >= before - span, table.c.ts < before).values(scores=None))


def due(conn: Connection, ctx: ModelContext, as_of: int) -> bool:
    """Whether a refit is due at `as_of` (switched on, and none tried within `recalibration_every`)."""
    settings = ctx.config.estimation
    if not (settings.enabled and settings.recalibrate) or settings.calibration == "none" or len(ctx.classes) < 2:
        return False
    latest = _latest_as_of(conn, ctx)
    return latest is None or as_of - latest >= parse_duration(settings.recalibration_every)


def on_tick(conn: Connection, ctx: ModelContext, as_of: int,
            curve: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
    """The tick hook (`monitor.ingest.hooks.tick_hooks`, which passes a function giving the
    label arrival curve at `as_of`, called only when a refit is due): recalibrate when due."""
    if due(conn, ctx, as_of):
        recalibrate(conn, ctx, as_of, maturity_age(ctx, *curve()))

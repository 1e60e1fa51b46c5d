"""Ingest hooks of the estimation domain (see monitor/ingest/hooks.py).

- `on_reference`: fit the per-class calibrators on the labelled reference and store them
  (a restart reads them back; nothing is refitted until the reference changes).
- `on_predictions`: for a batch of new predictions that carry every `score_<class>`, add
  the expected one-vs-rest confusion counts per (bucket, slice, class) to `expected_counts`:

      exp_tp = sum of p_c over rows predicted c      exp_fp = sum of (1 - p_c) over those
      exp_fn = sum of p_c over rows not predicted c  exp_tn = sum of (1 - p_c) over those
      var_tp, var_fn = the same sums of p_c (1 - p_c)

  where p_c is the calibrated, renormalised score. With calibrated scores each row's truth is
  a Bernoulli(p_c) draw, so the realized tp and fn of any set of rows are Poisson-binomial
  with these means and variances; sums over buckets and slices stay exact, so windows and
  subgroups are SUMs as for the realized counts (docs/design.md principle 1).

Both run inside the ingest transaction; neither commits.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, delete, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation import recalibrate as recalibration
from monitor.estimation.calibration import ClassCalibration, calibrate_matrix, fit_class
from monitor.estimation.models import EstimationCalibrator, ExpectedCount
from monitor.store.bulk import add_counts
from monitor.store.slices import group_codes

VALUE_COLUMNS = ["n_scored", "n_predicted", "exp_tp", "exp_fn", "exp_fp", "exp_tn", "var_tp", "var_fn"]
KEY_COLUMNS = ["model_id", "bucket_start", "slice_id", "class_name"]
CALIBRATORS = cast(Table, EstimationCalibrator.__table__)
EXPECTED_COUNTS = cast(Table, ExpectedCount.__table__)


def _enabled(ctx: ModelContext) -> bool:
    return bool(ctx.config.estimation.enabled) and len(ctx.classes) >= 2


def _has_scores(ctx: ModelContext, frame: pd.DataFrame) -> bool:
    return all(column in frame.columns for column in ctx.score_columns)


def _score_matrix(ctx: ModelContext, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(scores as (rows, classes) float array, mask of rows whose every score is present)."""
    scores = frame[ctx.score_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    complete = np.isfinite(scores).all(axis=1)
    return scores, complete


def on_reference(conn: Connection, ctx: ModelContext, reference: pd.DataFrame) -> None:
    """Fit and store per-class calibrators from the labelled reference.

    Earlier calibrators of the model are deleted first. Nothing is stored when estimation is
    disabled, the reference has no score columns or no labelled rows with complete scores
    (then `on_predictions` uses the raw scores). Expected counts already stored are kept:
    they were computed with the calibrators of their time, and the raw scores behind them
    are not kept, so a new reference applies to predictions ingested after it.
    """
    conn.execute(delete(EstimationCalibrator).where(EstimationCalibrator.model_id == ctx.model_id))
    if not _enabled(ctx) or not _has_scores(ctx, reference) or "label" not in reference.columns:
        return
    scores, complete = _score_matrix(ctx, reference)
    labels = reference["label"].astype("string").to_numpy()
    usable = complete & pd.notna(labels)
    if not usable.any():
        return
    scores, labels = scores[usable], labels[usable]
    settings = ctx.config.estimation
    rows, fitted_classes = [], []
    for column, class_name in enumerate(ctx.classes):
        fitted = fit_class(
            class_name,
            scores[:, column],
            (labels == class_name).astype(np.int8),
            mode=settings.calibration,
            max_ece=settings.max_ece,
        )
        fitted_classes.append(fitted)
        rows.append(
            {
                "model_id": ctx.model_id,
                "class_name": class_name,
                "method": "isotonic" if fitted.applied else "none",
                "applied": fitted.applied,
                "thresholds": {"x": fitted.x, "y": fitted.y} if fitted.applied else None,
                "ece_before": fitted.ece_before,
                "ece_after": fitted.ece_after,
                "badly_calibrated": fitted.badly_calibrated,
                "n_reference": fitted.n_reference,
                "n_positive": fitted.n_positive,
            }
        )
    conn.execute(CALIBRATORS.insert(), rows)
    recalibration.record_reference(conn, ctx, fitted_classes, reference[usable], int(usable.sum()))


def load_calibrations(conn: Connection, ctx: ModelContext) -> list[ClassCalibration | None]:
    """The stored calibrators in the order of `ctx.classes` (None for a class without one)."""
    table = CALIBRATORS
    found = conn.execute(select(table).where(table.c.model_id == ctx.model_id)).mappings().all()
    by_class: dict[str, ClassCalibration] = {}
    for record in found:  # one row per class
        thresholds = record["thresholds"] or {}
        by_class[record["class_name"]] = ClassCalibration(
            class_name=record["class_name"],
            applied=bool(record["applied"]),
            x=thresholds.get("x"),
            y=thresholds.get("y"),
            ece_before=record["ece_before"],
            ece_after=record["ece_after"],
            badly_calibrated=bool(record["badly_calibrated"]),
            n_reference=int(record["n_reference"]),
            n_positive=int(record["n_positive"]),
        )
    return [by_class.get(class_name) for class_name in ctx.classes]


def expected_counts(
    ctx: ModelContext, rows: pd.DataFrame, calibrations: list[ClassCalibration | None]
) -> pd.DataFrame:
    """Expected counts of a batch per (bucket_start, slice_id, class_name); pure, vectorised.

    Rows missing any score are skipped (they cannot be estimated; `n_scored` says how many
    were). Returns the `expected_counts` key and value columns, without `model_id`.
    """
    columns = ["bucket_start", "slice_id", "class_name", *VALUE_COLUMNS]
    scores, complete = _score_matrix(ctx, rows)
    if not complete.any():
        return pd.DataFrame(columns=columns)
    probabilities = calibrate_matrix(scores[complete], calibrations)
    kept = rows.loc[complete]
    predicted_codes, predicted_values = pd.factorize(kept["predicted"].astype(str))
    code_of = {value: code for code, value in enumerate(predicted_values)}
    # one group code per (bucket_start, slice_id), then a weighted count per value column: a
    # groupby-sum of eight columns per class cost more than the rest of the estimation
    groups, keys = group_codes(kept, ["bucket_start", "slice_id"])
    size = len(keys)
    n_scored = np.bincount(groups, minlength=size)
    frames = []
    for column, class_name in enumerate(ctx.classes):  # a loop over classes, not rows
        p = probabilities[:, column]
        q = 1.0 - p
        variance = p * q
        mine = predicted_codes == code_of.get(class_name, -1)
        others = ~mine

        def total(values: np.ndarray, where: np.ndarray) -> np.ndarray:
            return np.bincount(groups, weights=np.where(where, values, 0.0), minlength=size)

        frames.append(keys.assign(
            class_name=class_name, n_scored=n_scored, n_predicted=np.bincount(groups[mine], minlength=size),
            exp_tp=total(p, mine), exp_fn=total(p, others), exp_fp=total(q, mine),
            exp_tn=total(q, others), var_tp=total(variance, mine), var_fn=total(variance, others),
        ))
    return pd.concat(frames, ignore_index=True)[columns]


def kept_scores(ctx: ModelContext, rows: pd.DataFrame) -> list[bytes | None] | None:
    """`predictions.scores` of predictions about to be stored (validated rows): their packed
    scores, None for a row without every score; None for all when the rolling recalibration
    has none to keep (off, estimation disabled, or a score column missing)."""
    if (rows.empty or not ctx.config.estimation.recalibrate or not _enabled(ctx)
            or not _has_scores(ctx, rows)):
        return None
    scores, complete = _score_matrix(ctx, rows)
    return recalibration.packed_scores(scores, complete)


def on_predictions(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> None:
    """Add the batch's expected counts to `expected_counts` (additive upsert).

    Does nothing unless estimation is enabled and every `score_<class>` column is present.
    The calibrators are read once per batch: no state outlives the call.
    """
    if rows.empty or not _enabled(ctx) or not _has_scores(ctx, rows):
        return
    scores, complete = _score_matrix(ctx, rows)
    if not complete.any():
        return
    rows = rows.loc[complete]
    reference, rolling = recalibration.usable(conn, ctx)
    chosen = recalibration.choose(rows["ts"].to_numpy(), rolling)
    parts = []
    for index in np.unique(chosen):  # one group per calibration in use (usually one)
        mine = chosen == index
        calibrations = rolling[index].classes if index >= 0 else load_calibrations(conn, ctx)
        parts.append(expected_counts(ctx, rows.loc[mine], calibrations))
    used = np.array([rolling[i].id if i >= 0 else (reference.id if reference else recalibration.NO_CALIBRATION)
                     for i in range(-1, len(rolling))], dtype=np.int64)[chosen + 1]
    recalibration.record_usage(conn, ctx, rows["bucket_start"].to_numpy(), used)
    counts = pd.concat(parts, ignore_index=True)
    if len(parts) > 1:
        counts = counts.groupby(["bucket_start", "slice_id", "class_name"], as_index=False, sort=False).sum()
    if counts.empty:
        return
    counts.insert(0, "model_id", ctx.model_id)
    add_counts(conn, EXPECTED_COUNTS, counts, key_columns=KEY_COLUMNS, value_columns=VALUE_COLUMNS)

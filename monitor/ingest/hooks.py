"""Aggregators that other domains plug into ingestion.

Each hook runs inside the ingest transaction of the batch it receives, so its counts are
committed (or rolled back) together with the core counts: a killed ingest never leaves one
aggregate ahead of another.

- `on_reference(conn, ctx, reference)`: once per reference (re)load, before any prediction.
  `reference` has canonical columns: prediction_id, ts (epoch s or NaN), predicted, label,
  slice_id, score_<class> (floats, absent when the log has no scores), the segment columns
  (strings, "(missing)" for missing) and the feature columns under their own names. A hook
  must first delete what it stored for an earlier reference of the same model.
- `on_predictions(conn, ctx, rows)`: every batch of newly accepted, visible predictions: one
  POST body, or the accepted rows of a batch of files (up to ~200k rows, many small files at
  once; `monitor.ingest.ledger.ingest_files`). Columns as above plus bucket_start, without
  label. A hook must be additive: the same rows in other batches give the same sums.
- `on_tick(conn, ctx, as_of)`: once per model and tick, after the labels are applied (the
  estimation's rolling recalibration on matured labels).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from sqlalchemy.engine import Connection

from monitor.context import ModelContext

Hook = Callable[[Connection, ModelContext, pd.DataFrame], None]
TickHook = Callable[[Connection, ModelContext, int], None]


def reference_hooks() -> list[Hook]:
    from monitor.drift import aggregate as drift
    from monitor.estimation import aggregate as estimation

    return [drift.on_reference, estimation.on_reference]


def prediction_hooks() -> list[Hook]:
    from monitor.drift import aggregate as drift
    from monitor.estimation import aggregate as estimation

    return [drift.on_predictions, estimation.on_predictions]


def tick_hooks() -> list[TickHook]:
    from monitor.estimation import recalibrate as estimation
    from monitor.metrics.maturity import coverage_curve

    def recalibrate(conn: Connection, ctx: ModelContext, as_of: int) -> None:
        if ctx.config.estimation.enabled and ctx.config.estimation.recalibrate:
            estimation.on_tick(conn, ctx, as_of, lambda: coverage_curve(conn, ctx, as_of))

    return [recalibrate]

"""Data access for the Data page: the file ledger, rejected rows, label arrival, and the push
paths when they are used (stream consumers of `monitor consume`, the HTTP write inbox).

Read like the other pages' data (`dashboards.data.core`): through the read layer inside one
read-only transaction, cached per data version, empty results with a message and a hint.
"""

from __future__ import annotations

import pandas as pd

from dashboards.data import common
from dashboards.data.core import (
    NO_DATA_HINT,
    NO_LABELS_HINT,
    Result,
    cached,
    context,
    model_names,
    no_data,
)
from dashboards.filters import Filters
from monitor.read import intake, ledger, quality
from monitor.timeutil import now_epoch


@cached
def files(filters: Filters) -> Result:
    """The file ledger of the chosen model (all models when none is chosen)."""
    names = [filters.model] if filters.model else model_names()
    with common.read() as conn:
        frame = ledger.files(conn, names)
    result = Result(_relative_paths(frame, "path"))
    if frame.empty:
        result.message, result.hint = "No files ingested yet", NO_DATA_HINT
    return result


@cached
def rejects(filters: Filters, *, limit: int = 200) -> Result:
    """Rejected rows and failed files with their reasons (newest first, at most `limit`)."""
    names = [filters.model] if filters.model else model_names()
    with common.read() as conn:
        frame = ledger.rejects(conn, names, limit=limit)
    result = Result(_relative_paths(frame, "source"))
    if frame.empty:
        result.message, result.hint = "No rejected rows", "Every row read so far was accepted."
    return result


def _relative_paths(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """File paths relative to the config's folder when they are inside it (shorter, and no
    need to show where the deployment lives)."""
    if frame.empty or column not in frame.columns:
        return frame
    base = str(common.config().base_dir.resolve()).rstrip("/") + "/"
    frame = frame.copy()
    frame[column] = [p[len(base):] if isinstance(p, str) and p.startswith(base) else p
                     for p in frame[column]]
    return frame


@cached
def label_arrival(filters: Filters) -> Result:
    """Label coverage by age of the predictions (how fast the truth arrives): columns
    `delay_hours` and `coverage` (`figures.core.label_arrival`)."""
    config = common.config()
    with common.read() as conn:
        ctx = context(conn, config, filters.model)
        if ctx is None:
            return no_data(filters.model)
        frame = quality.label_arrival(conn, ctx, now_epoch())
    result = Result(frame)
    if frame.empty:
        result.message, result.hint = "No labels yet", NO_LABELS_HINT
    return result


INBOX_COLUMNS = ["model", "queued_predictions", "queued_labels", "oldest_queued_at", "aggregated_through"]


@cached
def stream_consumers(filters: Filters) -> Result:
    """The stream consumers (`monitor consume`) of the chosen model, all models for none:
    pending, lag, last batch; empty (and shown as nothing) when no stream is consumed."""
    names = [filters.model] if filters.model else model_names()
    with common.read() as conn:
        frame = intake.stream_consumers(conn, names)
    if not frame.empty:
        frame = frame.assign(**{column: pd.to_datetime(frame[column], unit="s", utc=True)
                                for column in ("last_batch_at", "updated_at")})
    return Result(frame)


@cached
def inbox(filters: Filters) -> Result:
    """Rows posted over HTTP still waiting for aggregation, per model (INBOX_COLUMNS): only
    models with queued rows (an empty result when the inbox is unused or drained)."""
    config = common.config()
    names = [filters.model] if filters.model else model_names()
    rows = []
    with common.read() as conn:
        for name in names:
            ctx = context(conn, config, name)
            if ctx is None:
                continue
            found = intake.inbox_status(conn, ctx.model_id)
            if found.queued_predictions + found.queued_labels == 0:
                continue
            oldest = None if found.oldest_received_at is None else \
                pd.Timestamp(found.oldest_received_at // 1_000_000, unit="s", tz="UTC")
            rows.append((name, found.queued_predictions, found.queued_labels, oldest,
                         pd.Timestamp(found.aggregated_through, unit="s", tz="UTC")))
    return Result(pd.DataFrame(rows, columns=INBOX_COLUMNS))

"""Label maturity: how complete a window's labels usually are at its age.

From `label_arrival_counts` (first-label delays per bucket) and `prediction_counts`, over
buckets old enough to be complete, we get the share of predictions labelled within a delay
d. A window ending at `end`, seen at `as_of`, has predictions aged between
`as_of - end` and `as_of - end + window`; its expected coverage is the mean of the curve over
that range (uniform traffic). A window whose actual coverage is well below this is
provisional: its labels are still arriving (docs/design.md principle 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.store.models import LabelArrivalCount, PredictionCount, PredictionCountDaily
from monitor.timeutil import ceil_to, floor_to

MATURE_AGE = 60 * 86400  # buckets older than this are taken as complete
CURVE_SPAN = 90 * 86400  # how much mature history the arrival curve is drawn from
DAY = 86400


# Inside `reuse_curves()`: curves already drawn, by (connection, model, as_of). An alert
# evaluation draws the same one for each rule's expected coverage and again for its settled test.
_reused: ContextVar[dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] | None] = ContextVar(
    "reused_curves", default=None)


@contextmanager
def reuse_curves() -> Iterator[None]:
    """Within this block, `coverage_curve` draws each (connection, model, as_of) curve once:
    for readers of one transaction that write no label counts meanwhile (alert evaluation)."""
    token = _reused.set({})
    try:
        yield
    finally:
        _reused.reset(token)


def coverage_curve(conn: Connection, ctx: ModelContext, as_of: int) -> tuple[np.ndarray, np.ndarray]:
    """(delay bins in hours, share of predictions labelled within that delay)."""
    reused = _reused.get()
    if reused is None:
        return _coverage_curve(conn, ctx, as_of)
    key = (id(conn), ctx.model_id, int(as_of))
    if key not in reused:
        reused[key] = _coverage_curve(conn, ctx, as_of)
    return reused[key]


def _coverage_curve(conn: Connection, ctx: ModelContext, as_of: int) -> tuple[np.ndarray, np.ndarray]:
    arrivals = LabelArrivalCount.__table__
    predictions = PredictionCount.__table__
    # Use the oldest buckets available, up to MATURE_AGE before as_of; with little history,
    # take everything older than the median label delay seen so far (a best effort).
    horizon = as_of - MATURE_AGE
    first = conn.execute(select(func.min(predictions.c.bucket_start)).where(predictions.c.model_id == ctx.model_id)).scalar()
    if first is None:
        return np.array([0]), np.array([0.0])
    cutoff = horizon if first < horizon else first + (as_of - first) // 2
    # the curve of the last CURVE_SPAN of mature history: recent enough to reflect how labels
    # arrive now, and a bounded read however long the history grows
    latest = conn.execute(select(func.max(predictions.c.bucket_start)).where(
        predictions.c.model_id == ctx.model_id, predictions.c.bucket_start < cutoff)).scalar()
    since = (latest if latest is not None else cutoff) - CURVE_SPAN
    total = _predictions_between(conn, ctx.model_id, since, cutoff)
    rows = conn.execute(
        select(arrivals.c.delay_bin, func.sum(arrivals.c.n))
        .where(arrivals.c.model_id == ctx.model_id, arrivals.c.bucket_start < cutoff,
               arrivals.c.bucket_start >= since)
        .group_by(arrivals.c.delay_bin).order_by(arrivals.c.delay_bin)
    ).all()
    if not rows or total == 0:
        return np.array([0]), np.array([0.0])
    bins = np.array([r[0] for r in rows], dtype=np.float64)
    shares = np.cumsum([float(r[1]) for r in rows]) / float(total)
    return bins, np.minimum(shares, 1.0)


def _predictions_between(conn: Connection, model_id: int, since: int, cutoff: int) -> int:
    """Predictions in buckets since <= bucket_start < cutoff: the whole UTC days from the
    daily roll-up (`monitor.store.rollup`, kept with the hourly table in every write), the
    partial days at either edge from the hourly table. The same sum as over the hourly table
    alone, from ~1/24 of its rows (90 days x slices x classes: 25 ms -> 2 ms on SQLite)."""
    hourly, daily = cast(Table, PredictionCount.__table__), cast(Table, PredictionCountDaily.__table__)

    def part(table: Table, low: int, high: int):  # type: ignore[no-untyped-def]
        return select(func.sum(table.c.n)).where(
            table.c.model_id == model_id, table.c.bucket_start >= low, table.c.bucket_start < high).scalar_subquery()

    first_day, last_day = ceil_to(since, DAY), floor_to(cutoff, DAY)
    if first_day < last_day:
        parts = [part(hourly, since, first_day), part(daily, first_day, last_day), part(hourly, last_day, cutoff)]
    else:
        parts = [part(hourly, since, cutoff)]
    return sum((value for value in conn.execute(select(*parts)).one() if value is not None), 0)


def expected_coverage(conn: Connection, ctx: ModelContext, ends: np.ndarray, window: int, as_of: int) -> np.ndarray:
    """Usual label coverage of windows ending at `ends` when seen at `as_of` (0..1)."""
    ends = np.asarray(ends, dtype=np.float64)
    if len(ends) == 0:
        return np.array([])
    bins, shares = coverage_curve(conn, ctx, as_of)
    if shares[-1] == 0:
        return np.zeros(len(ends))

    def curve(age_hours: np.ndarray) -> np.ndarray:
        # share labelled within `age` hours: step function over the power-of-two bins
        index = np.searchsorted(bins, age_hours, side="right") - 1
        return np.where(index >= 0, shares[np.clip(index, 0, len(shares) - 1)], 0.0)

    samples = np.linspace(0.0, 1.0, 9)
    youngest = (as_of - ends) / 3600.0
    ages = youngest[:, None] + samples[None, :] * (window / 3600.0)
    return np.where(youngest[:] < 0, 0.0, curve(np.maximum(ages, 0)).mean(axis=1))


def coverage_by_age(conn: Connection, ctx: ModelContext, as_of: int | None = None) -> pd.DataFrame:
    """The label arrival curve for the Data page: share labelled within `delay_hours`."""
    from monitor.timeutil import now_epoch

    bins, shares = coverage_curve(conn, ctx, as_of if as_of is not None else now_epoch())
    return pd.DataFrame({"delay_hours": bins, "coverage": shares})

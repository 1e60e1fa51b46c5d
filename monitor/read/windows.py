"""Which window ends a read covers: the query's own, or a default from the data range.

A query (CLI options, API parameters) names window, step and optionally from/to: `query_spec`.
Without dates the dashboard shows the last `span_days` of data (`default_spec`), a card or
chart only the newest end(s) of that (`latest_spec`); `/metrics` shows the latest complete
window (`latest_complete_end`). A window that ends after the clock is partial (its
predictions are still arriving): default views end at the newest complete window instead. All bounded by the model's `[limits] max_window_ends`.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from monitor.config import ModelConfig
from monitor.context import ModelContext
from monitor.store.models import PredictionCount
from monitor.store.queries import newest_bucket
from monitor.store.windows import WindowSpec, data_range, max_window_ends
from monitor.timeutil import ceil_to, floor_to, now_epoch

DAY = 86400
PREDICTIONS = cast(Table, PredictionCount.__table__)


def query_spec(model: ModelConfig, window: int, step: int, start: int | None = None,
               end: int | None = None) -> WindowSpec:
    """The WindowSpec a query asks for (ValueError, WindowLimitError when it may not)."""
    return WindowSpec(window, step, start, end, max_ends=max_window_ends(model))


def data_span(conn: Connection, ctx: ModelContext) -> tuple[int, int] | None:
    """(first, last) bucket_start with predictions of the model, None before any."""
    return data_range(conn, PREDICTIONS, ctx.model_id)


def default_spec(conn: Connection, ctx: ModelContext, *, window: int, step: int, span_days: int,
                 start: int | None = None, end: int | None = None, now: int | None = None) -> WindowSpec | None:
    """The chosen dates' WindowSpec, a missing end being the newest complete window end
    (`newest_end`) and a missing start `span_days` before the end (not before the first
    data). A chosen end is clamped to that too: a window ending after the clock (`now`,
    default the current time) is partial and never the newest one shown or judged.
    None when the model has no predictions."""
    found = data_span(conn, ctx)
    if found is None:
        return None
    last_end = newest_end(found, ctx.bucket, step, now)
    end = min(end, last_end) if end is not None else last_end
    if start is None:
        start = max(end - span_days * DAY, ceil_to(found[0] + 1, step))
    return WindowSpec(window, step, start, end, max_ends=max_window_ends(ctx.config))


def newest_end(found: tuple[int, int], bucket: int, step: int, now: int | None = None) -> int:
    """The newest complete window end of data spanning `found` (first, last bucket): a
    `step` boundary no later than the clock nor the first boundary after the newest data.
    When even the first data's window is not complete yet (everything arrived since the
    last boundary), that partial end: a view of it is provisional, never empty."""
    clock = now if now is not None else now_epoch()
    after_data = ceil_to(found[1] + bucket, step)
    complete = min(floor_to(clock, step), after_data)
    return complete if complete >= ceil_to(found[0] + 1, step) else after_data


def latest_spec(spec: WindowSpec, *, steps: int = 0) -> WindowSpec:
    """Only the newest window end of `spec` (and `steps` ends before it, within its start)."""
    if spec.end is None:
        return spec
    end = spec.end - spec.end % spec.step
    return WindowSpec(spec.window, spec.step, max(end - steps * spec.step, spec.start or end), end,
                      max_ends=spec.max_ends)


def latest_complete_end(conn: Connection, ctx: ModelContext, now: int, step: int) -> int | None:
    """The end of the latest complete window with data: a `step` boundary no later than
    `now` and no later than the first boundary after the newest data. None without data."""
    newest = newest_bucket(conn, ctx.model_id)
    if newest is None:
        return None
    return min(floor_to(now, step), ceil_to(newest + ctx.bucket, step))

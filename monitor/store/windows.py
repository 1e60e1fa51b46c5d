"""Rolling windows as sums of stored bucket counts (docs/design.md principle 1).

A window ending at `end` covers buckets with `end - window <= bucket_start < end`; ends are
multiples of `step` (UTC boundaries). The database sums buckets into periods of
gcd(window, step) per series in one GROUP BY; numpy turns periods into windows with a
cumulative sum, so the cost grows with the number of periods x series, not with rows.
When periods are whole days the GROUP BY reads the daily roll-ups (`monitor.store.rollup`).

Every domain (metrics, drift, fairness, estimation) reads its count table through
`windowed_counts`; the overall series has segment = segment_value = "*", an intersection of
two attributes has segment "a&b" and segment_value "x&y" (`monitor.store.slices`, whose
`series_sums` is the one query that joins segment values). It is the one window
implementation: drift's histograms (series x features x ~50 bins) are its largest input, hence
the tuple rows and per-column group codes of `monitor.store.slices`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Table, and_, func, select
from sqlalchemy.engine import Connection

from monitor.store.rollup import DAY, daily_table
from monitor.store.slices import OVERALL as OVERALL  # re-exported for the readers
from monitor.store.slices import SEPARATOR as SEPARATOR
from monitor.store.slices import group_codes, series_sums
from monitor.store.slices import segment_label as segment_label
from monitor.timeutil import ceil_to, floor_to, now_epoch

# What one read may ask for, so that no request (API, CLI, dashboard) can exhaust memory or
# overflow: a `step` of 1s over a month is 2.6 million window ends, a window of 1e20 days
# overflows int64. Front ends pass `[limits] max_window_ends` of the config (see
# `max_window_ends`); the other two bound the dense arrays and are plain constants.
MAX_SPAN_DAYS = 3650  # longest window and step
MAX_SPAN = MAX_SPAN_DAYS * 86400
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z: bound of `start`/`end` (datetime's range)
MAX_WINDOW_ENDS = 20_000  # window ends of one read (55 years of daily ends)
MAX_PERIODS = 2_000_000  # periods summed into windows (the rows of the dense array)
PLAUSIBLE_AHEAD = 366 * 86400  # default reads ignore buckets further ahead of the clock
MAX_CELLS = 50_000_000  # periods x series of one dense array (400 MB of float64)


class WindowLimitError(ValueError):
    """A read asks for more than the limits allow; the message says what to change."""


def max_window_ends(config: object | None) -> int:
    """`[limits] max_window_ends` of a config (a MonitorConfig or ModelConfig), else the
    default; read with getattr so configs without a `[limits]` table work too."""
    limits = getattr(config, "limits", None)
    value = getattr(limits, "max_window_ends", None)
    return int(value) if value else MAX_WINDOW_ENDS


@dataclass(frozen=True)
class WindowSpec:
    """Window length and step in seconds; `start`/`end` bound the window ends (inclusive).

    Window and step must be positive and at most MAX_SPAN_DAYS, start and end within years
    1..9999 (ValueError, WindowLimitError for too long). `max_ends`, `max_periods` and
    `max_cells` bound what reading the spec may allocate (WindowLimitError beyond)."""

    window: int
    step: int
    start: int | None = None
    end: int | None = None
    max_ends: int = MAX_WINDOW_ENDS
    max_periods: int = MAX_PERIODS
    max_cells: int = MAX_CELLS

    def __post_init__(self) -> None:
        for name in ("window", "step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be a whole number of seconds, got {value!r}")
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value} seconds")
            if value > MAX_SPAN:
                raise WindowLimitError(f"{name} is longer than {MAX_SPAN_DAYS} days: choose a shorter {name}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not -MAX_TIME <= value <= MAX_TIME:
                raise WindowLimitError(f"{name} {value} is outside the years 1 to 9999")

    def ends(self, data_min: int, data_max: int) -> np.ndarray:
        """Window ends to report: from the first end that covers data to the first end
        after the last data, clipped to [start, end]. Raises WindowLimitError when there
        would be more than `max_ends` (counted before any array is made)."""
        first = ceil_to(data_min + 1, self.step)
        last = ceil_to(data_max + 1, self.step)
        if self.start is not None:
            first = max(first, ceil_to(self.start, self.step))
        if self.end is not None:
            last = min(last, floor_to(self.end, self.step))
        if last < first:
            return np.array([], dtype=np.int64)
        check_ends((last - first) // self.step + 1, self.max_ends)
        return np.arange(first, last + 1, self.step, dtype=np.int64)


def check_ends(count: int, limit: int = MAX_WINDOW_ENDS) -> None:
    if count > limit:
        raise WindowLimitError(
            f"{count} window ends is more than the limit of {limit}: choose a longer step "
            "or a shorter from/to range (the limit is [limits] max_window_ends)"
        )


def parse_segment_option(option: str | None, segment_sets: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """`--segment` -> attribute tuples. None: overall + every configured set; '*': overall;
    'a,b': those attributes (an intersection as 'a&b'). Unknown names raise ValueError."""
    if option is None:
        return [(), *segment_sets]
    known = {segment_label(s): s for s in segment_sets}
    result: list[tuple[str, ...]] = []
    for part in (p.strip() for p in option.split(",") if p.strip()):
        if part == OVERALL:
            result.append(())
        elif part in known:
            result.append(known[part])
        else:
            raise ValueError(f"unknown segment {part!r} (configured: {', '.join(known) or 'none'})")
    return result


def data_range(conn: Connection, table: Table, model_id: int) -> tuple[int, int] | None:
    """(min, max) bucket_start stored for a model in `table`, or None when empty.

    Only buckets from 1970 to a year ahead of the clock count: ingestion rejects rows outside
    the plausible-time window (`[limits]`), but a database filled before that check may hold a
    row of the year 55994, and the default read must not span the centuries to it."""
    # two scalar subqueries, not min() and max() in one select: SQLite answers a lone min or
    # max from the primary-key index, but scans every row of the model for both together
    bucket = table.c.bucket_start
    where = and_(table.c.model_id == model_id, bucket >= 0, bucket <= now_epoch() + PLAUSIBLE_AHEAD)
    row = conn.execute(
        select(select(func.min(table.c.bucket_start)).where(where).scalar_subquery(),
               select(func.max(table.c.bucket_start)).where(where).scalar_subquery())
    ).one()
    if row[0] is None:
        return None
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class PeriodGrid:
    """The periods window sums are built from: `ends` of the windows, the period length
    (a divisor of the window, the step and every end, so periods tile every window exactly),
    the bucket range [lower, upper) to read, the first period and how many there are."""

    ends: np.ndarray
    period: int
    lower: int
    upper: int
    first: int
    n_periods: int


def period_grid(conn: Connection, table: Table, *, model_id: int, spec: WindowSpec, bucket: int,
                ends: np.ndarray | None = None) -> PeriodGrid | None:
    """The grid for `spec` over `table`'s data (or the given `ends`); None when no window."""
    if ends is None:
        found = data_range(conn, table, model_id)
        if found is None:
            return None
        ends = spec.ends(found[0], found[1] + bucket - 1)
    ends = np.asarray(ends, dtype=np.int64)
    if len(ends) == 0:
        return None
    check_ends(len(ends), spec.max_ends)
    period = math.gcd(int(spec.window), int(spec.step), int(np.gcd.reduce(ends)))
    lower, upper = int(ends[0] - spec.window), int(ends[-1])
    first = floor_to(lower, period)
    n_periods = (upper - first) // period + 1
    if n_periods > spec.max_periods:
        raise WindowLimitError(
            f"{n_periods} periods of {period} s to sum is more than the limit of {spec.max_periods}: "
            "choose a window and step that are multiples of a longer period (e.g. whole hours "
            "or days) or a shorter from/to range"
        )
    return PeriodGrid(ends, period, lower, upper, first, n_periods)



def windowed_counts(
    conn: Connection,
    table: Table,
    *,
    model_id: int,
    spec: WindowSpec,
    segment_sets: Sequence[tuple[str, ...]],
    key_columns: Sequence[str] = (),
    value_columns: Sequence[str] = ("n",),
    ends: np.ndarray | None = None,
    bucket: int = 3600,
    rollup: bool = True,
    only: Mapping[str, Sequence[object]] | None = None,
    float_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Window sums of `value_columns` per (end, segment, segment_value, *key_columns).

    `table` needs columns model_id, bucket_start, slice_id, the keys and the values. Every
    (series, keys) combination seen anywhere in the range gets a row for every end, with 0
    where the window holds nothing, so callers see empty windows explicitly.
    `ends` overrides the ends derived from the data range. When the periods are whole days
    and `table` has a daily roll-up (`monitor.store.rollup`), the sums are read from it (the
    same numbers from 1/24 of the rows of an hourly table); `rollup=False` reads `table`.
    `only` restricts key columns to the given values (drift: the requested features). A value
    column comes back as int64 when all its sums are whole numbers, unless in `float_columns`.
    """
    columns = ["end", "segment", "segment_value", *key_columns, *value_columns]
    grid = period_grid(conn, table, model_id=model_id, spec=spec, bucket=bucket, ends=ends)
    if grid is None:
        return pd.DataFrame(columns=columns)
    daily = daily_table(table) if rollup and grid.period % DAY == 0 else None
    source = table if daily is None else daily
    bucket_start = source.c.bucket_start
    period = (bucket_start - bucket_start % grid.period).label("period")
    where = [bucket_start >= grid.lower, bucket_start < grid.upper,
             *(source.c[name].in_(list(values)) for name, values in (only or {}).items() if values)]
    frames = []
    for attributes in segment_sets:
        raw = series_sums(conn, source, model_id=model_id, attributes=tuple(attributes), group=[period],
                          key_columns=key_columns, value_columns=value_columns, where=where)
        if len(raw):
            frames.append(_roll(raw, grid, spec, key_columns, value_columns, float_columns))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def check_cells(n_periods: int, n_series: int, n_ends: int, limit: int = MAX_CELLS) -> None:
    """Refuse a dense periods x series array (or an ends x series result) above `limit`."""
    cells = max(n_periods, n_ends) * n_series
    if cells > limit:
        raise WindowLimitError(
            f"{n_series} series x {max(n_periods, n_ends)} periods is more than the limit of {limit} "
            "cells: ask for fewer segments or classes, a shorter from/to range or a longer step"
        )


def _roll(raw: pd.DataFrame, grid: PeriodGrid, spec: WindowSpec, key_columns: Sequence[str],
          value_columns: Sequence[str], float_columns: Sequence[str]) -> pd.DataFrame:
    """Period sums of one attribute tuple -> window sums with a cumulative sum over periods,
    per (segment_value, *keys) group: rows end-major, groups in order of first appearance."""
    codes, labels = group_codes(raw, ["segment_value", *key_columns])
    ends, n_periods, n_groups = grid.ends, grid.n_periods, len(labels)
    check_cells(n_periods + 1, n_groups, len(ends), spec.max_cells)  # before the dense array is made
    period_index = (raw["period"].to_numpy(dtype=np.int64) - grid.first) // grid.period
    end_index = np.clip((ends - grid.first) // grid.period, 0, n_periods)  # first period NOT in the window
    start_index = np.clip(end_index - spec.window // grid.period, 0, n_periods)
    tiled = labels.iloc[np.tile(np.arange(n_groups), len(ends))].reset_index(drop=True)
    tiled.insert(0, "end", np.repeat(ends, n_groups))
    tiled.insert(1, "segment", str(raw["segment"].iat[0]))
    for name in value_columns:
        dense = np.zeros((n_periods + 1, n_groups), dtype=np.float64)
        np.add.at(dense, (period_index + 1, codes), raw[name].to_numpy(dtype=np.float64))
        cumulative = np.cumsum(dense, axis=0)
        sums = (cumulative[end_index] - cumulative[start_index]).reshape(-1)  # end-major, group-minor
        whole = name not in float_columns and bool(np.all(np.mod(sums, 1) == 0))
        tiled[name] = sums.astype(np.int64) if whole else sums
    return tiled

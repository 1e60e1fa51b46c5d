"""Window sums of the drift histograms per (end, segment, segment_value, feature, bin).

Same semantics and output as `monitor.store.windows.windowed_counts` (windows are sums of
buckets with `end - window <= bucket_start < end`; every (series, feature, bin) seen in the
range gets a row for every end, 0 where empty; tests/drift compare them), tuned for drift's
volume (series x features x ~50 bins): the SQL reads only the requested features, rows come
from the driver as plain tuples, and groups are coded per column instead of through a
MultiIndex (about 40% less CPU than `windowed_counts` on a 30-day, 24-slice model). The same
series query serves the reference histograms, which have no time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, and_, func, select
from sqlalchemy.engine import Connection

from monitor.store.models import SliceValue
from monitor.store.windows import (
    OVERALL,
    SEPARATOR,
    WindowSpec,
    check_cells,
    period_grid,
    segment_label,
)

KEYS = ["feature", "bin"]
VALUES = ["n", "total"]


def join_values(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series | str:
    """'x&y' labels of segment value columns, vectorised."""
    if not columns:
        return OVERALL
    joined = frame[columns[0]].astype(str)
    for column in columns[1:]:
        joined = joined + SEPARATOR + frame[column].astype(str)
    return joined


def fetch_tuples(conn: Connection, query: Any) -> list[tuple]:
    """All rows of a query as plain tuples from the driver's cursor (building a Row object
    per row costs about as much as the query itself at histogram volumes)."""
    result = conn.execute(query)
    cursor = getattr(result, "cursor", None)
    if cursor is None:  # pragma: no cover - every DBAPI result we use has one
        return [tuple(row) for row in result.fetchall()]
    rows = cursor.fetchall()
    result.close()
    return rows


def group_codes(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(dense group code per row, one row of key values per group) for key columns without
    nulls; per-column factorisations combined in mixed radix (a MultiIndex is much slower)."""
    levels = [pd.factorize(frame[column]) for column in columns]
    combined = np.zeros(len(frame), dtype=np.int64)
    for codes, uniques in levels:
        combined = combined * len(uniques) + codes
    unique, dense = np.unique(combined, return_inverse=True)
    keys = {}
    remainder = unique
    for column, (_, uniques) in zip(reversed(columns), reversed(levels), strict=True):
        keys[column] = np.asarray(uniques)[remainder % len(uniques)]
        remainder = remainder // len(uniques)
    return dense.astype(np.int64), pd.DataFrame({c: keys[c] for c in columns})


def series_sums(conn: Connection, table: Table, *, model_id: int, attributes: tuple[str, ...],
                group: Sequence, where: Sequence = ()) -> pd.DataFrame:
    """Sums of n and total per (group expressions, segment_value, feature, bin) for one
    attribute tuple; `group` are extra labelled expressions on `table` (period, chunk)."""
    columns: list[Any] = []
    source: Any = table
    for index, attribute in enumerate(attributes):
        alias = SliceValue.__table__.alias(f"sv{index}")
        source = source.join(alias, and_(alias.c.slice_id == table.c.slice_id, alias.c.attribute == attribute))
        columns.append(alias.c.value.label(f"value{index}"))
    keys = [*group, *columns, table.c.feature, table.c.bin]
    query = (select(*keys, func.sum(table.c.n).label("n"), func.sum(table.c.total).label("total"))
             .select_from(source).where(table.c.model_id == model_id, *where).group_by(*keys))
    names = [g.name for g in group]
    values = [f"value{i}" for i in range(len(attributes))]
    raw = pd.DataFrame(fetch_tuples(conn, query), columns=[*names, *values, *KEYS, *VALUES])
    raw.insert(len(names), "segment", segment_label(attributes))
    raw.insert(len(names) + 1, "segment_value", join_values(raw, values) if len(raw) or not values else [])
    return raw.drop(columns=values)


def windowed_histograms(conn: Connection, table: Table, *, model_id: int, spec: WindowSpec,
                        segment_sets: Sequence[tuple[str, ...]], bucket: int,
                        ends: np.ndarray | None = None, features: Sequence[str] | None = None) -> pd.DataFrame:
    """Window sums per (end, segment, segment_value, feature, bin): n and total (only
    `features` when given)."""
    columns = ["end", "segment", "segment_value", *KEYS, *VALUES]
    grid = period_grid(conn, table, model_id=model_id, spec=spec, bucket=bucket, ends=ends)
    if grid is None:
        return pd.DataFrame(columns=columns)
    ends, period, lower, upper = grid.ends, grid.period, grid.lower, grid.upper
    first, n_periods = grid.first, grid.n_periods
    bucket_start = table.c.bucket_start
    period_expr = (bucket_start - bucket_start % period).label("period")
    frames = []
    for attributes in segment_sets:
        raw = series_sums(conn, table, model_id=model_id, attributes=tuple(attributes), group=[period_expr],
                          where=[bucket_start >= lower, bucket_start < upper,
                                 *([table.c.feature.in_(list(features))] if features else [])])
        if len(raw):
            frames.append(_roll(raw, ends, spec.window, period, first, n_periods))
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _roll(raw: pd.DataFrame, ends: np.ndarray, window: int, period: int, first: int,
          n_periods: int) -> pd.DataFrame:
    """Period sums -> window sums with a cumulative sum over periods, per group."""
    codes, labels = group_codes(raw, ["segment", "segment_value", *KEYS])
    check_cells(n_periods + 1, len(labels), len(ends))  # before the dense array is made
    period_index = (raw["period"].to_numpy(dtype=np.int64) - first) // period
    end_index = np.clip((ends - first) // period, 0, n_periods)
    start_index = np.clip(end_index - window // period, 0, n_periods)
    out = {}
    for name in VALUES:
        dense = np.zeros((n_periods + 1, len(labels)))
        np.add.at(dense, (period_index + 1, codes), raw[name].to_numpy(dtype=np.float64))
        cumulative = np.cumsum(dense, axis=0)
        out[name] = (cumulative[end_index] - cumulative[start_index]).reshape(-1)
    tiled = labels.iloc[np.tile(np.arange(len(labels)), len(ends))].reset_index(drop=True)
    tiled.insert(0, "end", np.repeat(ends, len(labels)))
    tiled["n"] = np.rint(out["n"]).astype(np.int64)
    tiled["total"] = out["total"]
    return tiled

"""Series of the count tables: sums per segment value, the one slice-value join.

Count tables key their rows by `slice_id`, one combination of segment values
(`slices`/`slice_values`). A series is the overall one (`()`: segment = segment_value = "*")
or the values of an attribute tuple (`("a", "b")`: segment "a&b", segment_value "x&y"), found
by joining `slice_values` once per attribute. `series_sums` is that join for every reader:
window sums (`monitor.store.windows`, with a period expression as group), the drift reference
histograms (grouped by chunk) and the reference confusion counts (no group).

Speed notes (drift reads series x features x ~50 bins per period): rows come from the
driver's cursor as plain tuples, and `group_codes` codes each column on its own and combines
the codes in mixed radix, much cheaper than a pandas groupby over several object columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, and_, func, select
from sqlalchemy.engine import Connection

from monitor.store.models import SliceValue

OVERALL = "*"
SEPARATOR = "&"
MAX_RADIX = 2**62  # mixed-radix codes beyond this would overflow int64
SMALL_RESULT = 2_000  # rows below which a result becomes columns without pandas (see _columns)


def segment_label(attributes: Sequence[str]) -> str:
    return SEPARATOR.join(attributes) if attributes else OVERALL


def slice_pairs(segment: str, value: str) -> tuple[tuple[str, str], ...] | None:
    """The (attribute, value) pairs of a series named `segment`, `segment_value` (the inverse
    of `segment_label` and `_joined`); () for the overall series. A single attribute's value is
    whole, `&` and all (`dept=R&D`). An intersection's value is split at its separators; when a
    value holds `&` itself the split is ambiguous (`x&y&z` of two attributes) and this is None:
    callers then take the series as a whole, comparable only with itself."""
    if segment == OVERALL:
        return ()
    attributes = segment.split(SEPARATOR)
    if len(attributes) == 1:
        return ((segment, value),)
    values = value.split(SEPARATOR)
    return tuple(zip(attributes, values, strict=True)) if len(values) == len(attributes) else None


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


def series_sums(conn: Connection, table: Table, *, model_id: int, attributes: Sequence[str],
                group: Sequence[Any] = (), key_columns: Sequence[str] = (),
                value_columns: Sequence[str] = ("n",), where: Sequence[Any] = ()) -> pd.DataFrame:
    """Sums of `value_columns` per (group, segment_value, *key_columns) of one attribute
    tuple, as columns [*group names, segment, segment_value, *key_columns, *value_columns].

    `table` has model_id, slice_id, the keys and the values; `group` are labelled expressions
    on it (a period, a chunk) and `where` extra conditions. Sums come as the driver gives
    them (PostgreSQL: Decimal for integer sums)."""
    values: list[Any] = []
    source: Any = table
    for index, attribute in enumerate(attributes):
        alias = SliceValue.__table__.alias(f"sv{index}")
        source = source.join(alias, and_(alias.c.slice_id == table.c.slice_id, alias.c.attribute == attribute))
        values.append(alias.c.value.label(f"value{index}"))
    keys = [*group, *values, *(table.c[name] for name in key_columns)]
    query = (select(*keys, *(func.sum(table.c[name]).label(name) for name in value_columns))
             .select_from(source).where(table.c.model_id == model_id, *where).group_by(*keys))
    names = [g.name for g in group]
    value_names = [value.name for value in values]
    rows = fetch_tuples(conn, query)
    fields = _columns(rows, [*names, *value_names, *key_columns, *value_columns])
    columns = {name: fields[name] for name in names}
    columns["segment"] = segment_label(attributes)
    columns["segment_value"] = _joined([fields[name] for name in value_names])
    columns.update((name, fields[name]) for name in [*key_columns, *value_columns])
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def _columns(rows: list[tuple], names: Sequence[str]) -> dict[str, Any]:
    """Result rows as columns: pandas' 2-D constructor above SMALL_RESULT rows (twice as fast
    on drift's histograms), plain tuples below it (the constructor's fixed cost dominates)."""
    if len(rows) > SMALL_RESULT:
        frame = pd.DataFrame(rows, columns=list(names))
        return {name: frame[name] for name in names}
    return dict(zip(names, zip(*rows))) if rows else {name: () for name in names}


def _joined(values: Sequence[Any]) -> Any:
    """segment_value of each row from its attributes' value columns: OVERALL without
    attributes, the value itself for one (no copy), 'x&y' for an intersection (vectorised:
    a row-wise join costs a Python call per row)."""
    if not values:
        return OVERALL
    if len(values) == 1:
        return values[0]
    joined = pd.Series(values[0], dtype=object).astype(str)
    for column in values[1:]:
        joined = joined + SEPARATOR + pd.Series(column, dtype=object).astype(str).to_numpy()
    return joined


def group_codes(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(group code per row, one row of key values per group), groups numbered in order of
    first appearance (as `groupby(sort=False, dropna=False).ngroup()`). Each column is
    factorised on its own and the codes combined in mixed radix (a MultiIndex is much slower)."""
    columns = list(columns)
    levels = [pd.factorize(frame[column], use_na_sentinel=False) for column in columns]
    sizes = [max(len(uniques), 1) for _, uniques in levels]
    if math.prod(sizes) >= MAX_RADIX:  # pragma: no cover - far beyond any configured cardinality
        codes = frame.groupby(columns, sort=False, dropna=False).ngroup().to_numpy(dtype=np.int64)
        return codes, frame[columns].drop_duplicates().reset_index(drop=True)
    combined = np.zeros(len(frame), dtype=np.int64)
    for (codes, _), size in zip(levels, sizes, strict=True):
        combined = combined * size + codes
    dense, unique = pd.factorize(combined)  # first-appearance order of the whole tuple
    remainder = np.asarray(unique, dtype=np.int64)
    keys = {}
    for column, (_, uniques), size in zip(reversed(columns), reversed(levels), reversed(sizes), strict=True):
        keys[column] = np.asarray(uniques)[remainder % size]
        remainder = remainder // size
    return dense.astype(np.int64), pd.DataFrame({column: keys[column] for column in columns})

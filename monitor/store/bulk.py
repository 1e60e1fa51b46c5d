"""Bulk writes used on the ingest hot path: plain inserts and additive upserts of counts.

`add_counts` is the one primitive behind every aggregate: INSERT the new counts, and where the
key exists already add them (`ON CONFLICT (...) DO UPDATE SET n = n + excluded.n`), which both
SQLite (>= 3.24) and PostgreSQL support. Negative counts (label corrections) use the same path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

CHUNK = 50_000


def _records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame -> list of dicts with Python scalars and None for missing values."""
    clean = frame.astype(object).where(frame.notna(), None)
    columns = list(clean.columns)
    out = []
    for row in clean.itertuples(index=False, name=None):
        out.append({c: (v.item() if isinstance(v, np.generic) else v) for c, v in zip(columns, row)})
    return out


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Insert every row of `frame` (columns named as the table's) into `table`."""
    if frame.empty:
        return 0
    for start in range(0, len(frame), CHUNK):
        conn.execute(table.insert(), _records(frame.iloc[start : start + CHUNK]))
    return len(frame)


def add_counts(
    conn: Connection,
    table: Table,
    frame: pd.DataFrame,
    *,
    key_columns: Sequence[str],
    value_columns: Sequence[str] = ("n",),
) -> int:
    """Add `frame`'s values to `table` rows with the same key, inserting missing keys."""
    if frame.empty:
        return 0
    grouped = frame.groupby(list(key_columns), as_index=False, sort=False)[list(value_columns)].sum()
    dialect = conn.dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    for start in range(0, len(grouped), CHUNK):
        statement = module.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c[k] for k in key_columns],
            set_={v: table.c[v] + statement.excluded[v] for v in value_columns},
        )
        conn.execute(statement, _records(grouped.iloc[start : start + CHUNK]))
    return len(grouped)

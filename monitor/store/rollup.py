"""Daily roll-ups of the hourly count tables (what whole-day windows read).

A dashboard or `monitor metrics` call with 7-day windows stepping by a day sums the count
tables into one period per day (`monitor.store.windows`). Over the hourly tables that GROUP BY
touches 24 rows per slice and cell for every day shown; the roll-ups hold those day sums
already, so it touches one.

- `prediction_counts`, `confusion_counts` and `expected_counts` each have a twin
  `<name>_daily` with the same columns, where `bucket_start` is the start of the UTC day
  (`bucket_start - bucket_start % 86400`, the same expression the window query groups by).
- They are kept by `monitor.store.bulk.add_counts` and `insert_frame`, through which every
  count write goes, in the caller's transaction: a roll-up never disagrees with its hourly
  table, also after a crash mid-ingest (the whole file's transaction is rolled back).
- A domain registers its own pairs with `register_daily` where it defines them (the estimation
  package registers `expected_counts` in its models module), so this bottom layer imports no
  domain: a table object in hand means its module, and so its registration, has run.
- Reads use a roll-up only when the periods being summed are whole days
  (`windows.windowed_counts`); the result is then the same sum, read from fewer rows.
- Migration 0005 fills them from existing hourly rows; `rebuild` does the same for a model
  (for a tool that wrote count tables with plain SQL instead of those two functions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.engine import Connection

from monitor.store.base import Base
from monitor.store.models import (
    ConfusionCount,
    ConfusionCountDaily,
    PredictionCount,
    PredictionCountDaily,
)

DAY = 86_400

# hourly table name -> its daily roll-up, and -> the hourly table itself (filled by register_daily)
DAILY: dict[str, Table] = {}
HOURLY: dict[str, Table] = {}


def _table(model: type[Base]) -> Table:
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def register_daily(hourly: type[Base], daily: type[Base]) -> None:
    """Declare `daily` the roll-up of `hourly`: from then on every count write to `hourly`
    (`monitor.store.bulk`) adds to it too, whole-day windows read it and `rebuild` refills it."""
    name = _table(hourly).name
    DAILY[name] = _table(daily)
    HOURLY[name] = _table(hourly)


register_daily(PredictionCount, PredictionCountDaily)
register_daily(ConfusionCount, ConfusionCountDaily)


def daily_table(table: Table) -> Table | None:
    """The daily roll-up of `table`, or None when it has none."""
    return DAILY.get(table.name)


def day_of(buckets: np.ndarray | pd.Series) -> np.ndarray:
    """The day each bucket start belongs to, as SQL computes `b - b % 86400` (the remainder
    takes the dividend's sign in SQLite and PostgreSQL, which np.fmod matches)."""
    values = np.asarray(buckets, dtype=np.int64)
    return values - np.fmod(values, DAY)


def to_daily(frame: pd.DataFrame) -> pd.DataFrame:
    """A count frame with `bucket_start` moved to its day (add_counts sums equal keys)."""
    return frame.assign(bucket_start=day_of(frame["bucket_start"]))


def rebuild(conn: Connection, model_id: int | None = None) -> dict[str, int]:
    """Recompute every registered roll-up (of one model, or all) from its hourly table; rows
    written. `expected_counts` is registered when `monitor.estimation.models` is imported
    (`monitor.schema` imports every domain's models)."""
    written = {}
    for name, daily in DAILY.items():
        hourly = HOURLY[name]
        keys = [c.name for c in hourly.primary_key.columns]
        values = [c.name for c in hourly.columns if c.name not in keys]
        day = (hourly.c.bucket_start - hourly.c.bucket_start % DAY).label("bucket_start")
        other_keys = [hourly.c[k] for k in keys if k != "bucket_start"]
        source = select(*[day if k == "bucket_start" else hourly.c[k] for k in keys],
                        *[func.sum(hourly.c[v]).label(v) for v in values])
        clear = delete(daily)
        if model_id is not None:
            source = source.where(hourly.c.model_id == model_id)
            clear = clear.where(daily.c.model_id == model_id)
        source = source.group_by(day, *other_keys)
        conn.execute(clear)
        result = conn.execute(insert(daily).from_select([*keys, *values], source))
        written[daily.name] = int(result.rowcount or 0)
    return written

"""Time partitions of the raw tables on PostgreSQL (issue 17; docs/scaling.md).

On PostgreSQL `predictions` is RANGE-partitioned on the prediction time `ts` and `labels` on
the label time `label_ts` (both epoch seconds), one partition per UTC week starting on
Monday (`predictions_w20261130`, ...), plus a DEFAULT partition (`predictions_default`) that
takes any row no weekly partition covers, so an insert never fails for want of a partition.
SQLite keeps its plain tables: every function here is a no-op there.

- `maintain_partitions` (run by every scheduler tick, before ingesting): creates the weekly
  partitions from the current week to `AHEAD_WEEKS` ahead, and moves rows that landed in the
  DEFAULT partition into weekly partitions created for them. A partition is created as a
  plain table, filled and then ATTACHed, which takes only a SHARE UPDATE EXCLUSIVE lock on the
  parent: concurrent inserts and reads of the other partitions go on.
- `droppable`/`drop_partition`: whole weeks that retention removes (monitor/retention.py).
- Indexes are declared on the parent (the primary key, which includes the partition key,
  and the secondary ones), so PostgreSQL creates them on every partition.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("monitor.partitions")

DAY = 86_400
WEEK = 7 * DAY
MONDAY_OFFSET = 3 * DAY  # 1970-01-01 was a Thursday: weeks start 3 days before multiples of WEEK
AHEAD_WEEKS = 2
# The label join looks for a label's prediction among the rows at most this much older than
# the batch's earliest label first (the default `retention.label_horizon`), then among the
# older ones for the ids not found (`monitor.store.bulk.select_in_recent`).
LABEL_LOOKUP_WINDOW = 60 * DAY
RECENT_LOOKUP_WINDOW = 8 * DAY  # the first probe: this week's partition and the last one
# the partitioned raw tables and their partition key
PARTITION_KEYS = {"predictions": "ts", "labels": "label_ts"}
_PARTITION_NAME = re.compile(r"^(predictions|labels)_(w\d{8}|default)$")


@dataclass(frozen=True)
class Partition:
    table: str  # the partition's name
    lower: int | None  # None for the DEFAULT partition
    upper: int | None


def week_start(epoch: int) -> int:
    """The Monday 00:00 UTC at or before `epoch`."""
    return (epoch + MONDAY_OFFSET) // WEEK * WEEK - MONDAY_OFFSET


def partition_name(table: str, lower: int) -> str:
    return f"{table}_w{datetime.fromtimestamp(lower, tz=timezone.utc):%Y%m%d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def is_partition_table(name: str) -> bool:
    """True for the name of a partition of a raw table (alembic's comparison skips them: the
    models describe the parents)."""
    return bool(_PARTITION_NAME.match(name))


# raw tables whose foreign key to monitored_models migration 0012 drops on PostgreSQL (a
# trigger per row); the models still declare it, and SQLite keeps it
UNKEYED_RAW_TABLES = frozenset({"predictions", "labels", "inbox"})


def compared_with_models(obj: Any, name: str | None, type_: str) -> bool:
    """Alembic's `include_object` for comparing a database with the models: False for the
    weekly partitions and their indexes (the models describe the parents) and for the raw
    tables' foreign keys (present on SQLite, dropped on PostgreSQL)."""
    if type_ in ("table", "index") and is_partition_table(obj.table.name if type_ == "index" else str(name)):
        return False
    return not (type_ == "foreign_key_constraint" and obj.table.name in UNKEYED_RAW_TABLES)


def is_partitioned(conn: Connection, table: str) -> bool:
    """True when `table` is a partitioned table (PostgreSQL after migration 0011)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(:t)"),
                        {"t": table}).scalar()
    return kind == "p"


def partitions(conn: Connection, table: str) -> list[Partition]:
    """The partitions of `table`, weekly ones by their bounds, then the DEFAULT one."""
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"), {"t": table}).fetchall()
    out = []
    for name, bound in rows:
        if bound == "DEFAULT":
            out.append(Partition(name, None, None))
            continue
        # FOR VALUES FROM ('1733097600') TO ('1733702400')
        lower, upper = (int(part.split(")")[0].strip("'")) for part in bound.split("(")[1:3])
        out.append(Partition(name, lower, upper))
    return sorted(out, key=lambda p: (p.lower is None, p.lower or 0))


def _create_week(conn: Connection, table: str, lower: int) -> str:
    """Create the week starting at `lower` for `table`, moving the rows of that week out of
    the DEFAULT partition (they would block the attach), and attach it."""
    key = PARTITION_KEYS[table]
    name, upper, default = partition_name(table, lower), lower + WEEK, default_name(table)
    conn.exec_driver_sql(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS)')
    has_default = conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": default}).scalar()
    if has_default:
        conn.exec_driver_sql(
            f'WITH moved AS (DELETE FROM "{default}" WHERE "{key}" >= {lower} AND "{key}" < {upper} '  # noqa: S608
            f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved')
    conn.exec_driver_sql(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES FROM ({lower}) TO ({upper})')
    return name


def ensure_weeks(conn: Connection, table: str, weeks: set[int]) -> list[str]:
    """Create the weekly partitions of `table` starting at the given Mondays that do not
    exist yet (in the caller's transaction). Returns the names created."""
    existing = {p.lower for p in partitions(conn, table) if p.lower is not None}
    return [_create_week(conn, table, lower) for lower in sorted(weeks - existing)]


def default_weeks(conn: Connection, table: str) -> set[int]:
    """The weeks of the rows held by the DEFAULT partition (normally none)."""
    key, default = PARTITION_KEYS[table], default_name(table)
    if not conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": default}).scalar():
        return set()
    if conn.exec_driver_sql(f'SELECT 1 FROM "{default}" LIMIT 1').first() is None:  # noqa: S608
        return set()
    rows = conn.exec_driver_sql(
        f'SELECT DISTINCT ("{key}" + {MONDAY_OFFSET}) / {WEEK} * {WEEK} - {MONDAY_OFFSET} FROM "{default}"')  # noqa: S608
    return {int(r[0]) for r in rows}


def maintain_partitions(engine: Engine, now: int, *, ahead: int = AHEAD_WEEKS) -> list[str]:
    """The scheduler tick's step: on PostgreSQL, create the weeks from `now`'s to `ahead`
    weeks later, and weekly partitions for the rows that fell into a DEFAULT partition (which
    moves them there). One short transaction per partition; returns the names created. A
    failure is logged and left for the next tick (rows keep going to DEFAULT meanwhile)."""
    if engine.dialect.name != "postgresql":
        return []
    created: list[str] = []
    for table in PARTITION_KEYS:
        try:
            with engine.connect() as conn:
                if not is_partitioned(conn, table):
                    continue
                wanted = {week_start(now) + i * WEEK for i in range(ahead + 1)} | default_weeks(conn, table)
                existing = {p.lower for p in partitions(conn, table) if p.lower is not None}
            for lower in sorted(wanted - existing):
                with engine.begin() as conn:
                    created += ensure_weeks(conn, table, {lower})
        except Exception:  # noqa: BLE001 - the tick goes on; DEFAULT holds the rows meanwhile
            log.exception("partition maintenance of %s failed", table)
    if created:
        log.info("partitions created: %s", ", ".join(created))
    return created


def older_than(conn: Connection, table: str, cutoff: int) -> list[Partition]:
    """Weekly partitions of `table` whose every row is older than `cutoff` (upper <= cutoff)."""
    return [p for p in partitions(conn, table) if p.upper is not None and p.upper <= cutoff]


def drop_partition(conn: Connection, table: str, partition: Partition) -> None:
    """Detach and drop one partition (in the caller's transaction)."""
    conn.exec_driver_sql(f'ALTER TABLE "{table}" DETACH PARTITION "{partition.table}"')
    conn.exec_driver_sql(f'DROP TABLE "{partition.table}"')



ANALYZE_MIN_PAGES = 1_000  # 8 MiB written to a leaf since its statistics: about 60,000 predictions
ANALYZE_MIN_ROWS = 10_000  # the partitions count this many rows before the whole is analysed for growth
ANALYZE_LOCK_TIMEOUT = "2s"  # behind a running VACUUM or ANALYZE of the same table: skipped, not waited for
_NOT_OWNED: set[tuple[str | None, str]] = set()  # (database, table) left to autovacuum: said once


def analyze_grown(engine: Engine, table: str, written: int = 0) -> list[str]:
    """On PostgreSQL, after `written` rows went into `table` (0: once per tick, whatever
    came in by file, HTTP or stream): ANALYZE what was left without statistics. Returns the
    names analysed.

    What autovacuum would do a minute later, done at once because the same tick's next steps
    are planned on these statistics. Without them a backfill's DEFAULT partition looked empty,
    and recalibration's join of 850,000 predictions with their labels ran as a nested loop of
    index probes (3.3-5 s instead of 1.3 s). Autovacuum never analyses a partitioned table as
    a whole, and the planner judges a join of two of them by those statistics (it expected
    billions of rows from that join without them).

    - The partitioned table as a whole (which analyses its partitions too), when it holds
      rows and: it has no statistics yet; or `written` is at least the rows they counted (the
      write doubled it); or its partitions' own statistics (autovacuum keeps those) count at
      least twice those rows, and at least ANALYZE_MIN_ROWS (it doubled since, by any way in).
    - Otherwise each partition (or plain table) never analysed that holds rows, or grown by
      `ANALYZE_MIN_PAGES` and at least doubled since its statistics (`pg_class.relpages`).

    Doubling bounds the work: a table that grows is analysed a logarithmic number of times.
    A table whose lock is not granted within `ANALYZE_LOCK_TIMEOUT` is left to autovacuum, and
    so is one the role does not own (PostgreSQL would only warn)."""
    if engine.dialect.name != "postgresql":
        return []
    try:
        rows = _tree_sizes(engine, table)
    except DBAPIError as error:  # e.g. a server without pg_partition_tree (before PostgreSQL 12)
        log.warning("statistics of %s not looked at: %s", table, str(error).splitlines()[0])
        return []
    leaves = [row for row in rows if row.isleaf]
    parent = [row for row in rows if not row.isleaf]
    holds_rows = any(row.pages > 0 for row in leaves)
    counted = sum(max(row.reltuples, 0) for row in leaves)
    if parent and holds_rows and (
            parent[0].reltuples < 0 or 0 < written >= parent[0].reltuples
            or counted >= max(2 * parent[0].reltuples, ANALYZE_MIN_ROWS)):
        chosen = parent[:1]
    else:
        chosen = [row for row in leaves
                  if (row.reltuples < 0 and row.pages > 0) or row.pages - row.relpages >= max(ANALYZE_MIN_PAGES, row.relpages)]
    targets = [row.name for row in chosen if row.mine]
    foreign = [row.name for row in chosen if not row.mine and (engine.url.database, row.name) not in _NOT_OWNED]
    if foreign:  # said once per process, not on every tick
        _NOT_OWNED.update((engine.url.database, name) for name in foreign)
        log.info("statistics of %s left to autovacuum: the role does not own them", ", ".join(foreign))
    analysed: list[str] = []
    for name in targets:
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": ANALYZE_LOCK_TIMEOUT})
                conn.exec_driver_sql(f"ANALYZE {name}")  # regclass text: quoted where it needs to be
            analysed.append(name)
        except DBAPIError as error:  # a lock not granted in time: autovacuum will get to it
            log.warning("ANALYZE %s skipped: %s", name, str(error).splitlines()[0])
    if analysed:
        log.info("statistics refreshed%s: %s", f" after {written} rows written" if written else "",
                 ", ".join(analysed))
    return analysed


def _tree_sizes(engine: Engine, table: str) -> list[Any]:
    """(name, isleaf, relpages and reltuples at its last ANALYZE, pages now, whether the role
    owns it) of `table` and its leaves."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT t.relid::regclass::text AS name, t.isleaf, c.relpages, c.reltuples, "
            "pg_relation_size(t.relid) / current_setting('block_size')::int AS pages, "
            "pg_has_role(c.relowner, 'USAGE') AS mine "
            "FROM pg_partition_tree(to_regclass(:t)) t JOIN pg_class c ON c.oid = t.relid "
            "WHERE t.isleaf OR t.level = 0"), {"t": table}))

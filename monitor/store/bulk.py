"""Bulk writes used on the ingest hot path: plain inserts and additive upserts of counts.

`insert_frame` appends rows. On PostgreSQL (psycopg 3) it streams them with `COPY ... FROM
STDIN` on the DBAPI connection underneath the caller's SQLAlchemy `Connection`, so the rows
are part of the caller's transaction (committed or rolled back with it) while avoiding one
round trip per row. Elsewhere (SQLite) it uses executemany in chunks. Both paths apply the
columns' Python-side defaults (e.g. `created_at`), so the stored rows are the same.

`add_counts` is the one primitive behind every aggregate: INSERT the new counts, and where the
key exists already add them (`ON CONFLICT (...) DO UPDATE SET n = n + excluded.n`), which both
SQLite (>= 3.24) and PostgreSQL support. Negative counts (label corrections) use the same path.
A table with a daily roll-up (`monitor.store.rollup`) gets the same counts added to it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Integer, LargeBinary, Select, Table, bindparam, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError

from monitor.store.rollup import daily_table, to_daily

CHUNK = 50_000


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the one row an `insert(...).values(...)` wrote (SQLAlchemy types it
    as optional: it is None for a statement that is not a single-row insert)."""
    key = result.inserted_primary_key
    if key is None:
        raise ValueError("the statement inserted no single row")
    return int(key[0])


def _records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame -> list of dicts with Python scalars and None for missing values."""
    columns = list(frame.columns)
    return [dict(zip(columns, row, strict=True)) for row in _rows(frame)]


def _python_column(series: pd.Series) -> list[Any]:
    """One column as Python scalars (numpy scalars unwrapped), None where missing."""
    missing = series.isna().to_numpy()
    values = series.tolist()  # int64/float64 -> int/float; object columns keep their items
    if series.dtype == object and any(issubclass(t, np.generic) for t in set(map(type, values))):
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
    if missing.any():
        values = [None if m else v for v, m in zip(values, missing, strict=True)]
    return values


def _rows(frame: pd.DataFrame) -> list[tuple]:
    if frame.shape[1] == 0:
        return [() for _ in range(len(frame))]
    return list(zip(*(_python_column(frame[c]) for c in frame.columns), strict=True))


def _with_python_defaults(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the columns that SQLAlchemy would fill from a Python-side `default=` on insert.

    COPY bypasses SQLAlchemy's insert compilation, so these defaults are applied here; server
    defaults and autoincrement keys are left to the database as with INSERT."""
    extra: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in frame.columns or default is None:
            continue
        if not (default.is_scalar or default.is_callable):  # type: ignore[attr-defined]
            continue  # SQL expressions and sequences are evaluated by the database
        extra[column.name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
    if not extra:
        return frame
    return frame.assign(**extra)


def _can_copy(conn: Connection, table: Table, columns: Sequence[str]) -> bool:
    """COPY needs psycopg 3 and plain column types (JSON goes through executemany)."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return False
    if any(c not in table.c for c in columns):
        return False  # let executemany raise SQLAlchemy's usual error
    return not any(isinstance(table.c[c].type, JSON) for c in columns)


def _integers_as_integers(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns that pandas holds as float (because of NaN) go back to integers: COPY
    parses text, and "5.0" is not a valid bigint (INSERT would have cast it)."""
    fixed = {}
    for name in frame.columns:
        if isinstance(table.c[name].type, Integer) and pd.api.types.is_float_dtype(frame[name]):
            fixed[name] = frame[name].round().astype("Int64")
    return frame.assign(**fixed) if fixed else frame


@contextmanager
def driver_errors(conn: Connection, statement: str) -> Iterator[None]:
    """Raw-cursor paths raise what SQLAlchemy would have raised for the same statement
    (IntegrityError, OperationalError, ...), and a connection the server closed is
    invalidated so the pool never hands it out again."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as error:
        disconnected = conn.dialect.is_disconnect(error, conn.connection.driver_connection, None)
        if disconnected:
            conn.invalidate()
        raise DBAPIError.instance(statement, None, error, dbapi_error,
                                  connection_invalidated=disconnected, dialect=conn.dialect) from error


_COMPILED: dict[int, tuple[Select[Any], str, dict[str, Any]]] = {}


def fetch_one(conn: Connection, statement: Select[Any], params: dict[str, Any]) -> tuple | None:
    """The first row of a module-level `statement` (built once, with `bindparam`s), as a
    tuple, or None: on PostgreSQL on the driver's cursor with the SQL compiled once per
    process (SQLAlchemy's execution of a small query costs more CPU than its round trip;
    psycopg returns the same values, JSON included); elsewhere through SQLAlchemy."""
    if conn.dialect.name != "postgresql":
        row = conn.execute(statement, params).first()
        return None if row is None else tuple(row)
    cached = _COMPILED.get(id(statement))
    if cached is None or cached[0] is not statement:  # the cache holds the statement: an id is never reused under it
        compiled = statement.compile(dialect=conn.dialect)
        # the statement's own values (a LIMIT's), by the names the SQL text uses
        defaults = {name: value for name, value in compiled.construct_params(params).items() if name not in params}
        cached = _COMPILED[id(statement)] = (statement, str(compiled), defaults)
    _, sql, defaults = cached
    driver = conn.connection.driver_connection
    with driver_errors(conn, sql), driver.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, {**defaults, **params})
        found = cursor.fetchone()
    return None if found is None else tuple(found)


def _copy_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    from psycopg import sql

    target = (
        sql.Identifier(table.schema, table.name) if table.schema else sql.Identifier(table.name)
    )
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        target, sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    )
    frame = _integers_as_integers(table, frame)
    # Binary columns skip SQLAlchemy's processor, which wraps each value for the driver (1.6 s
    # of a million rows' scores): COPY writes bytes as bytea itself.
    processors = [None if isinstance(table.c[c].type, LargeBinary) else table.c[c].type.bind_processor(conn.dialect)
                  for c in frame.columns]
    # The DBAPI connection under the SQLAlchemy Connection: same session, same transaction.
    driver = conn.connection.driver_connection
    with driver_errors(conn, statement.as_string(driver)):
        with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for start in range(0, len(frame), CHUNK):
                part = frame.iloc[start : start + CHUNK]
                columns = [_python_column(part[c]) for c in part.columns]
                for i, process in enumerate(processors):  # a column at a time, not a row
                    if process is not None:
                        columns[i] = list(map(process, columns[i]))
                for row in zip(*columns, strict=True):
                    copy.write_row(row)


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Insert every row of `frame` (columns named as the table's) into `table`, inside the
    caller's transaction. Returns the number of rows. A duplicate key raises IntegrityError
    on either path (and, as always, leaves the caller's transaction to roll back).
    Rows of a count table with a daily roll-up are added to the roll-up too."""
    if frame.empty:
        return 0
    _add_to_rollup(conn, table, frame)
    if _can_copy(conn, table, list(frame.columns)):
        full = _with_python_defaults(table, frame)
        if _can_copy(conn, table, list(full.columns)):
            _copy_frame(conn, table, full)
            return len(frame)
    full = _with_python_defaults(table, frame)
    if _plain_types(table, list(full.columns)):
        _executemany_frame(conn, table, full)
        return len(frame)
    for start in range(0, len(frame), CHUNK):
        conn.execute(table.insert(), _records(frame.iloc[start : start + CHUNK]))
    return len(frame)


def _plain_types(table: Table, columns: list[str]) -> bool:
    """True when every column is a plain number/string/bool/bytes the driver binds as is."""
    from sqlalchemy import BigInteger, Boolean, Float, Integer, LargeBinary, String, Text

    plain = (BigInteger, Boolean, Float, Integer, LargeBinary, String, Text)
    return all(c in table.c and isinstance(table.c[c].type, plain) for c in columns)


def _executemany_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    """The driver's executemany with tuples (no per-row SQLAlchemy compilation)."""
    quote = conn.dialect.identifier_preparer.quote
    placeholder = "%s" if conn.dialect.name == "postgresql" else "?"
    columns = list(frame.columns)
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
           f"VALUES ({', '.join([placeholder] * len(columns))})")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with driver_errors(conn, sql):
            for start in range(0, len(frame), CHUNK):
                cursor.executemany(sql, _rows(frame.iloc[start : start + CHUNK]))
    finally:
        cursor.close()


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
    # Sorted keys: concurrent writers lock count rows in one order, so they queue instead of
    # deadlocking (PostgreSQL would abort one of them after deadlock_timeout).
    grouped = frame.groupby(list(key_columns), as_index=False, sort=True)[list(value_columns)].sum()
    # One prepared statement run by the driver's executemany with plain tuples: compiling a
    # SQLAlchemy construct per row costs more than the database work on this hot path.
    # Table and column names come from our own models, never from data.
    columns = [*key_columns, *value_columns]
    quote = conn.dialect.identifier_preparer.quote
    placeholder = "%s" if conn.dialect.name == "postgresql" else "?"
    updates = ", ".join(f"{quote(v)} = {quote(table.name)}.{quote(v)} + excluded.{quote(v)}" for v in value_columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
        f"VALUES ({', '.join([placeholder] * len(columns))}) "
        f"ON CONFLICT ({', '.join(quote(k) for k in key_columns)}) DO UPDATE SET {updates}"
    )
    if conn.dialect.name == "postgresql":
        # One INSERT ... SELECT FROM unnest(arrays) per chunk: one round trip per CHUNK rows
        # instead of one per row (executemany costs a round trip per row on psycopg).
        arrays = ", ".join(f"%s::{_pg_array_type(table.c[c])}" for c in columns)
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
            f"SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(quote(k) for k in key_columns)}) DO UPDATE SET {updates}"
        )
    driver = conn.connection.driver_connection
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        with driver_errors(conn, sql):
            for start in range(0, len(grouped), CHUNK):
                part = grouped.iloc[start : start + CHUNK][columns]
                if conn.dialect.name == "postgresql":
                    cursor.execute(sql, [array_literal(_python_column(part[c])) for c in columns], binary=True)
                else:
                    cursor.executemany(sql, list(_rows(part)))
    finally:
        cursor.close()
    _add_to_rollup(conn, table, grouped, key_columns=key_columns, value_columns=value_columns)
    return len(grouped)


def _add_to_rollup(conn: Connection, table: Table, frame: pd.DataFrame, *,
                   key_columns: Sequence[str] | None = None, value_columns: Sequence[str] | None = None) -> None:
    """Add counts written to `table` to its daily roll-up, if it has one, in the same
    transaction (the day sums whole-day windows read; see monitor.store.rollup)."""
    daily = daily_table(table)
    if daily is None:
        return
    keys = list(key_columns) if key_columns is not None else [c.name for c in table.primary_key.columns]
    values = list(value_columns) if value_columns is not None else [
        c.name for c in table.columns if c.name not in keys and c.name in frame.columns]
    add_counts(conn, daily, to_daily(frame), key_columns=keys, value_columns=values)


def update_rows(conn: Connection, table: Table, frame: pd.DataFrame, *, key_columns: Sequence[str]) -> None:
    """Set `frame`'s other columns on the rows of `table` that its `key_columns` match. On
    PostgreSQL one UPDATE joined with the unnested arrays of the columns (an executemany sends
    a statement a row: 2.3 s for the 1M bench's 29,000 label corrections, 4 s for 100,000
    alert series); elsewhere an executemany."""
    if frame.empty:
        return
    columns = list(frame.columns)
    values = [c for c in columns if c not in key_columns]
    data = {c: _python_column(frame[c]) for c in columns}
    if conn.dialect.name == "postgresql":
        quote = conn.dialect.identifier_preparer.quote
        for c in columns:  # a missing value made an integer column float: 3.0 is no int4
            if isinstance(table.c[c].type, Integer):
                data[c] = [None if v is None else int(v) for v in data[c]]
        sql = (f"UPDATE {quote(table.name)} AS t SET {', '.join(f'{quote(c)} = u.{quote(c)}' for c in values)} "  # noqa: S608
               f"FROM unnest({', '.join(f'%s::{_pg_array_type(table.c[c])}' for c in columns)}) "
               f"AS u({', '.join(quote(c) for c in columns)}) "
               f"WHERE {' AND '.join(f't.{quote(c)} = u.{quote(c)}' for c in key_columns)}")
        with driver_errors(conn, sql), conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, [array_literal(data[c]) for c in columns])
        return
    # bound names differ from the columns' (SQLAlchemy keeps those for the SET clause)
    statement = (update(table).where(*(table.c[c] == bindparam(f"key_{c}") for c in key_columns))
                 .values(**{c: bindparam(f"new_{c}") for c in values}))
    conn.execute(statement, [{(f"key_{c}" if c in key_columns else f"new_{c}"): v for c, v in zip(columns, row, strict=True)}
                             for row in zip(*(data[c] for c in columns), strict=True)])


def _pg_array_type(column) -> str:  # type: ignore[no-untyped-def]
    from sqlalchemy import BigInteger, Boolean, Float, Integer

    kind = column.type
    if isinstance(kind, BigInteger):
        return "int8[]"
    if isinstance(kind, Integer):
        return "int4[]"
    if isinstance(kind, Float):
        return "float8[]"
    if isinstance(kind, Boolean):
        return "bool[]"
    return "text[]"


IN_CHUNK = 5_000
# A PostgreSQL lookup of at most this many ids runs without parallel workers. Over weekly
# partitions the planner expects each id in every week, so for a tick's ~100 ids it may seq-scan
# all of them in parallel: 40 ms against 11 ms serial after a year (53 weeks of labels), and
# the inbox drain's lookups every 0.5 s started two workers each time on a 2-core machine.
# Larger lookups (a backfill, a big stream batch) keep the planner's choice.
SERIAL_LOOKUP = 2_000
# A PostgreSQL lookup of at most this many ids runs with a generic plan. The custom plan for a
# given array, with fresh statistics and the default random_page_cost, seq-scans every weekly
# partition (36-47 ms for a tick's 100 labels after a year); the generic plan probes each
# week's index (5 ms; 25 against 57 ms at 500 ids, but 102 against 80 ms at 2,000).
GENERIC_PLAN_LOOKUP = 1_000
# A PostgreSQL lookup of at least this many text ids joins the table with the unnested array
# instead of `= ANY(array)`. For a large array the planner hashes the array once per partition
# and estimates its selectivity element by element: over 53 weekly partitions of 2M labels,
# 6.5 s for 200,000 ids against 0.79 s joined (3.3 against 0.69 s at 100,000, 1.27 against
# 0.61 s at 50,000; about equal at 20,000). Over 7 partitions, `= ANY` is 35% faster at 50,000
# and 37% slower at 200,000.
JOIN_LOOKUP = 50_000


def _lookup_settings(n_keys: int) -> list[tuple[str, str]]:
    """The settings a PostgreSQL lookup of `n_keys` ids runs under (SERIAL_LOOKUP,
    GENERIC_PLAN_LOOKUP)."""
    settings = []
    if n_keys <= SERIAL_LOOKUP:
        settings.append(("max_parallel_workers_per_gather", "0"))
    if n_keys <= GENERIC_PLAN_LOOKUP:
        settings.append(("plan_cache_mode", "force_generic_plan"))
    return settings


@contextmanager
def statement_settings(cursor: Any, settings: Sequence[tuple[str, str]]) -> Iterator[None]:
    """PostgreSQL: run what is inside under `settings` ((name, value) pairs, set on the driver's
    `cursor` for the transaction), then put the transaction's own values back. On an error
    they stay until the rollback, which undoes them too."""
    if not settings:
        yield
        return
    cursor.execute("SELECT " + ", ".join("current_setting(%s), set_config(%s, %s, true)" for _ in settings),
                   [value for name, setting in settings for value in (name, name, setting)])
    row = cursor.fetchone()
    before = [value for (name, _), old in zip(settings, row[0::2], strict=True) for value in (name, old)]
    yield
    cursor.execute("SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings), before)


def array_literal(values: Sequence[Any]) -> str:
    """PostgreSQL's text form of an array of `values` (str, int, float, bool or None), for a
    `%s::<type>[]` parameter that the server parses. psycopg dumps a list element by element in
    Python (about 13 us per element: the largest single cost of an inbox drain's lookups and
    count upserts); this is one join for the usual arrays (all numbers, or all text with no
    quote or backslash) and exact: floats as their shortest round-trip repr."""
    if not len(values):
        return "{}"
    kinds = set(map(type, values))
    if kinds <= {int, float}:
        return "{" + ",".join(map(repr, values)) + "}"
    if kinds == {str}:
        every = "".join(values)  # the values' own characters only
        if '"' not in every and "\\" not in every:
            return '{"' + '","'.join(values) + '"}'
    return "{" + ",".join(_array_element(v) for v in values) + "}"


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(float(value))  # numpy's float64 is a float whose repr is "np.float64(...)"
    if isinstance(value, int):
        return repr(int(value))
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def array_param(keys: Sequence[Any]) -> tuple[Any, str]:
    """(parameter, cast) for `= ANY(%s<cast>)` on PostgreSQL: text keys as one `array_literal`
    (`'{"a","b"}'::text[]`), other keys as a list."""
    if not all(type(k) is str for k in keys):
        return list(keys), ""
    return array_literal(keys), "::text[]"


def select_in(
    conn: Connection,
    table: Table,
    *,
    key_column: str,
    keys: Sequence[Any],
    columns: Sequence[str],
    equal: dict[str, Any] | None = None,
    at_least: dict[str, int] | None = None,
    below: dict[str, int] | None = None,
) -> list[tuple]:
    """Rows `(key, *columns)` of `table` whose `key_column` is one of `keys` and whose
    columns in `equal` have the given values (and those in `at_least` / `below` are >= / <
    the given numbers), as plain tuples (order unspecified).

    The lookup of the ingest hot path (which of these ids are stored already?): one prepared
    statement on the driver's cursor, `= ANY(%s)` with one array parameter on PostgreSQL (a
    join with the unnested array from JOIN_LOOKUP keys), `IN (?, ...)` in chunks of `IN_CHUNK`
    elsewhere; no per-chunk SQLAlchemy compilation and no Row objects. Tables with non-plain column types go through SQLAlchemy."""
    equal = dict(equal or {})
    at_least, below = dict(at_least or {}), dict(below or {})
    selected = [key_column, *columns]
    if not len(keys):
        return []
    if not _plain_types(table, [*selected, *equal, *at_least, *below]):
        from sqlalchemy import select

        out: list[tuple] = []
        for start in range(0, len(keys), IN_CHUNK):
            chunk = list(keys[start : start + IN_CHUNK])
            query = select(*[table.c[c] for c in selected]).where(
                table.c[key_column].in_(chunk), *[table.c[c] == v for c, v in equal.items()],
                *[table.c[c] >= v for c, v in at_least.items()], *[table.c[c] < v for c, v in below.items()],
            )
            out.extend(tuple(row) for row in conn.execute(query))
        return out
    quote = conn.dialect.identifier_preparer.quote
    postgres = conn.dialect.name == "postgresql"
    placeholder = "%s" if postgres else "?"
    conditions = ("".join(f"{quote(c)} = {placeholder} AND " for c in equal)  # each followed by AND
                  + "".join(f"{quote(c)} >= {placeholder} AND " for c in at_least)
                  + "".join(f"{quote(c)} < {placeholder} AND " for c in below))
    head = f"SELECT {', '.join(quote(c) for c in selected)} FROM {quote(table.name)} WHERE {conditions}"  # noqa: S608
    fixed = [*equal.values(), *(int(v) for v in at_least.values()), *(int(v) for v in below.values())]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if postgres:
            # never a named prepared statement (safe behind a transaction-pooling proxy); a
            # large array is planned for itself (a generic plan would compare every row with the
            # whole array instead of hashing it or using the index), a small one generically
            if len(keys) >= JOIN_LOOKUP and all(type(k) is str for k in keys):
                return _join_lookup(cursor, conn, table, key_column, selected, keys, conditions, fixed)
            array, cast = array_param(keys)
            with statement_settings(cursor, _lookup_settings(len(keys))):
                cursor.execute(head + f"{quote(key_column)} = ANY({placeholder}{cast})", [*fixed, array],
                               prepare=False, binary=True)
                return [tuple(row) for row in cursor.fetchall()]
        out = []
        keys = sorted(keys)  # index order: each chunk reads neighbouring pages
        for start in range(0, len(keys), IN_CHUNK):
            chunk = list(keys[start : start + IN_CHUNK])
            cursor.execute(head + f"{quote(key_column)} IN ({', '.join([placeholder] * len(chunk))})",
                           [*fixed, *chunk])
            out.extend(cursor.fetchall())
        return out
    finally:
        cursor.close()


def _join_lookup(cursor: Any, conn: Connection, table: Table, key_column: str, selected: list[str],
                 keys: Sequence[str], conditions: str, fixed: list[Any]) -> list[tuple]:
    """`select_in` of many text keys on PostgreSQL (JOIN_LOOKUP): the table joined with the
    unnested array, each key once (a join, unlike `= ANY`, would return a row once per copy).
    `conditions`: the other columns' tests, each followed by AND, for the values `fixed`."""
    quote = conn.dialect.identifier_preparer.quote
    unique = list(dict.fromkeys(keys))
    sql = (f"SELECT {', '.join('t.' + quote(c) for c in selected)} FROM {quote(table.name)} AS t "  # noqa: S608
           f"JOIN unnest(%s::text[]) AS wanted(lookup_key) ON t.{quote(key_column)} = wanted.lookup_key "
           f"WHERE {conditions}TRUE")
    cursor.execute(sql, [array_literal(unique), *fixed], prepare=False, binary=True)
    return [tuple(row) for row in cursor.fetchall()]


def select_in_recent(
    conn: Connection,
    table: Table,
    *,
    key_column: str,
    keys: Sequence[Any],
    columns: Sequence[str],
    equal: dict[str, Any] | None = None,
    time_column: str,
    since: int | Sequence[int] | None,
) -> list[tuple]:
    """The rows `select_in` returns, looked up on PostgreSQL newest first: among the rows
    with `time_column >= since` (the time-partitioned raw tables prune to the recent
    partitions), then the keys not found there among the rows of the next older span, and
    last among all older rows and the DEFAULT partition (usually none left). `since` is one
    bound or several, newest first (e.g. the last week, then the label horizon): most labels
    come within days, so the first span, one or two partitions, finds most ids, and only the
    rest probe the older partitions. Elsewhere, or without `since`: `select_in`."""
    if conn.dialect.name != "postgresql" or since is None:
        return select_in(conn, table, key_column=key_column, keys=keys, columns=columns, equal=equal)
    bounds = sorted({int(since)} if isinstance(since, int | np.integer) else {int(b) for b in since}, reverse=True)
    missing = list(dict.fromkeys(keys))
    found: list[tuple] = []
    upper: int | None = None
    for bound in [*bounds, None]:
        if not missing:
            break
        rows = select_in(conn, table, key_column=key_column, keys=missing, columns=columns, equal=equal,
                         at_least={time_column: bound} if bound is not None else None,
                         below={time_column: upper} if upper is not None else None)
        found += rows
        seen = {row[0] for row in rows}
        missing = [k for k in missing if k not in seen]
        upper = bound
    return found

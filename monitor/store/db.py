"""Engines and transactions. No engine exists at import time; callers own the transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError


class DatabaseError(Exception):
    """The database cannot be used (exit code 1, one-line reason)."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`. SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN; take control of it so that a
            # transaction starts when SQLAlchemy says so (needed for correct locking).
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        elif url.startswith("postgresql+psycopg"):
            # no server-side prepared statements (psycopg prepares a query from its 5th run):
            # PostgreSQL may then keep a generic plan made while this week's partition was
            # empty, which scans the partition whole for every row once it has filled (seen:
            # the labelled-at update of a stream batch took 4 s after 800k predictions)
            connect_args = {"prepare_threshold": None, **kwargs.pop("connect_args", {})}
            engine = create_engine(url, connect_args=connect_args, **{"pool_pre_ping": True, **kwargs})
        else:
            engine = create_engine(url, **{"pool_pre_ping": True, **kwargs})
    except (ArgumentError, NoSuchModuleError) as error:
        raise DatabaseError(f"bad database_url {_shown(url)!r}: {error}") from None
    except ModuleNotFoundError as error:  # the URL's driver is not installed
        if url.startswith("postgresql+psycopg"):
            raise DatabaseError("postgresql:// URLs need psycopg 3, which is not installed: "
                                "pip install 'classifier-monitor[postgres]'") from None
        raise DatabaseError(f"database_url {_shown(url)!r} needs the module {error.name!r}, "
                            "which is not installed") from None
    return engine


def _shown(url: str) -> str:
    """`url` as an error may show it: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    # a page cache of up to 64 MiB (default 2 MiB): the ingest's id lookups and updates of a
    # batch's predictions (random keys) otherwise reread index pages (taken as used, not reserved)
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def make_read_engine(url: str) -> Engine:
    """An engine for processes that mostly read (the dashboard, the API's reads).

    On SQLite its transactions start with a deferred BEGIN (not BEGIN IMMEDIATE as the
    writers' do), so that in WAL mode reads never wait for the scheduler's write lock and
    never block it; a connection with the execution option `sqlite_immediate=True` (a user
    action that writes) still asks for the lock up front. Other backends get `make_engine`."""
    if not url.startswith("sqlite"):
        return make_engine(url)
    engine = create_engine(url, connect_args={"timeout": 60})
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _begin_deferred)
    return engine


def _begin_deferred(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_migrated(conn: Connection, table: str = "monitored_models") -> bool:
    """Ping the database (a driver error when it does not answer) and say whether `table`
    (one every migrated database has) exists: on PostgreSQL one query (`to_regclass`, one round
    trip), elsewhere `SELECT 1` and the inspector."""
    if conn.dialect.name == "postgresql":
        return bool(conn.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": table}).scalar())
    conn.execute(text("SELECT 1"))
    return inspect(conn).has_table(table)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: commit on success, roll back on error."""
    with engine.begin() as conn:
        yield conn


NOT_MIGRATED = "database not migrated (tables missing): run `monitor db upgrade`"
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table


def is_missing_table(error: BaseException) -> bool:
    """True for SQLite's "no such table" and PostgreSQL's UndefinedTable: the database is
    reachable but was never migrated (or is another application's)."""
    original = getattr(error, "orig", None) or error
    if getattr(original, "sqlstate", None) == UNDEFINED_TABLE:
        return True
    return "no such table" in str(error)


def check_database(engine: Engine) -> None:
    """Raise DatabaseError with a one-line reason when the database does not answer."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any driver error means "unreachable"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatabaseError(f"database unreachable ({engine.url.render_as_string(hide_password=True)}): {reason}") from None

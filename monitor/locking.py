"""One active scheduler per database: `scheduler_lock(engine)`.

Several schedulers may be started against the same database (high availability). Each one
enters `with scheduler_lock(engine, wait=True) as lock:` before it starts its jobs; only one
gets in, the others wait and take over when the holder dies. Inside, call `lock.verify()`
before each job: False means the lock was lost (its database connection broke), so the
process must stop scheduling; another scheduler may already be running.

- PostgreSQL: a session-level `pg_try_advisory_lock(key)` on a dedicated connection (own
  NullPool engine, autocommit so it never sits idle in a transaction, TCP keepalives so the
  server notices a vanished host). The server releases the lock when that session ends: the
  process exits, is killed, or loses its connection. Waiters poll every `poll_interval` s.
- SQLite: an exclusive `flock` on `<database file>.scheduler.lock`, released by the OS when
  the process dies. In-memory databases (and platforms without fcntl) need no lock.

API:
    scheduler_lock(engine, *, wait=True, poll_interval=5.0, timeout=None) -> SchedulerLock
    SchedulerLock.acquire() -> bool   # False only with wait=False or after timeout
    SchedulerLock.verify() -> bool    # still ours?
    SchedulerLock.release()
    with scheduler_lock(...) as lock: ...   # raises LockNotAcquired if it could not get it

`ingest_lock(conn, model_id)` is the other lock here: it serializes the write transactions of
one model (API POSTs, and any ingest that takes it) so that they queue instead of deadlocking.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

log = logging.getLogger("monitor.locking")

# A fixed 64-bit key: "classifier-monitor scheduler". Advisory locks are per database, so
# schedulers of different databases on one server never block each other.
SCHEDULER_LOCK_KEY = 0x636D5F7363686564
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


class LockNotAcquired(RuntimeError):
    """The scheduler lock is held by another process (wait=False or timeout reached)."""


class SchedulerLock:
    """The scheduler's exclusive lock on its database. See the module doc."""

    def __init__(self, engine: Engine, *, wait: bool = True, poll_interval: float = 5.0,
                 timeout: float | None = None, key: int = SCHEDULER_LOCK_KEY,
                 stop: threading.Event | None = None) -> None:
        self.engine = engine
        self.wait = wait
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.key = key
        self.stop = stop or threading.Event()
        self._lock_engine: Engine | None = None
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    # -- public ---------------------------------------------------------------------------
    def acquire(self) -> bool:
        """Take the lock; with `wait`, poll until it is free (or `timeout`, or `stop` set)."""
        if self._held:
            return True
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        announced = False
        while True:
            if self._try_once():
                self._held = True
                log.info("scheduler lock acquired (%s)", self._describe())
                return True
            if not self.wait or (deadline is not None and time.monotonic() >= deadline):
                return False
            if not announced:
                log.warning("another scheduler holds the lock (%s); waiting to take over", self._holder())
                announced = True
            if self.stop.wait(self.poll_interval):
                return False

    def verify(self) -> bool:
        """True while the lock is still ours. On PostgreSQL this is a round trip on the lock's
        session: if that session is gone, so is the lock, and this returns False."""
        if not self._held:
            return False
        if self._conn is None:
            return True  # file locks cannot be lost while the process lives
        try:
            owned = self._conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                     "AND pid = pg_backend_pid() AND objid = :low AND classid = :high"),
                {"low": self.key & 0xFFFFFFFF, "high": (self.key >> 32) & 0xFFFFFFFF},
            ).scalar_one()
        except Exception:  # noqa: BLE001 - any failure of the session means the lock is gone
            log.error("scheduler lock lost: its database session failed")
            self._close()
            return False
        if not owned:
            log.error("scheduler lock lost")
            self._close()
        return bool(owned)

    def release(self) -> None:
        if self._conn is not None and self._held:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception:  # noqa: BLE001 - closing the session releases it anyway
                log.debug("advisory unlock failed; closing the session releases it", exc_info=True)
        self._close()

    def __enter__(self) -> SchedulerLock:
        if not self.acquire():
            raise LockNotAcquired(f"another scheduler holds the lock ({self._holder()})")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    # -- backends -------------------------------------------------------------------------
    def _try_once(self) -> bool:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return self._try_postgres()
        if dialect == "sqlite":
            return self._try_file()
        log.warning("no scheduler lock for %s databases: run a single scheduler", dialect)
        return True

    def _try_postgres(self) -> bool:
        if self._conn is None:
            connect_args: dict[str, Any] = {**KEEPALIVES, "application_name": "classifier-monitor scheduler"}
            self._lock_engine = create_engine(self.engine.url, poolclass=NullPool,
                                              isolation_level="AUTOCOMMIT", connect_args=connect_args)
            try:
                self._conn = self._lock_engine.connect()
            except Exception as error:  # noqa: BLE001 - the database may be down: keep waiting
                log.warning("scheduler lock: cannot connect (%s)", str(error).splitlines()[0] if str(error) else error)
                self._close()
                return False
        try:
            got = self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar_one()
        except Exception:  # noqa: BLE001 - a broken session: reconnect on the next attempt
            log.warning("scheduler lock: session failed; reconnecting", exc_info=True)
            self._close()
            return False
        return bool(got)

    def _lock_path(self) -> Path | None:
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return None
        return Path(database).with_name(Path(database).name + ".scheduler.lock")

    def _try_file(self) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: single scheduler assumed
            return True
        path = self._lock_path()
        if path is None:
            return True
        handle = self._file or open(path, "a+b")  # noqa: SIM115 - held for the lock's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file = handle
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def _holder(self) -> str:
        if self.engine.dialect.name == "postgresql" and self._conn is not None:
            try:
                row = self._conn.execute(text(
                    "SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND l.objid = :low AND l.classid = :high"),
                    {"low": self.key & 0xFFFFFFFF, "high": (self.key >> 32) & 0xFFFFFFFF}).first()
            except Exception:  # noqa: BLE001 - only for the log line
                return "holder unknown"
            if row is not None:
                return f"server pid {row.pid}, client {row.client_addr or 'local'}"
            return "holder unknown"
        path = self._lock_path()
        if path is not None and path.exists():
            pid = path.read_text(encoding="utf-8", errors="replace").strip()
            return f"lock file {path}, pid {pid or 'unknown'}"
        return "holder unknown"

    def _describe(self) -> str:
        if self._conn is not None:
            return "PostgreSQL advisory lock"
        path = self._lock_path()
        return f"lock file {path}" if path is not None else "no lock needed"

    def _close(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the lock session failed", exc_info=True)
            self._conn = None
        if self._lock_engine is not None:
            self._lock_engine.dispose()
            self._lock_engine = None
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


INGEST_LOCK_SPACE = 0x4D4F4E49  # "MONI": the first half of the per-model ingest lock key


def ingest_lock(conn: Connection, model_id: int) -> None:
    """Serialize writers of one model until the end of `conn`'s transaction (PostgreSQL:
    `pg_advisory_xact_lock`; SQLite's write transactions are exclusive already).

    Concurrent ingest batches of a model update the same hot count rows, slices and pending
    labels in orders no key sort can align across tables, so without it they deadlock or
    collide on new keys and must be retried; with it they queue. Take it first thing in
    the transaction; a stream consumer takes it only after storing its rows, for the counts,
    and checks for overlapping writers under it (`monitor.ingest.writers`)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:space, :model)"),
                     {"space": INGEST_LOCK_SPACE, "model": int(model_id)})


def scheduler_lock(engine: Engine, *, wait: bool = True, poll_interval: float = 5.0,
                   timeout: float | None = None, stop: threading.Event | None = None) -> SchedulerLock:
    """The scheduler lock for `engine`'s database (not yet acquired: use it in `with`)."""
    return SchedulerLock(engine, wait=wait, poll_interval=poll_interval, timeout=timeout, stop=stop)

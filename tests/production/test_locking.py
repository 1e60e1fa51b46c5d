"""The scheduler lock: one holder per database, waiters take over when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from monitor.locking import LockNotAcquired, scheduler_lock
from monitor.store.db import make_engine

HOLDER = textwrap.dedent("""
    import sys, time
    from monitor.locking import scheduler_lock
    from monitor.store.db import make_engine
    url, name, marker = sys.argv[1], sys.argv[2], sys.argv[3]
    with scheduler_lock(make_engine(url), wait=True, poll_interval=0.1) as lock:
        with open(marker, "a") as out:
            out.write(name + "\\n")
        while lock.verify():
            time.sleep(0.1)
""")


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _start(url: str, name: str, marker: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, "-c", HOLDER, url, name, marker], env=env)


def test_a_second_scheduler_waits_and_takes_over_when_the_first_dies(db_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "acquired"
    first = _start(db_url, "first", marker)
    second = None
    try:
        assert _wait_for(lambda: marker.exists() and "first" in marker.read_text(), 30)
        second = _start(db_url, "second", marker)
        time.sleep(2.0)  # plenty of polls at 0.1 s: it must still be waiting
        assert marker.read_text().split() == ["first"]
        assert second.poll() is None
        first.send_signal(signal.SIGKILL)  # dies without releasing anything
        first.wait(timeout=10)
        assert _wait_for(lambda: "second" in marker.read_text(), 30)
        assert marker.read_text().split() == ["first", "second"]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def test_without_wait_a_held_lock_is_refused_then_free_after_release(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with scheduler_lock(engine) as lock:
            assert lock.verify()
            with pytest.raises(LockNotAcquired):
                with scheduler_lock(engine, wait=False):
                    pass
            other = scheduler_lock(engine, wait=True, poll_interval=0.05, timeout=0.3)
            started = time.monotonic()
            assert other.acquire() is False
            assert time.monotonic() - started >= 0.3
        with scheduler_lock(engine, wait=False) as again:
            assert again.held
    finally:
        engine.dispose()


def test_a_holder_whose_session_is_killed_knows_it_lost_the_lock(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    admin = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    try:
        lock = scheduler_lock(engine, wait=False)
        assert lock.acquire()
        with admin.connect() as conn:
            killed = conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'classifier-monitor scheduler' AND datname = current_database()"
            )).scalars().all()
        assert killed == [True]
        assert lock.verify() is False
        with scheduler_lock(engine, wait=False) as successor:
            assert successor.verify()
    finally:
        admin.dispose()
        engine.dispose()


def test_ingest_lock_serializes_writers_of_one_model_until_commit(postgres_url: str) -> None:
    from sqlalchemy.exc import OperationalError

    from monitor.locking import ingest_lock

    engine = make_engine(postgres_url)
    try:
        with engine.connect() as first, engine.connect() as second:
            first.begin()
            ingest_lock(first, 1)
            second.begin()
            second.execute(text("SET LOCAL lock_timeout = '200ms'"))
            ingest_lock(second, 2)  # another model: no wait
            with pytest.raises(OperationalError, match="lock timeout"):
                ingest_lock(second, 1)
            second.rollback()
            first.commit()  # the transaction's end releases it
            second.begin()
            second.execute(text("SET LOCAL lock_timeout = '200ms'"))
            ingest_lock(second, 1)
            second.rollback()
    finally:
        engine.dispose()

"""The file ledger: which files to (re)read on a tick, and reading one file safely.

A file is read when it is new, when its content changed (size, mtime or fingerprint, then
sha256), or when rows in it were not yet visible at the previous read (`--as-of` moved on),
or when its unterminated last line was held back (it may have been half written): that line
is read once the file has stopped changing (unchanged since the last read, or untouched for
SETTLE_SECONDS). Files are read in batches of
about BATCH_ROWS rows: one transaction holds the batch's files, their ledger rows and rejects,
and the batch's counts and hooks (aggregated once per batch), so a crash mid-batch leaves
nothing of it behind and the next tick reads its files again. A file that cannot be parsed is
marked failed with its error (its savepoint rolled back) and skipped until it changes.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import logging
import os
import re
import stat as stat_module
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
from sqlalchemy import Engine, Row, Table, and_, bindparam, delete, insert, not_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.context import ModelContext
from monitor.ingest.chunks import Chunk
from monitor.ingest.files import load_label_files, load_prediction_files
from monitor.ingest.pipeline import IngestResult, Pending, load_labels, load_predictions
from monitor.ingest.readers import SUFFIXES, ReadState, UnreadableFile, read_chunks
from monitor.ingest.recent import RecentPredictions
from monitor.ingest.rejects import store_rejects
from monitor.ingest.validate import REJECT_COLUMNS
from monitor.ingest.writers import note_writes
from monitor.locking import ingest_lock
from monitor.store.base import utcnow
from monitor.store.bulk import inserted_id
from monitor.store.models import IngestedFile, RejectedRow
from monitor.store.slices import fetch_tuples

log = logging.getLogger(__name__)
FILES = cast(Table, IngestedFile.__table__)  # declared as FromClause; a mapped class's is a Table
SETTLE_SECONDS = 10  # a file untouched this long is complete, even without a final newline
EDGE_BYTES = 8192  # the fingerprint hashes this much of the head and of the tail
RECENT_SECONDS = 86400  # a file changed this recently has its head and tail hashed on every tick
VERIFY_HOURS = 24  # an older one in one hour of this many (its stat is compared on every tick)
IN_PATHS = 500  # paths per IN list of a ledger lookup
# The rejects of every unchanged file: one frame, not a new one per file and tick (a tick over
# a year of daily files built 730 of them). Results only ever replace `rejects`, never edit it.
_NO_REJECTS = pd.DataFrame(columns=REJECT_COLUMNS)
# The result of every file a bounded scan passes over: one object, not one per file and tick
# (8,760 of each kind after a year of hourly files). Nothing adds to an unchanged file's result.
_PASSED_OVER = IngestResult(rejects=_NO_REJECTS)
_reported_empty: set[tuple[str, str, str]] = set()  # globs that matched nothing, said once
_reported_names: set[str] = set()  # file names that are not UTF-8, said once


@dataclass
class FileOutcome:
    path: str
    kind: str
    status: str  # done | partial | failed | unchanged
    result: IngestResult
    error: str | None = None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: Path, stat: os.stat_result) -> str:
    """Inode, ctime (any write or chmod moves it; no user can set it back) and a hash of the
    file's head and tail (for file systems whose ctime says little)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(EDGE_BYTES))
        if stat.st_size > EDGE_BYTES:
            handle.seek(max(stat.st_size - EDGE_BYTES, EDGE_BYTES))
            digest.update(handle.read(EDGE_BYTES))
    return f"{stat.st_ino}:{stat.st_ctime_ns}:{digest.hexdigest()[:32]}"


def discover(ctx: ModelContext, kind: str, base_dir: Path) -> list[str]:
    """The names with a supported suffix the model's `path` glob of `kind` matches, in path
    order, as strings and without a stat each (a tick over a year of hourly files lists 8,760
    of them): `ingest_files` stats the ones it looks at and passes over anything not a file."""
    source = ctx.config.predictions if kind == "predictions" else ctx.config.labels
    if not source.path:
        return []
    # normalised as a Path is (no `.` or doubled separators): the names glob gives then are the
    # ones `str(Path(name))` would give, the ledger's keys
    pattern = str(Path(source.path)) if Path(source.path).is_absolute() else str(base_dir / source.path)
    matches = _glob(pattern)
    found = [name for name in matches if name.lower().endswith(SUFFIXES) and _storable(ctx, name)]
    if len({name.rpartition(os.sep)[0] for name in found}) <= 1:
        found.sort()  # one directory: the strings sort as their paths do
    else:
        found.sort(key=_path_order)
    key = (ctx.name, kind, pattern)
    if not found and key not in _reported_empty:
        _reported_empty.add(key)  # once per process, not on every tick
        skipped = len([name for name in matches if os.path.isfile(name)])
        log.warning("model %s: %s path %s matches no %s", ctx.name, kind, pattern,
                    f"supported file ({skipped} other files match)" if skipped else "file")
    elif found:
        _reported_empty.discard(key)
    return found


def _glob(pattern: str) -> list[str]:
    """`glob.glob(pattern, recursive=True)`, except that under `**` each real directory is
    walked once: glob follows symlinked directories, so a loop (`up -> ..`) made it list the
    same files under endless paths (hundreds of thousands, gigabytes) and a second way into a
    directory read its files twice. The first path found to a directory is kept."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        return glob.glob(pattern, recursive=True)
    fixed = next(i for i, part in enumerate(parts) if _WILD.search(part))
    root = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else os.curdir)
    wanted = tuple(parts[fixed:])
    dotted = any(part.startswith(".") for part in wanted)
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    for folder, folders, files in os.walk(root, followlinks=True):
        try:
            stat = os.stat(folder)
        except OSError:
            folders[:] = []
            continue
        if (stat.st_dev, stat.st_ino) in seen:  # reached again through a symlink
            folders[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        inside = () if folder == root else tuple(os.path.relpath(folder, root).split(os.sep))
        for names, is_dir in ((folders, True), (files, False)):
            found.extend(_joined(root, folder, name) for name in names
                         if _glob_match(wanted, (*inside, name), is_dir))
        if not dotted:  # nothing below a hidden directory can match
            folders[:] = [name for name in folders if not name.startswith(".")]
    return found


_WILD = re.compile(r"[*?[]")


def _joined(root: str, folder: str, name: str) -> str:
    """A found path as glob spells it (no `./` in front of a relative pattern's names)."""
    path = os.path.join(folder, name)
    return path[2:] if root == os.curdir and path.startswith("." + os.sep) else path


def _glob_match(pattern: tuple[str, ...], parts: tuple[str, ...], is_dir: bool) -> bool:
    """`parts` (a path's components below the walk's root; `is_dir`: the last is a directory)
    matched by `pattern`'s as glob matches them: `**` is any number of components, a name
    starting with a dot needs a pattern starting with one, and a trailing `**` that matches
    nothing after a name takes only a directory."""

    def match(p: int, i: int, fresh: bool) -> bool:
        if p == len(pattern):
            return i == len(parts)
        if pattern[p] == "**":
            if p + 1 == len(pattern) and i == len(parts) and fresh and i > 0:
                return is_dir
            return match(p + 1, i, True) or (
                i < len(parts) and not parts[i].startswith(".") and match(p, i + 1, False))
        if i == len(parts) or (parts[i].startswith(".") and not pattern[p].startswith(".")):
            return False
        return fnmatch.fnmatchcase(parts[i], pattern[p]) and match(p + 1, i + 1, True)

    return match(0, 0, True)


def _storable(ctx: ModelContext, name: str) -> bool:
    """A name the ledger can store: not one whose bytes are not UTF-8 (Python keeps such
    bytes as surrogates, which no database text column takes). Such a file is skipped, said
    once per process, so the model's other files are still read."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        if name not in _reported_names:
            _reported_names.add(name)
            log.warning("model %s: skipped %s: its name is not valid UTF-8 (rename the file to read it)",
                        ctx.name, name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
        return False
    return True


def _path_order(name: str) -> list[str]:
    """Sort key: the order of `Path` objects (component by component), without making them."""
    return name.split(os.sep)


def _needs_read(row: Row[Any] | None, stat: os.stat_result, path: str | Path,
                as_of: int | None, *, verify: bool = True) -> tuple[bool, str | None, str]:
    """(read it?, sha256 if computed, fingerprint). A partial file is read again once the
    clock reaches its earliest waiting row (`visible_until` holds that time), not on every
    tick; one whose last line was held back (`visible_until` None) on the next tick.

    With `verify` False (`_verify_now`: a file settled a while and not in this hour's share)
    a file whose size, mtime, inode and ctime all match its ledger row keeps its recorded
    fingerprint without hashing its head and tail again."""
    if row is not None and not verify and _same_stat(row, stat):
        return row.status == "partial" and _due(row, as_of), None, str(row.fingerprint)
    print_ = fingerprint(Path(path), stat)
    if row is None:
        return True, None, print_

    def due() -> bool:
        return row.status == "partial" and _due(row, as_of)

    if row.size == stat.st_size and row.mtime == stat.st_mtime and row.fingerprint == print_:
        return due(), None, print_
    digest = sha256_of(Path(path))
    if digest == row.sha256:
        return due(), digest, print_
    return True, digest, print_


def _due(row: Row[Any], as_of: int | None) -> bool:
    return as_of is None or row.visible_until is None or as_of >= row.visible_until


def _same_stat(row: Row[Any], stat: os.stat_result) -> bool:
    """Size, mtime, and the inode and ctime recorded in the fingerprint, all unchanged."""
    if row.fingerprint is None or row.size != stat.st_size or row.mtime != stat.st_mtime:
        return False
    parts = str(row.fingerprint).split(":", 2)  # not three parts: an unreadable file's marker
    return len(parts) == 3 and parts[0] == str(stat.st_ino) and parts[1] == str(stat.st_ctime_ns)


def _hour(name: str) -> int:
    """The file's hour of the day (of VERIFY_HOURS), picked by a hash of its path."""
    return zlib.crc32(name.encode("utf-8", "surrogateescape")) % VERIFY_HOURS


def _verify_now(name: str, stat: os.stat_result, now: float) -> bool:
    """Hash this file's head and tail on this tick? Always when its mtime is within the last
    RECENT_SECONDS; otherwise in one hour of every VERIFY_HOURS (the hour picked by a hash of
    its path), so a tick over a year of hourly files stats them but hashes about 1/24 of them,
    and a rewrite that keeps size, mtime and ctime (a file system whose ctime says little) is
    still noticed within a day."""
    return now - stat.st_mtime < RECENT_SECONDS or _hour(name) == _hour_of_day(now)


def _hour_of_day(now: float) -> int:
    """The hour of the day (of VERIFY_HOURS) whose files are looked at in full at `now`."""
    return int(now // 3600) % VERIFY_HOURS


def _settled(row: Row[Any] | None, stat: os.stat_result, print_: str) -> bool:
    """The file is not being written: unchanged since the last read, or untouched a while."""
    unchanged = row is not None and row.size == stat.st_size and row.fingerprint == print_
    return unchanged or time.time() - stat.st_mtime > SETTLE_SECONDS


LOAD_TOGETHER = True  # small files of a batch are loaded together (False: one by one, as before)
BATCH_ROWS = 200_000  # rows loaded before a batch's counts and hooks run and it commits
BIG_FILE_BYTES = 4 << 20  # a file this big is aggregated on its own (earlier files flushed first)


def batch_rows() -> int:
    """Rows per batch of files; `MONITOR_INGEST_BATCH_ROWS` overrides it (1: a file per batch)."""
    return max(int(os.environ.get("MONITOR_INGEST_BATCH_ROWS", BATCH_ROWS)), 1)


class BatchFailed(Exception):
    """A batch of files could not be committed (raised from the cause): `consumed` files of
    the list were in it, `path` is the file being read (or the first one)."""

    def __init__(self, consumed: int, path: Path) -> None:
        super().__init__(str(path))
        self.consumed, self.path = consumed, path


@dataclass
class _Staged:
    """A small file read whole, waiting to be loaded with the other files of its batch."""

    slot: int  # its place in the batch's outcomes
    path: Path
    row: Row[Any] | None
    stat: os.stat_result
    digest: str
    print_: str
    chunks: list[Chunk]
    state: ReadState

    @property
    def rows(self) -> int:
        return sum(len(chunk.frame) for chunk in self.chunks)


def ingest_files(engine: Engine, ctx: ModelContext, kind: str, paths: Sequence[str | Path], *, as_of: int | None,
                 max_rows: int | None = None, on_file: Callable[[FileOutcome], None] | None = None,
                 full_scan: bool = True, recent: RecentPredictions | None = None) -> list[FileOutcome]:
    """Read files from the front of `paths` in one transaction until `max_rows` rows are
    loaded (at least one file); return their outcomes, in order.

    With `full_scan` False (the scheduler's ticks after its first) a settled file is not even
    stat'ed outside its hour of the day (`_ledger`'s `passed_over`): a tick over a year of
    hourly files then costs a listing and a few hundred stats, not 8,760 of each kind.

    Small files are read whole first, then loaded together (`monitor.ingest.files`: one
    validation, lookup and insert per batch, not per file), each with its own ledger row and
    rejects; should that fail, they are loaded one by one, each under a savepoint, so a file
    that fails leaves nothing behind while the others of the batch go in. A big file is
    loaded by itself in chunks. Ledger rows, rejects and stored rows commit together with the
    batch's counts and hooks (`Pending.flush`), so a crash loses the whole batch and the next
    tick reads its files again. Raises BatchFailed when the batch cannot commit.

    `recent`: the predictions of the caller's sweep so far; a batch of predictions adds its
    rows once it has committed, a batch of labels joins with them first."""
    limit = max_rows if max_rows is not None else batch_rows()
    outcomes: list[FileOutcome | None] = []
    current: str | Path = paths[0] if paths else Path()
    now = time.time()
    settled_before, hour = now - RECENT_SECONDS, _hour_of_day(now)
    staged: list[_Staged] = []
    staged_rows = 0  # rows of `staged` (summed as files are staged, not at every file)

    def done(slot: int, outcome: FileOutcome) -> None:
        outcomes[slot] = outcome
        if on_file is not None:  # progress: read, to be committed with the batch
            on_file(outcome)

    try:
        with engine.begin() as conn:
            ingest_lock(conn, ctx.model_id)  # queue behind concurrent writers of this model (API)
            known, passed_over = _ledger(conn, ctx, kind, passed_over=None if full_scan else (settled_before, hour))
            pending = Pending(recent=recent)
            noted = False
            for path in paths:
                if pending.rows + staged_rows >= limit:
                    break
                name = os.fspath(path)
                if name in passed_over:  # settled, outside its hour: not even a stat (bounded scan)
                    outcome = FileOutcome(name, kind, "unchanged", _PASSED_OVER)
                    outcomes.append(outcome)
                    if on_file is not None:
                        on_file(outcome)
                    continue
                current = name
                slot = len(outcomes)
                outcomes.append(None)
                row = known.get(name)
                stat: os.stat_result | None = None
                try:
                    stat = os.stat(name)
                    if not stat_module.S_ISREG(stat.st_mode):  # a directory the glob matched
                        done(slot, FileOutcome(name, kind, "unchanged", IngestResult(rejects=_NO_REJECTS)))
                        continue
                    wanted, digest, print_ = _needs_read(row, stat, name, as_of,
                                                         verify=_verify_now(name, stat, now))
                    if wanted:
                        digest = digest or sha256_of(Path(name))
                except FileNotFoundError:  # removed since it was listed
                    done(slot, FileOutcome(name, kind, "unchanged", IngestResult(rejects=_NO_REJECTS)))
                    continue
                except OSError as error:  # a symlink loop, no permission: this file only fails
                    done(slot, _unopenable(conn, ctx, kind, Path(name), row, stat, error))
                    continue
                assert stat is not None
                if not wanted:
                    if digest is not None and row is not None:  # touched but identical: remember the new mtime
                        conn.execute(update(FILES).where(FILES.c.id == row.id).values(mtime=stat.st_mtime,
                                                                                      fingerprint=print_))
                    done(slot, FileOutcome(name, kind, "unchanged", IngestResult(rejects=_NO_REJECTS)))
                    continue
                path = Path(name)
                assert digest is not None  # hashed above, when wanted
                if not noted:  # raw rows stored under the lock: stream consumers check against them
                    note_writes(conn, ctx.model_id, None)
                    noted = True
                if stat.st_size <= BIG_FILE_BYTES:
                    read = _read_whole(conn, ctx, kind, path, row, stat, digest, print_,
                                       max_rows=max(limit, BATCH_ROWS))
                    if isinstance(read, FileOutcome):
                        done(slot, read)
                        continue
                    if read is not None:
                        staged.append(_Staged(slot, path, row, stat, digest, print_, *read))
                        staged_rows += staged[-1].rows
                        continue
                    # more rows than a batch from few bytes (compressed): loaded alone, in chunks
                for slot_, outcome in _load_staged(conn, ctx, kind, staged, as_of, pending, limit):
                    done(slot_, outcome)
                staged, staged_rows = [], 0
                done(slot, _ingest_one(conn, ctx, kind, path, as_of, pending, limit, row, stat, digest, print_,
                                       alone=True))
            for slot_, outcome in _load_staged(conn, ctx, kind, staged, as_of, pending, limit):
                done(slot_, outcome)
            staged = []
            pending.flush(conn, ctx)
    except Exception as error:
        raise BatchFailed(max(len(outcomes), 1), Path(current)) from error
    if recent is not None:
        recent.add(pending.written)
    return [outcome for outcome in outcomes if outcome is not None]


def _read_whole(conn: Connection, ctx: ModelContext, kind: str, path: Path, row: Row[Any] | None,
                stat: os.stat_result, digest: str, print_: str, *, max_rows: int
                ) -> tuple[list[Chunk], ReadState] | FileOutcome | None:
    """A small file's chunks (read before anything of it is stored), or its failed outcome;
    None when it holds more than `max_rows` rows (a small compressed file can hold millions:
    it is not kept whole, but loaded on its own in chunks, as a big file is)."""
    strings, keep = input_columns(ctx, kind)
    state = ReadState()
    chunks: list[Chunk] = []
    rows = 0
    reading: Iterator[Chunk] | None = None
    try:
        reading = read_chunks(path, strings, keep=keep, limits=ctx.config.limits,
                              complete_only=not _settled(row, stat, print_), state=state)
        for chunk in reading:
            chunks.append(chunk)
            rows += len(chunk.frame) + len(chunk.rejects)
            if rows > max_rows:
                return None
    except UnreadableFile as error:
        return _failed(conn, ctx, kind, path, row, stat, digest, print_, error)
    except Exception as error:  # noqa: BLE001 - one bad file never stops the others
        log.exception("ingesting %s failed", path)
        return _failed(conn, ctx, kind, path, row, stat, digest, print_, _unexpected(path, error), logged=True)
    finally:
        closing = getattr(reading, "close", None)  # a generator: its file is closed at once when
        if closing is not None:  # its reading stops early
            closing()
    return chunks, state


def _load_staged(conn: Connection, ctx: ModelContext, kind: str, staged: list[_Staged], as_of: int | None,
                 pending: Pending, limit: int) -> list[tuple[int, FileOutcome]]:
    """Load the staged files together under one savepoint; if that fails (other than the
    database going away), one by one, each under its own."""
    if not staged:
        return []
    if not LOAD_TOGETHER:
        return _one_by_one(conn, ctx, kind, staged, as_of, pending, limit)
    mine = pending.child()
    try:
        with conn.begin_nested():
            file_ids = _ledger_rows(conn, ctx, kind, [(s.path, s.row) for s in staged])
            frames = [_frame(s.chunks) for s in staged]
            loader = load_prediction_files if kind == "predictions" else load_label_files
            results = loader(conn, ctx, frames, file_ids, as_of=as_of, pending=mine)
            conn.execute(delete(RejectedRow).where(RejectedRow.model_id == ctx.model_id, RejectedRow.kind == kind,
                                                   RejectedRow.source.in_([str(s.path) for s in staged])))
            for s, result in zip(staged, results, strict=True):
                for chunk in s.chunks:
                    if len(chunk.rejects):  # rows the reader could not parse
                        result.add(IngestResult(read=len(chunk.rejects), rejected=len(chunk.rejects),
                                                rejects=chunk.rejects))
            outcomes = _files_done(conn, ctx, kind, staged, file_ids, results)
            out = [(s.slot, outcome) for s, outcome in zip(staged, outcomes, strict=True)]
    except DBAPIError as error:
        if isinstance(error, OperationalError) or error.connection_invalidated:
            raise  # the database is gone: the batch cannot commit
        log.info("batch of %d files failed (%s: %s): loading them one by one", len(staged), type(error).__name__,
                 error, exc_info=True)
        return _one_by_one(conn, ctx, kind, staged, as_of, pending, limit)
    except Exception as error:  # noqa: BLE001 - a bad file is found one by one
        log.info("batch of %d files failed (%s: %s): loading them one by one", len(staged), type(error).__name__,
                 error, exc_info=True)
        return _one_by_one(conn, ctx, kind, staged, as_of, pending, limit)
    pending.extend(mine)
    return out


def _one_by_one(conn: Connection, ctx: ModelContext, kind: str, staged: list[_Staged], as_of: int | None,
                pending: Pending, limit: int) -> list[tuple[int, FileOutcome]]:
    return [(s.slot, _ingest_one(conn, ctx, kind, s.path, as_of, pending, limit, s.row, s.stat, s.digest,
                                 s.print_, read=(s.chunks, s.state)))
            for s in staged]


def _frame(chunks: list[Chunk]) -> pd.DataFrame:
    frames = [chunk.frame for chunk in chunks if len(chunk.frame)]
    if not frames:
        return pd.DataFrame()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def ingest_file(engine: Engine, ctx: ModelContext, kind: str, path: Path, *, as_of: int | None) -> FileOutcome:
    """Read one file if it needs reading, in a transaction of its own."""
    try:
        return ingest_files(engine, ctx, kind, [path], as_of=as_of)[0]
    except BatchFailed as failed:
        raise failed.__cause__ or failed from None


def _ledger(conn: Connection, ctx: ModelContext, kind: str, *, passed_over: tuple[float, int] | None = None
            ) -> tuple[dict[str, Row[Any]], set[str]]:
    """The model's ledger rows of `kind` by path, read once per batch: a tick over a year of
    hourly files then costs one query, not one per file (the lock above keeps them current).

    With `passed_over` (settled_before, hour: a bounded scan), the files a tick passes over
    (read whole, `done`, with an mtime at `settled_before` or older, outside their `hour` of the
    day) come back as a set of names, not rows: a year of hourly files is 8,760 names to
    fetch, not 8,760 rows with their hashes."""
    c = FILES.c  # the columns a tick reads (not the error text nor the timestamps)
    columns = (c.id, c.path, c.size, c.mtime, c.sha256, c.fingerprint, c.status, c.visible_until, c.rows_accepted)
    mine = (c.model_id == ctx.model_id, c.kind == kind)
    if passed_over is None:
        rows = list(conn.execute(select(*columns).where(*mine)).all())
        return {row.path: cast(Row[Any], row) for row in rows}, set()
    settled_before, hour = passed_over
    settled = and_(c.status == "done", c.mtime.is_not(None), c.mtime <= settled_before)
    names = [name for (name,) in fetch_tuples(conn, select(c.path).where(*mine, settled))]
    skip = {name for name in names if _hour(name) != hour}
    due = [name for name in names if name not in skip]  # settled, and this is their hour
    rows = list(conn.execute(select(*columns).where(*mine, not_(settled))).all())
    for start in range(0, len(due), IN_PATHS):
        rows.extend(conn.execute(select(*columns).where(*mine, c.path.in_(due[start:start + IN_PATHS]))).all())
    return {row.path: cast(Row[Any], row) for row in rows}, skip


def _ingest_one(conn: Connection, ctx: ModelContext, kind: str, path: Path, as_of: int | None,
                pending: Pending, limit: int, row: Row[Any] | None, stat: os.stat_result, digest: str,
                print_: str, *, read: tuple[list[Chunk], ReadState] | None = None,
                alone: bool = False) -> FileOutcome:
    """Load one file (its chunks `read` already, or read here) under a savepoint of its own;
    a big one (or one with more rows than a batch, `alone`) aggregates on its own."""
    if (alone or stat.st_size > BIG_FILE_BYTES) and (pending.rows or pending.labels):
        pending.flush(conn, ctx)  # a big file aggregates on its own, bounded by `limit` (below)
    mine = pending.child()
    try:
        with conn.begin_nested():
            file_id = _ledger_row(conn, ctx, kind, path, row)
            reading = read[1] if read is not None else ReadState()
            result = _read_into(conn, ctx, kind, path, file_id, as_of, mine,
                                flush_at=None if pending.rows or pending.labels else limit,
                                complete_only=not _settled(row, stat, print_), state=reading,
                                chunks=read[0] if read is not None else None)
            outcome = _file_done(conn, ctx, kind, path, row, stat, digest, print_, file_id, result, reading)
    except UnreadableFile as error:
        return _failed(conn, ctx, kind, path, row, stat, digest, print_, error)
    except DBAPIError as error:
        if isinstance(error, OperationalError) or error.connection_invalidated:
            raise  # the database is gone: the batch cannot commit
        log.error("ingesting %s failed: %s", path, str(error).strip().splitlines()[0] if str(error).strip() else error)
        return FileOutcome(str(path), kind, "failed", IngestResult(), error=f"{path}: {type(error).__name__}")
    except Exception as error:  # noqa: BLE001 - one bad file never stops the others
        log.exception("ingesting %s failed", path)
        # recorded (its savepoint is gone, the batch's transaction is not): skipped until it
        # changes, not read again with the same traceback on every tick
        return _failed(conn, ctx, kind, path, row, stat, digest, print_, _unexpected(path, error), logged=True)
    pending.extend(mine)  # the file went in: its rows are aggregated with the batch
    return outcome


def _file_done(conn: Connection, ctx: ModelContext, kind: str, path: Path, row: Row[Any] | None,
               stat: os.stat_result, digest: str, print_: str, file_id: int, result: IngestResult,
               reading: ReadState, *, rejects_cleared: bool = False) -> FileOutcome:
    """A loaded file's rejects (replacing earlier ones) and ledger row."""
    status, values = _done_values(row, stat, digest, print_, result, reading)
    if not rejects_cleared:
        conn.execute(delete(RejectedRow).where(RejectedRow.model_id == ctx.model_id,
                                               RejectedRow.kind == kind, RejectedRow.source == str(path)))
    store_rejects(conn, ctx, kind, str(path), file_id, result.rejects)
    conn.execute(update(FILES).where(FILES.c.id == file_id).values(**values))
    return FileOutcome(str(path), kind, status, result)


def _done_values(row: Row[Any] | None, stat: os.stat_result, digest: str, print_: str, result: IngestResult,
                 reading: ReadState) -> tuple[str, dict[str, Any]]:
    """(status, ledger values) of a loaded file."""
    if reading.tail_held:  # the unterminated last line: read when the file settles
        result.waiting += 1
    status = "partial" if result.waiting else "done"
    return status, dict(
        size=stat.st_size, mtime=stat.st_mtime, sha256=digest, fingerprint=print_, status=status, error=None,
        rows_read=result.read, rows_accepted=_accepted_total(row, result, digest),
        rows_rejected=result.rejected, rows_waiting=result.waiting,
        visible_until=None if reading.tail_held else result.next_visible,
        ingested_at=utcnow())


def _files_done(conn: Connection, ctx: ModelContext, kind: str, staged: list[_Staged], file_ids: list[int],
                results: list[IngestResult]) -> list[FileOutcome]:
    """`_file_done` of a batch's loaded files (their earlier rejects already deleted): the
    rejects of each, then every ledger row in one executemany (not a statement per file)."""
    outcomes, params = [], []
    for s, file_id, result in zip(staged, file_ids, results, strict=True):
        status, values = _done_values(s.row, s.stat, s.digest, s.print_, result, s.state)
        store_rejects(conn, ctx, kind, str(s.path), file_id, result.rejects)
        params.append({"file_id_": file_id, **{f"{name}_": value for name, value in values.items()}})
        outcomes.append(FileOutcome(str(s.path), kind, status, result))
    columns = [name for name in params[0] if name != "file_id_"]
    conn.execute(update(FILES).where(FILES.c.id == bindparam("file_id_"))
                 .values({name[:-1]: bindparam(name) for name in columns}), params)
    return outcomes


def _unexpected(path: Path, error: Exception) -> UnreadableFile:
    """An error no reader or loader expected, as a file's failure (its type and message)."""
    return UnreadableFile(f"{path}: {type(error).__name__}: {error}")


def _unopenable(conn: Connection, ctx: ModelContext, kind: str, path: Path, row: Row[Any] | None,
                stat: os.stat_result | None, error: OSError) -> FileOutcome:
    """A file that cannot be stat'ed or opened (a symlink loop, no permission): recorded as
    failed, with what could be stat'ed; the other files of its batch go on. While the same
    error persists it is said once, not on every tick."""
    message = f"{path}: cannot be read: {error.strerror or error}"
    marker = f"unreadable:{error.errno}"  # in place of a fingerprint: the same error as last time?
    if row is not None and row.status == "failed" and row.fingerprint == marker:
        log.debug("%s (still)", message)
        return FileOutcome(str(path), kind, "unchanged", IngestResult(rejects=_NO_REJECTS))
    return _failed(conn, ctx, kind, path, row, stat, None, marker, UnreadableFile(message))


def _failed(conn: Connection, ctx: ModelContext, kind: str, path: Path, row: Row[Any] | None,
            stat: os.stat_result | None, digest: str | None, print_: str, error: UnreadableFile, *,
            logged: bool = False) -> FileOutcome:
    """Record the file as failed with its error (and what could be stat'ed and hashed of it)."""
    if not logged:
        log.warning("%s", error)
    file_id = _ledger_row(conn, ctx, kind, path, row)
    conn.execute(update(FILES).where(FILES.c.id == file_id).values(
        size=stat.st_size if stat else None, mtime=stat.st_mtime if stat else None, sha256=digest,
        fingerprint=print_, status="failed", error=str(error),
        rows_read=0, rows_accepted=0, rows_rejected=0, rows_waiting=0, ingested_at=utcnow()))
    return FileOutcome(str(path), kind, "failed", IngestResult(), error=str(error))


def _accepted_total(row: Row[Any] | None, result: IngestResult, digest: str) -> int:
    """Rows of this file stored so far (earlier partial reads plus this one)."""
    earlier = row.rows_accepted if row is not None and row.sha256 == digest else 0
    return int(earlier or 0) + result.accepted


def _ledger_rows(conn: Connection, ctx: ModelContext, kind: str, files: list[tuple[Path, Row[Any] | None]]
                 ) -> list[int]:
    """`_ledger_row` of several files: the new ones inserted in one executemany that returns
    their ids in order, where the dialect can (SQLite 3.35+, PostgreSQL), else one by one."""
    ids = [int(row.id) if row is not None else 0 for _, row in files]
    new = [i for i, (_, row) in enumerate(files) if row is None]
    if len(new) < 2 or not conn.dialect.insert_executemany_returning_sort_by_parameter_order:
        for i in new:
            ids[i] = _ledger_row(conn, ctx, kind, files[i][0], None)
        return ids
    now = utcnow()
    inserted = conn.execute(insert(FILES).returning(FILES.c.id, sort_by_parameter_order=True), [
        {"model_id": ctx.model_id, "kind": kind, "path": str(files[i][0]), "status": "reading", "ingested_at": now}
        for i in new]).scalars().all()
    for i, file_id in zip(new, inserted, strict=True):
        ids[i] = int(file_id)
    return ids


def _ledger_row(conn: Connection, ctx: ModelContext, kind: str, path: Path, row: Row[Any] | None) -> int:
    if row is not None:
        return int(row.id)
    return inserted_id(conn.execute(insert(FILES).values(model_id=ctx.model_id, kind=kind, path=str(path),
                                                         status="reading", ingested_at=utcnow())))


def _read_into(conn: Connection, ctx: ModelContext, kind: str, path: Path, file_id: int,
               as_of: int | None, pending: Pending, *, flush_at: int | None, complete_only: bool,
               state: ReadState, chunks: list[Chunk] | None = None) -> IngestResult:
    """Load the file's chunks; their counts wait in `pending`, flushed (inside the file's
    savepoint) once `flush_at` rows wait, so memory stays bounded however big the file. Only
    when nothing of earlier files waits: their aggregation must not be undone with this file."""
    strings, keep = input_columns(ctx, kind)
    loader = load_predictions if kind == "predictions" else load_labels
    total = IngestResult()
    if chunks is None:
        chunks_in: Iterable[Chunk] = read_chunks(path, strings, keep=keep, limits=ctx.config.limits,
                                                 complete_only=complete_only, state=state)
    else:
        chunks_in = chunks
    for chunk in chunks_in:
        total.add(loader(conn, ctx, chunk.frame, as_of=as_of, file_id=file_id, pending=pending))
        if len(chunk.rejects):  # rows the reader could not parse
            total.add(IngestResult(read=len(chunk.rejects), rejected=len(chunk.rejects), rejects=chunk.rejects))
        if flush_at is not None and pending.rows >= flush_at:
            pending.flush(conn, ctx)
    return total


def input_columns(ctx: ModelContext, kind: str) -> tuple[list[str], Callable[[str], bool]]:
    """(columns read as exact text, which columns to keep) for a model's files of `kind`:
    a column the model does not use is dropped while reading."""
    if kind == "predictions":
        source = ctx.config.predictions
        strings = [source.id, source.prediction, source.model_version, *ctx.segments]
        wanted = {*strings, source.timestamp, *ctx.features}
        prefix = source.score_prefix
        scores = {f"{prefix}{c}" for c in ctx.classes}
        return strings, lambda column: column in wanted or (column in scores if scores else column.startswith(prefix))
    labels = ctx.config.labels
    wanted = {labels.id, labels.label, labels.timestamp}
    return [labels.id, labels.label], wanted.__contains__

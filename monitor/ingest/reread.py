"""`monitor ingest --reread PATTERN`: read again files the ledger holds as read.

A file is read again only when its content changes (docs/deployment.md, "Changed files"). But
a file's rows can be rejected for a reason the user fixes elsewhere: an `earliest_timestamp`
or limit raised in the config, or an upgrade whose reader handles the file better. Marking
its ledger row (no sha256, fingerprint or mtime) makes the next tick read it as a changed
file: rows already stored are not counted twice, the rejects are replaced by the new read's.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from monitor.ingest.ledger import FILES, IN_PATHS
from monitor.store.models import MonitoredModel


@dataclass(frozen=True)
class Marked:
    pattern: str  # as given
    matched: str  # the absolute pattern the ledger's paths were matched with
    files: int


def absolute_pattern(pattern: str, cwd: str) -> str:
    """A pattern as the ledger's paths are written: absolute and normalised (a relative one is
    taken from `cwd`, as a shell would)."""
    return os.path.normpath(pattern if os.path.isabs(pattern) else os.path.join(cwd, pattern))


def mark_for_reread(conn: Connection, models: Sequence[str], patterns: Sequence[str], cwd: str) -> list[Marked]:
    """Mark the ledger rows of `models` whose path matches a pattern (fnmatch: `*` also
    crosses `/`); one `Marked` per pattern, in order."""
    c = FILES.c
    rows = conn.execute(select(c.id, c.path).join(MonitoredModel, MonitoredModel.id == c.model_id)
                        .where(MonitoredModel.name.in_(list(models)))).all()
    marked, ids = [], set()
    for pattern in patterns:
        full = absolute_pattern(pattern, cwd)
        hits = {row.id for row in rows if fnmatch.fnmatchcase(row.path, full)}
        marked.append(Marked(pattern, full, len(hits)))
        ids |= hits
    chosen = sorted(ids)
    for start in range(0, len(chosen), IN_PATHS):  # bounded IN lists (SQLite's variable limit)
        conn.execute(update(FILES).where(c.id.in_(chosen[start:start + IN_PATHS]))
                     .values(sha256=None, fingerprint=None, mtime=None))
    return marked

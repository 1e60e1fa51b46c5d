"""Writers of one model that overlap (issue 17): the log that lets a stream consumer store its
raw rows outside the model's ingest lock.

A consumer's batch runs in two phases in one transaction. Phase one, with no lock: validate,
look up the stored ids, insert the new predictions and labels. Phase two, under the model's
`ingest_lock` until the commit: the counts, the hooks and the label join. Several consumers
of one model thus store rows side by side and queue only for the short phase two.

What the lock guarded in phase one is uniqueness by prediction id. On PostgreSQL the raw
tables are partitioned by time, so their primary keys include the time: two transactions
that store the same id with other times (a conflicting duplicate) both succeed, and each
would count it. `ingest_commits` closes that gap. Each writer, under the lock, appends one
row: a sequence number and the 64-bit hashes of the ids it stored (NULL: a writer that did not
list them, such as a file batch or an API write). A consumer notes the last sequence before
its phase-one lookups (`writes_seen`); under the lock (`overlaps`) it reads the rows appended
since then (the writers it may not have seen) and looks for its own ids among them. A hash
in common means another writer stored the same id meanwhile: the batch is rolled back and
retried, and the retry sees that row. A NULL row, or rows pruned away, mean it cannot tell:
then it looks its ids up in the tables themselves (`recheck`).

SQLite keeps one writer at a time (its write transactions are exclusive), so none of this
runs there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, ForeignKey, LargeBinary, Table, delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base
from monitor.store.bulk import select_in
from monitor.store.models import Label, Prediction
from monitor.timeutil import now_epoch

# two hash keys (16 bytes each): the same id stored as a prediction and as a label hashes apart
HASH_KEYS = {"predictions": "monitor-predicts", "labels": "monitor-labelled"}
KEEP = 500  # rows kept per model; an older phase one falls back to `recheck`
PRUNE_EVERY = 50  # appends between two prunes


class IngestCommit(Base):
    """One committed write of a model's raw rows (PostgreSQL; migration 0014)."""

    __tablename__ = "ingest_commits"

    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    committed_at: Mapped[int] = mapped_column(BigInteger)
    id_hashes: Mapped[bytes | None] = mapped_column(LargeBinary)  # sorted int64; NULL: not listed


TABLE = cast(Table, IngestCommit.__table__)  # a mapped class's __table__ is declared as FromClause


class Overlap(Exception):
    """Another writer stored one of the batch's ids while the batch stored it too: roll back
    and retry (the retry sees the other row)."""


def _active(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def id_hashes(predictions: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Sorted unique 64-bit hashes of prediction ids stored as predictions and as labels (the
    same id in both tables hashes differently)."""
    hashed = [pd.util.hash_pandas_object(pd.Series(ids, dtype=object), index=False, hash_key=HASH_KEYS[kind])
              .to_numpy().view(np.int64) for kind, ids in (("predictions", predictions), ("labels", labels)) if len(ids)]
    return np.unique(np.concatenate(hashed)) if hashed else np.empty(0, dtype=np.int64)


def writes_seen(conn: Connection, model_id: int) -> int | None:
    """The model's last sequence number, read before the phase-one lookups (None on SQLite)."""
    if not _active(conn):
        return None
    last = conn.execute(select(func.max(TABLE.c.seq)).where(TABLE.c.model_id == model_id)).scalar()
    return int(last or 0)


def overlaps(conn: Connection, model_id: int, since: int | None, hashes: np.ndarray) -> bool | None:
    """Under the lock: True if a writer appended since `since` stored one of `hashes`, False if
    none did, None if it cannot tell (a writer that did not list its ids, or pruned rows)."""
    if since is None or not len(hashes):
        return False
    rows = conn.execute(select(TABLE.c.seq, TABLE.c.id_hashes)
                        .where(TABLE.c.model_id == model_id, TABLE.c.seq > since)
                        .order_by(TABLE.c.seq)).fetchall()
    if not rows:
        return False
    if int(rows[0][0]) != since + 1:
        return None  # pruned: some writers since `since` are gone from the log
    unknown = False
    for _, blob in rows:
        if blob is None:
            unknown = True
        elif np.isin(hashes, np.frombuffer(blob, dtype=np.int64), assume_unique=True).any():
            return True
    return None if unknown else False


def note_writes(conn: Connection, model_id: int, hashes: np.ndarray | None) -> None:
    """Under the lock: append this transaction's row (`hashes` None: ids not listed). Every
    writer that stores raw rows of the model outside a consumer's phase one must call it, or
    consumers could miss its ids: file batches (`monitor.ingest.ledger`), inbox drains
    (`monitor.ingest.inbox.aggregate_rows`) and `?wait=true` writes (`monitor.api.routes`)."""
    if not _active(conn):
        return
    seq = int(conn.execute(select(func.coalesce(func.max(TABLE.c.seq), 0))
                           .where(TABLE.c.model_id == model_id)).scalar_one()) + 1
    blob = None if hashes is None else np.ascontiguousarray(hashes, dtype=np.int64).tobytes()
    conn.execute(insert(TABLE).values(model_id=model_id, seq=seq, committed_at=now_epoch(), id_hashes=blob))
    if seq % PRUNE_EVERY == 0:
        conn.execute(delete(TABLE).where(TABLE.c.model_id == model_id, TABLE.c.seq <= seq - KEEP))


def recheck(conn: Connection, model_id: int, predictions: list[str], labels: list[str]) -> bool:
    """Under the lock, when `overlaps` cannot tell: True if one of the ids this transaction
    stored has another row too (stored by a writer that committed meanwhile)."""
    for model, ids, time_column in ((Prediction, predictions, "ts"), (Label, labels, "label_ts")):
        if not ids:
            continue
        rows = select_in(conn, cast(Table, model.__table__), key_column="prediction_id", keys=ids,
                         columns=[time_column], equal={"model_id": model_id})
        if len(rows) > len(set(ids)):
            return True
    return False

"""estimation scores packed as binary (issue 15)

`estimation_scores.scores` held each prediction's scores as comma-separated decimal text:
formatting it was the largest single cost of storing a prediction (about a tenth of a
many-small-files ingest) and parsing it the largest of a refit. It now holds them packed,
one big-endian float64 per class in the model's order (`monitor.estimation.recalibrate.
pack_scores`), exact like the text was. Existing rows are converted in place: on PostgreSQL
in SQL, by a temporary function built on `float8send` (which gives exactly that packing); on
SQLite in Python, in chunks. The downgrade converts back to the text the old code wrote.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import sqlalchemy as sa

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PACKED = np.dtype(">f8")
CHUNK = 50_000

PACK_FUNCTION = """
CREATE FUNCTION monitor_pack_scores_0016(t text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(string_agg(float8send(v::float8), ''::bytea ORDER BY i), ''::bytea)
  FROM unnest(string_to_array(t, ',')) WITH ORDINALITY AS parts(v, i)
$$
"""


def _pack(text: str) -> bytes:
    return np.array(text.split(","), dtype=np.float64).astype(PACKED).tobytes() if text else b""


def _unpack(packed: bytes) -> str:
    # the old writer's format: json.dumps of the floats (their shortest round-trip repr)
    return ",".join(json.dumps(v) for v in np.frombuffer(packed, dtype=PACKED).astype(np.float64).tolist())


def _rewrite(convert: Callable) -> None:  # type: ignore[type-arg]
    """Convert every row's `scores` with `convert`, in chunks by primary key (SQLite both
    ways; PostgreSQL on the way down, from the hex text its ALTER leaves)."""
    conn = op.get_bind()
    table = sa.table("estimation_scores", sa.column("model_id"), sa.column("prediction_id"), sa.column("scores"))
    last: tuple = (-1, "")
    while True:
        rows = conn.execute(
            sa.select(table.c.model_id, table.c.prediction_id, table.c.scores)
            .where(sa.tuple_(table.c.model_id, table.c.prediction_id) > sa.tuple_(*last))
            .order_by(table.c.model_id, table.c.prediction_id).limit(CHUNK)).all()
        if not rows:
            return
        conn.execute(table.update().where(table.c.model_id == sa.bindparam("m"),
                                          table.c.prediction_id == sa.bindparam("p"))
                     .values(scores=sa.bindparam("s")),
                     [{"m": m, "p": p, "s": convert(s)} for m, p, s in rows])
        last = (rows[-1][0], rows[-1][1])


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PACK_FUNCTION)
        op.execute("ALTER TABLE estimation_scores ALTER COLUMN scores TYPE bytea "
                   "USING monitor_pack_scores_0016(scores)")
        op.execute("DROP FUNCTION monitor_pack_scores_0016(text)")
        return
    # values first: the table copy of batch mode CASTs them to the new type as they are
    _rewrite(lambda s: _pack(s) if isinstance(s, str) else s)
    with op.batch_alter_table("estimation_scores") as batch:
        batch.alter_column("scores", type_=sa.LargeBinary(), existing_type=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE estimation_scores ALTER COLUMN scores TYPE text USING encode(scores, 'hex')")
        _rewrite(lambda s: _unpack(bytes.fromhex(s)))
        return
    _rewrite(lambda s: _unpack(s) if isinstance(s, bytes) else s)
    with op.batch_alter_table("estimation_scores") as batch:
        batch.alter_column("scores", type_=sa.Text(), existing_type=sa.LargeBinary(), existing_nullable=False)

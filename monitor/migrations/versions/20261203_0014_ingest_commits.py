"""the log of a model's committed raw-row writes (issue 17)

`ingest_commits`: one row per transaction that stored raw predictions or labels under the
model's ingest lock: a sequence number and the hashes of the ids it stored (NULL when the
writer did not list them). Stream consumers store their rows before they take the lock and
check this log under it for ids another writer stored meanwhile (monitor/ingest/writers.py).
Written on PostgreSQL only; the table exists on SQLite too, empty, so both schemas match.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_commits",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("committed_at", sa.BigInteger(), nullable=False),
        sa.Column("id_hashes", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["monitored_models.id"],
                                name=op.f("fk_ingest_commits_model_id_monitored_models"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "seq", name=op.f("pk_ingest_commits")),
    )


def downgrade() -> None:
    op.drop_table("ingest_commits")

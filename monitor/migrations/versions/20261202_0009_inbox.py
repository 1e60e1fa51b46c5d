"""raw write inbox for HTTP and stream micro-batches (issues 15 and 17)

`inbox`: one accepted raw record (JSON) per row, waiting for its micro-batch aggregation
(monitor/ingest/inbox.py); rows leave it in the transaction that aggregates them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["monitored_models.id"],
                                name=op.f("fk_inbox_model_id_monitored_models"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
    )
    op.create_index("ix_inbox_model_id", "inbox", ["model_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbox_model_id", table_name="inbox")
    op.drop_table("inbox")

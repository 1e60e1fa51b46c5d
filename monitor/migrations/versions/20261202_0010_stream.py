"""stream consumers: their position and lag, for /metrics and the Data page (issue 17)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_consumers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("ack_pending", sa.BigInteger(), nullable=False),
        sa.Column("lag_seconds", sa.Float(), nullable=True),
        sa.Column("last_batch_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("batches", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("redelivered", sa.BigInteger(), nullable=False),
        sa.Column("predictions", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.BigInteger(), nullable=False),
        sa.Column("skipped", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["monitored_models.id"],
                                name=op.f("fk_stream_consumers_model_id_monitored_models"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_consumers")),
    )
    with op.batch_alter_table("stream_consumers", schema=None) as batch_op:
        batch_op.create_index("ux_stream_consumers_model_consumer", ["model_id", "stream", "consumer"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("stream_consumers", schema=None) as batch_op:
        batch_op.drop_index("ux_stream_consumers_model_consumer")
    op.drop_table("stream_consumers")

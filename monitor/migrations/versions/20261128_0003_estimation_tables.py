"""estimation tables: calibrators and expected counts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "estimation_calibrators",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=True),
        sa.Column("ece_before", sa.Float(), nullable=True),
        sa.Column("ece_after", sa.Float(), nullable=True),
        sa.Column("badly_calibrated", sa.Boolean(), nullable=False),
        sa.Column("n_reference", sa.BigInteger(), nullable=False),
        sa.Column("n_positive", sa.BigInteger(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["monitored_models.id"],
            name=op.f("fk_estimation_calibrators_model_id_monitored_models"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "class_name", name=op.f("pk_estimation_calibrators")),
    )
    op.create_table(
        "expected_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(length=200), nullable=False),
        sa.Column("n_scored", sa.BigInteger(), nullable=False),
        sa.Column("n_predicted", sa.BigInteger(), nullable=False),
        sa.Column("exp_tp", sa.Float(), nullable=False),
        sa.Column("exp_fn", sa.Float(), nullable=False),
        sa.Column("exp_fp", sa.Float(), nullable=False),
        sa.Column("exp_tn", sa.Float(), nullable=False),
        sa.Column("var_tp", sa.Float(), nullable=False),
        sa.Column("var_fn", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model_id", "bucket_start", "slice_id", "class_name", name=op.f("pk_expected_counts")
        ),
    )


def downgrade() -> None:
    op.drop_table("expected_counts")
    op.drop_table("estimation_calibrators")

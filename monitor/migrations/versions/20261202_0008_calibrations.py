"""estimation calibrations fit on matured labels (issue 18)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "estimation_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("fit_start", sa.BigInteger(), nullable=True),
        sa.Column("fit_end", sa.BigInteger(), nullable=True),
        sa.Column("as_of", sa.BigInteger(), nullable=True),
        sa.Column("n_labels", sa.BigInteger(), nullable=False),
        sa.Column("n_positive", sa.JSON(), nullable=False),
        sa.Column("maps", sa.JSON(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["monitored_models.id"],
            name=op.f("fk_estimation_calibrations_model_id_monitored_models"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_estimation_calibrations")),
    )
    op.create_index("ix_estimation_calibrations_model_end", "estimation_calibrations", ["model_id", "fit_end"])
    op.create_table(
        "estimation_scores",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.String(length=200), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["monitored_models.id"],
            name=op.f("fk_estimation_scores_model_id_monitored_models"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "prediction_id", name=op.f("pk_estimation_scores")),
    )
    op.create_index("ix_estimation_scores_model_ts", "estimation_scores", ["model_id", "ts"])
    op.create_table(
        "calibration_usage",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("calibration_id", sa.Integer(), nullable=False),
        sa.Column("n_scored", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "bucket_start", "calibration_id", name=op.f("pk_calibration_usage")),
    )


def downgrade() -> None:
    op.drop_table("calibration_usage")
    op.drop_index("ix_estimation_scores_model_ts", table_name="estimation_scores")
    op.drop_table("estimation_scores")
    op.drop_index("ix_estimation_calibrations_model_end", table_name="estimation_calibrations")
    op.drop_table("estimation_calibrations")

"""drift tables: reference bins and feature histograms

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drift_features",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("edges", sa.JSON(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("coarse", sa.JSON(), nullable=False),
        sa.Column("reference_mean", sa.Float(), nullable=True),
        sa.Column("reference_std", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("model_id", "feature", name=op.f("pk_drift_features")),
    )
    op.create_table(
        "drift_reference_histograms",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model_id", "chunk", "slice_id", "feature", "bin",
            name=op.f("pk_drift_reference_histograms"),
        ),
    )
    op.create_table(
        "drift_histograms",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model_id", "bucket_start", "slice_id", "feature", "bin",
            name=op.f("pk_drift_histograms"),
        ),
    )


def downgrade() -> None:
    op.drop_table("drift_histograms")
    op.drop_table("drift_reference_histograms")
    op.drop_table("drift_features")

"""predictions lose `labeled_at`: a label no longer updates its prediction (issue 17)

`labeled_at` told label application whether a prediction's first label had been counted (for
the label arrival counts). The label itself says so: `applied_label` is None until a label of
the prediction has been counted, and a correction keeps there the label it replaces. Without
the column, ingesting a label never updates `predictions`, whose rows (weekly partitions on
PostgreSQL) become insert-only: no dead row per label for vacuum to clean, and one UPDATE per
batch of labels less (bench/stream.py).

SQLite drops the column in place (ALTER TABLE ... DROP COLUMN, SQLite 3.35 and later; older
versions copy the table). The downgrade brings the column back filled with the time of each
prediction's current applied label, which is all the older code reads from it (NULL or not).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35, 0):
        with op.batch_alter_table("predictions") as batch:
            batch.drop_column("labeled_at")
        return
    op.drop_column("predictions", "labeled_at")


def downgrade() -> None:
    op.add_column("predictions", sa.Column("labeled_at", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE predictions SET labeled_at = (SELECT MIN(labels.label_ts) FROM labels"
        " WHERE labels.model_id = predictions.model_id AND labels.prediction_id = predictions.prediction_id"
        " AND labels.applied_label IS NOT NULL)"
    )

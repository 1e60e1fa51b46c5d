"""estimation scores move into the predictions table (issue 15)

`estimation_scores` held the packed scores of each recent prediction (for the rolling
recalibration) in a table of its own, with its own primary key and time index: a third
indexed row per prediction stored, about a tenth of a large ingest. They now live in the
nullable `predictions.scores` (same packing: one big-endian float64 per class in the model's
order; NULL where the estimation keeps none), written by the prediction's own insert. The
existing rows are copied into their predictions (matched by model, id and time: on
PostgreSQL the time is the partition key), then the table is dropped. The downgrade
recreates it as it was after migration 0016 (no foreign key on PostgreSQL, migration 0012)
and copies the scores back.

The copy rewrites each prediction with kept scores (at most two recalibration spans of
them, the rest were pruned): measured 10 s per million rows on PostgreSQL (the old row
versions go at the next VACUUM) and 2 s on SQLite, on a 2-core machine.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("scores", sa.LargeBinary(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE predictions p SET scores = e.scores FROM estimation_scores e "
                   "WHERE p.model_id = e.model_id AND p.prediction_id = e.prediction_id AND p.ts = e.ts")
    else:
        op.execute("UPDATE predictions SET scores = (SELECT e.scores FROM estimation_scores e "
                   "WHERE e.model_id = predictions.model_id AND e.prediction_id = predictions.prediction_id "
                   "AND e.ts = predictions.ts) "
                   "WHERE EXISTS (SELECT 1 FROM estimation_scores e WHERE e.model_id = predictions.model_id "
                   "AND e.prediction_id = predictions.prediction_id AND e.ts = predictions.ts)")
    op.drop_index("ix_estimation_scores_model_ts", table_name="estimation_scores")
    op.drop_table("estimation_scores")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    keys = [] if postgres else [sa.ForeignKeyConstraint(
        ["model_id"], ["monitored_models.id"],
        name=op.f("fk_estimation_scores_model_id_monitored_models"), ondelete="CASCADE")]
    op.create_table(
        "estimation_scores",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.String(length=200), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("scores", sa.LargeBinary(), nullable=False),
        *keys,
        sa.PrimaryKeyConstraint("model_id", "prediction_id", name=op.f("pk_estimation_scores")),
    )
    op.create_index("ix_estimation_scores_model_ts", "estimation_scores", ["model_id", "ts"])
    op.execute("INSERT INTO estimation_scores (model_id, prediction_id, ts, scores) "
               "SELECT model_id, prediction_id, ts, scores FROM predictions WHERE scores IS NOT NULL")
    if postgres:
        op.drop_column("predictions", "scores")
    else:
        with op.batch_alter_table("predictions") as batch:
            batch.drop_column("scores")

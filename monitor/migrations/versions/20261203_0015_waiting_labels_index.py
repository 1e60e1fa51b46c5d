"""labels waiting to be counted get a partial index by id (issue 17)

`ix_labels_needs_apply` (model_id, needs_apply) indexed every label. `ix_labels_waiting`
(model_id, prediction_id) WHERE needs_apply holds only the labels not yet counted (usually
few: most are counted on arrival), so a batch looks up the waiting labels of the ids it stored
without reading every waiting label of the model, and the scheduler's full pass still reads
them all by model_id. On PostgreSQL the index is made on every weekly partition.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_labels_needs_apply", table_name="labels")
    op.create_index("ix_labels_waiting", "labels", ["model_id", "prediction_id"], unique=False,
                    postgresql_where=sa.text("needs_apply"), sqlite_where=sa.text("needs_apply = 1"))


def downgrade() -> None:
    op.drop_index("ix_labels_waiting", table_name="labels")
    op.create_index("ix_labels_needs_apply", "labels", ["model_id", "needs_apply"], unique=False)

"""raw row tables without a foreign key on PostgreSQL (issue 15); no-op on SQLite

`predictions`, `labels`, `estimation_scores` and `inbox` get one row per record ingested. Their
foreign key to `monitored_models` made PostgreSQL fire a trigger per row that looked the model
up again: about half of the server time of a COPY into them (bench/api_load.py, 4,500
predictions and their labels: 60 ms -> 27 ms per COPY). Rows of these tables are only written
with the id `monitor.context.load_context` read from `monitored_models` in the same
transaction, and nothing deletes a model, so the key guarded nothing the code does. The count
tables, alerts and the rest keep theirs (few rows, upserted), and so does SQLite.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RAW_TABLES = ("predictions", "labels", "estimation_scores", "inbox")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in RAW_TABLES:
        op.drop_constraint(f"fk_{table}_model_id_monitored_models", table, type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in RAW_TABLES:
        op.create_foreign_key(f"fk_{table}_model_id_monitored_models", table, "monitored_models",
                              ["model_id"], ["id"], ondelete="CASCADE")

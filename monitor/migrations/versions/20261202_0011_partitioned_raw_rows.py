"""raw predictions and labels partitioned by week on PostgreSQL (issue 17); no-op on SQLite

`predictions` becomes RANGE-partitioned on `ts` and `labels` on `label_ts` (epoch seconds),
one partition per UTC week starting on Monday, plus a DEFAULT partition for rows no week
covers. A partitioned table's primary key must include its partition key: it becomes
(model_id, prediction_id, ts) and (model_id, prediction_id, label_ts); ingestion keeps one
row per prediction id by its lookup (docs/scaling.md). The existing table is renamed, the
partitioned one created with the weeks its rows need (and this week and two ahead), the rows
copied, and the old table dropped, all in the migration's transaction.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY = 86_400
WEEK = 7 * DAY
MONDAY_OFFSET = 3 * DAY  # weeks start on Monday 00:00 UTC (1970-01-01 was a Thursday)


def _columns(table: str) -> list[sa.schema.SchemaItem]:
    fk = sa.ForeignKeyConstraint(["model_id"], ["monitored_models.id"],
                                 name=f"fk_{table}_model_id_monitored_models", ondelete="CASCADE")
    if table == "predictions":
        return [
            sa.Column("model_id", sa.Integer(), nullable=False),
            sa.Column("prediction_id", sa.String(length=200), nullable=False),
            sa.Column("ts", sa.BigInteger(), nullable=False),
            sa.Column("bucket_start", sa.BigInteger(), nullable=False),
            sa.Column("slice_id", sa.Integer(), nullable=False),
            sa.Column("predicted", sa.String(length=200), nullable=False),
            sa.Column("model_version", sa.String(length=200), nullable=True),
            sa.Column("content_hash", sa.BigInteger(), nullable=False),
            sa.Column("labeled_at", sa.BigInteger(), nullable=True),
            sa.Column("file_id", sa.Integer(), nullable=True),
            fk,
        ]
    return [
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("label_ts", sa.BigInteger(), nullable=False),
        sa.Column("applied_label", sa.String(length=200), nullable=True),
        sa.Column("needs_apply", sa.Boolean(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        fk,
    ]


TABLES = {
    # table: (partition key, secondary index name, its columns)
    "predictions": ("ts", "ix_predictions_model_bucket", ["model_id", "bucket_start"]),
    "labels": ("label_ts", "ix_labels_needs_apply", ["model_id", "needs_apply"]),
}


def _week_name(table: str, lower: int) -> str:
    return f"{table}_w{datetime.fromtimestamp(lower, tz=timezone.utc):%Y%m%d}"


def _to_partitioned(table: str) -> None:
    key, index, index_columns = TABLES[table]
    old = f"{table}_0010"
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    op.execute(f'ALTER INDEX "pk_{table}" RENAME TO "pk_{old}"')
    op.execute(f'ALTER INDEX "{index}" RENAME TO "{index}_0010"')
    op.create_table(table, *_columns(table),
                    sa.PrimaryKeyConstraint("model_id", "prediction_id", key, name=f"pk_{table}"),
                    postgresql_partition_by=f"RANGE ({key})")
    op.create_index(index, table, index_columns, unique=False)
    op.execute(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT')
    bind = op.get_bind()
    weeks = {int(row[0]) for row in bind.exec_driver_sql(
        f'SELECT DISTINCT ("{key}" + {MONDAY_OFFSET}) / {WEEK} * {WEEK} - {MONDAY_OFFSET} FROM "{old}"')}  # noqa: S608
    this_week = (int(time.time()) + MONDAY_OFFSET) // WEEK * WEEK - MONDAY_OFFSET
    weeks |= {this_week + i * WEEK for i in range(3)}
    for lower in sorted(weeks):
        op.execute(f'CREATE TABLE "{_week_name(table, lower)}" PARTITION OF "{table}" '
                   f"FOR VALUES FROM ({lower}) TO ({lower + WEEK})")
    columns = ", ".join(f'"{c.name}"' for c in _columns(table) if isinstance(c, sa.Column))
    op.execute(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{old}"')  # noqa: S608
    op.execute(f'DROP TABLE "{old}"')


def _to_plain(table: str) -> None:
    key, index, index_columns = TABLES[table]
    old = f"{table}_0011"
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    op.execute(f'ALTER INDEX "pk_{table}" RENAME TO "pk_{old}"')
    op.execute(f'ALTER INDEX "{index}" RENAME TO "{index}_0011"')
    op.create_table(table, *_columns(table),
                    sa.PrimaryKeyConstraint("model_id", "prediction_id", name=f"pk_{table}"))
    op.create_index(index, table, index_columns, unique=False)
    columns = ", ".join(f'"{c.name}"' for c in _columns(table) if isinstance(c, sa.Column))
    op.execute(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{old}"')  # noqa: S608
    op.execute(f'DROP TABLE "{old}"')  # its partitions go with it


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its plain tables
    for table in TABLES:
        _to_partitioned(table)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        _to_plain(table)

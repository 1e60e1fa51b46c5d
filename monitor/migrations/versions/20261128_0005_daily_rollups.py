"""daily roll-ups of the hourly count tables, filled from the existing rows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY = 86_400


def _key(name: str, kind: sa.types.TypeEngine) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, kind, nullable=False)


TABLES: dict[str, tuple[list[tuple[str, sa.types.TypeEngine]], list[tuple[str, sa.types.TypeEngine]]]] = {
    # hourly table: (key columns, value columns); the roll-up is "<name>_daily"
    "prediction_counts": (
        [("model_id", sa.Integer()), ("bucket_start", sa.BigInteger()), ("slice_id", sa.Integer()),
         ("pred_class", sa.String(length=200))],
        [("n", sa.BigInteger())],
    ),
    "confusion_counts": (
        [("model_id", sa.Integer()), ("bucket_start", sa.BigInteger()), ("slice_id", sa.Integer()),
         ("true_class", sa.String(length=200)), ("pred_class", sa.String(length=200))],
        [("n", sa.BigInteger())],
    ),
    "expected_counts": (
        [("model_id", sa.Integer()), ("bucket_start", sa.BigInteger()), ("slice_id", sa.Integer()),
         ("class_name", sa.String(length=200))],
        [("n_scored", sa.BigInteger()), ("n_predicted", sa.BigInteger()), ("exp_tp", sa.Float()),
         ("exp_fn", sa.Float()), ("exp_fp", sa.Float()), ("exp_tn", sa.Float()), ("var_tp", sa.Float()),
         ("var_fn", sa.Float())],
    ),
}


def upgrade() -> None:
    for name, (keys, values) in TABLES.items():
        daily = f"{name}_daily"
        op.create_table(
            daily,
            *[_key(column, kind) for column, kind in keys],
            *[_key(column, kind) for column, kind in values],
            sa.PrimaryKeyConstraint(*[column for column, _ in keys], name=op.f(f"pk_{daily}")),
        )
        key_names = [column for column, _ in keys]
        value_names = [column for column, _ in values]
        selected = ", ".join(
            f"bucket_start - (bucket_start % {DAY})" if column == "bucket_start" else column for column in key_names
        )
        sums = ", ".join(f"SUM({column})" for column in value_names)
        positions = ", ".join(str(i + 1) for i in range(len(key_names)))
        op.execute(
            f"INSERT INTO {daily} ({', '.join(key_names + value_names)}) "  # noqa: S608 (our own names)
            f"SELECT {selected}, {sums} FROM {name} GROUP BY {positions}"
        )


def downgrade() -> None:
    for name in reversed(list(TABLES)):
        op.drop_table(f"{name}_daily")

"""incident tables: incidents; alerts.incident_id and alert_events.incident_id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("class_name", sa.String(length=200), nullable=False),
        sa.Column("segment", sa.String(length=400), nullable=False),
        sa.Column("segment_value", sa.Text(), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("explains", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("fired_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("fired_as_of", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reference_value", sa.Float(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("support", sa.BigInteger(), nullable=True),
        sa.Column("excess_fn", sa.Float(), nullable=True),
        sa.Column("share", sa.Float(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("last_notified_at", sa.BigInteger(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_at", sa.BigInteger(), nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        sa.Column("silenced_until", sa.BigInteger(), nullable=True),
        sa.Column("silenced_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["monitored_models.id"],
                                name=op.f("fk_incidents_model_id_monitored_models"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index("ix_incidents_fingerprint", ["fingerprint"], unique=False)
        batch_op.create_index("ix_incidents_model_state", ["model_id", "state"], unique=False)
    # plain nullable columns: SQLite adds them in place, no table rebuild
    op.add_column("alerts", sa.Column("incident_id", sa.Integer(), nullable=True))
    op.create_index("ix_alerts_incident", "alerts", ["incident_id"], unique=False)
    op.add_column("alert_events", sa.Column("incident_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.drop_column("incident_id")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_incident")
        batch_op.drop_column("incident_id")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_model_state")
        batch_op.drop_index("ix_incidents_fingerprint")
    op.drop_table("incidents")

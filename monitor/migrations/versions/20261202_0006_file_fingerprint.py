"""ingested_files.fingerprint: inode, ctime and a hash of the head and tail of a file

A file replaced by one of the same size with its mtime restored kept its ledger row and was
never read again; the fingerprint changes with any write (ctime) or replacement (inode).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingested_files") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingested_files") as batch:
        batch.drop_column("fingerprint")

"""Sync revisions: a per-site and a fleet-wide counter behind the sync ETag.

Revision ID: 0005_revisions
Revises: 0004_rollouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_revisions"
down_revision: str | None = "0004_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``sites.revision`` and the one-row ``fleet_revision`` table."""
    op.add_column("sites", sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"))
    table = op.create_table(
        "fleet_revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("fleet_revision")
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("revision")

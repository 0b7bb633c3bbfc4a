"""Relays can be revoked (a lost phone).

Revision ID: 0007_relay_revoked
Revises: 0006_relayed_at
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_relay_revoked"
down_revision: str | None = "0006_relayed_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``relays.revoked_at``."""
    op.add_column("relays", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("relays") as batch:
        batch.drop_column("revoked_at")

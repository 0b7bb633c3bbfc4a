"""When the relay read an event off the device.

Revision ID: 0006_relayed_at
Revises: 0005_revisions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_relayed_at"
down_revision: str | None = "0005_revisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``events.relayed_at`` (NULL for events stored before)."""
    op.add_column("events", sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("events") as batch:
        batch.drop_column("relayed_at")

"""Devices remember the highest event sequence retention has pruned (the dedupe watermark).

Revision ID: 0010_events_pruned_through
Revises: 0009_deviceos_parts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_events_pruned_through"
down_revision: str | None = "0009_deviceos_parts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``devices.events_pruned_through``."""
    op.add_column("devices", sa.Column("events_pruned_through", sa.BigInteger, nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("events_pruned_through")

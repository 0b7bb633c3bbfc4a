"""Event tombstones: the sequences of each device's event ids that retention pruned, as
merged inclusive ranges (so a re-posted id stays a duplicate).

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
    """Create ``event_tombstones``."""
    op.create_table(
        "event_tombstones",
        sa.Column("device_id", sa.String(24), primary_key=True),
        sa.Column("first_seq", sa.BigInteger, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("event_tombstones")

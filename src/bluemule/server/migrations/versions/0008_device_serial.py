"""Devices may carry their serial number (the setup code a stock device advertises).

Revision ID: 0008_device_serial
Revises: 0007_relay_revoked
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_device_serial"
down_revision: str | None = "0007_relay_revoked"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``devices.serial``."""
    op.add_column("devices", sa.Column("serial", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("serial")

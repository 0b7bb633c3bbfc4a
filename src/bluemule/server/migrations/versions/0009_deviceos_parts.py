"""Device OS modules (system parts, bootloaders) for stock devices' control channel.

Revision ID: 0009_deviceos_parts
Revises: 0008_device_serial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_deviceos_parts"
down_revision: str | None = "0008_device_serial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``deviceos_parts``."""
    op.create_table(
        "deviceos_parts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("function", sa.Integer, nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("bootloader_version", sa.Integer, nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("blob_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("platform_id", "function", "index", "version"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("deviceos_parts")

"""Relay API: the app's asset requirements per release, and per-device update state.

Revision ID: 0002_relay_api
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_relay_api"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add ``releases.app_assets`` and the ``device_updates`` table."""
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("app_assets", sa.JSON, nullable=False, server_default="[]"))
    op.create_table(
        "device_updates",
        sa.Column("device_id", sa.String(24), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("progress", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("reported_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("report_id", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    op.drop_table("device_updates")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("app_assets")

"""The initial schema: sites, relays, devices, blobs, releases and their parts, events, reports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
    )
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "relays",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("product_id", sa.Integer, nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("min_device_os", sa.Integer, nullable=False),
        sa.Column("app_sha256", sa.String(64), nullable=False),
        sa.Column("original_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("product_default", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "release_parts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("kind", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("blob_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("original_size", sa.Integer, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.UniqueConstraint("release_id", "index"),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("product_id", sa.Integer, nullable=True),
        sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("development", sa.Boolean, nullable=False),
        sa.Column("locked_release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=True),
        sa.Column("mobile_secret", sa.LargeBinary, nullable=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=True),
        sa.Column("last_seen_relay_id", sa.Integer, sa.ForeignKey("relays.id"), nullable=True),
        sa.Column("last_rssi", sa.Integer, nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("device_id", sa.String(24), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("data", sa.Text, nullable=True),
        sa.Column("captured_at", TZ, nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("relay_id", sa.Integer, sa.ForeignKey("relays.id"), nullable=False),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("relay_id", sa.Integer, sa.ForeignKey("relays.id"), nullable=False),
        sa.Column("device_id", sa.String(24), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )


def downgrade() -> None:
    """Drop every table."""
    for table in (
        "reports",
        "events",
        "devices",
        "release_parts",
        "releases",
        "relays",
        "blobs",
        "sites",
    ):
        op.drop_table(table)

"""Webhooks, the delivery outbox and the delivery log.

Revision ID: 0003_webhooks
Revises: 0002_relay_api
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_webhooks"
down_revision: str | None = "0002_relay_api"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the webhook tables."""
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("request_type", sa.String(8), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("template", sa.JSON, nullable=True),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("query", sa.JSON, nullable=False),
        sa.Column("no_defaults", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("deleted_at", TZ, nullable=True),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(100), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id"), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("locked_by", sa.String(100), nullable=True),
        sa.Column("locked_until", TZ, nullable=True),
        sa.UniqueConstraint("event_id", "webhook_id"),
    )
    op.create_index("ix_outbox_webhook_id", "outbox", ["webhook_id"])
    op.create_index("ix_outbox_next_attempt_at", "outbox", ["next_attempt_at"])
    op.create_table(
        "delivery_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=True),
    )
    op.create_index("ix_delivery_log_outbox_id", "delivery_log", ["outbox_id"])


def downgrade() -> None:
    """Drop the webhook tables."""
    op.drop_table("delivery_log")
    op.drop_table("outbox")
    op.drop_table("webhooks")

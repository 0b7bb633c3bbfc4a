"""Staged rollouts.

Revision ID: 0004_rollouts
Revises: 0003_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_rollouts"
down_revision: str | None = "0003_webhooks"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the rollouts table."""
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("stages", sa.JSON, nullable=False),
        sa.Column("success_threshold", sa.Float, nullable=False),
        sa.Column("error_threshold", sa.Float, nullable=False),
        sa.Column("assignments", sa.JSON, nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("active_release_id", sa.Integer, nullable=True, unique=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_rollouts_release_id", "rollouts", ["release_id"])


def downgrade() -> None:
    """Drop the rollouts table."""
    op.drop_index("ix_rollouts_release_id", "rollouts")
    op.drop_table("rollouts")

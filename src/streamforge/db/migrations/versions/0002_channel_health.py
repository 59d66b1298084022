"""per-channel media judgement

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_health",
        sa.Column("xmltv_channel_id", sa.Integer(), nullable=False),
        sa.Column("audio_only", sa.Boolean(), nullable=False),
        sa.Column("black_check", sa.Boolean(), nullable=False),
        sa.Column("frozen_check", sa.Boolean(), nullable=False),
        sa.Column("silence_check", sa.Boolean(), nullable=False),
        sa.Column("black_seconds", sa.Float(), nullable=True),
        sa.Column("frozen_seconds", sa.Float(), nullable=True),
        sa.Column("silence_seconds", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["xmltv_channel_id"],
            ["xmltv_channels.id"],
            name=op.f("fk_channel_health_xmltv_channel_id_xmltv_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("xmltv_channel_id", name=op.f("pk_channel_health")),
    )


def downgrade() -> None:
    op.drop_table("channel_health")

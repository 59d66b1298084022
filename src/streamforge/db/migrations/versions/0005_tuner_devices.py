"""several virtual HDHomeRun devices: tuner_devices and channel_devices

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tuner_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("rule", sa.String(length=20), nullable=False),
        sa.Column("match", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuner_devices")),
        sa.UniqueConstraint("number", name=op.f("uq_tuner_devices_number")),
        sa.UniqueConstraint("device_id", name=op.f("uq_tuner_devices_device_id")),
    )
    op.create_table(
        "channel_devices",
        sa.Column("xmltv_channel_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("is_manual", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["xmltv_channel_id"],
            ["xmltv_channels.id"],
            name=op.f("fk_channel_devices_xmltv_channel_id_xmltv_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["tuner_devices.id"],
            name=op.f("fk_channel_devices_device_id_tuner_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("xmltv_channel_id", name=op.f("pk_channel_devices")),
    )
    with op.batch_alter_table("channel_devices") as batch:
        batch.create_index(batch.f("ix_channel_devices_device_id"), ["device_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("channel_devices") as batch:
        batch.drop_index(batch.f("ix_channel_devices_device_id"))
    op.drop_table("channel_devices")
    op.drop_table("tuner_devices")

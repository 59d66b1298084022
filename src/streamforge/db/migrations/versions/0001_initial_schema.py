"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 09:06:12.049353
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("server_url", sa.String(length=500), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("password_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("exp_date", sa.DateTime(), nullable=True),
        sa.Column("is_trial", sa.Boolean(), nullable=False),
        sa.Column("max_connections", sa.Integer(), nullable=False),
        sa.Column("active_cons", sa.Integer(), nullable=False),
        sa.Column("allowed_output_formats", sa.JSON(), nullable=False),
        sa.Column("last_checked_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
    )
    op.create_table(
        "app_state",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_app_state")),
    )
    op.create_table(
        "event_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("category", sa.String(length=30), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log")),
    )
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.create_index("ix_event_log_category_time", ["category", "timestamp"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_log_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_log_timestamp"), ["timestamp"], unique=False)

    op.create_table(
        "xmltv_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("location", sa.String(length=1000), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("last_refreshed_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_xmltv_sources_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xmltv_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_xmltv_sources_name")),
    )
    op.create_table(
        "xtream_categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("category_id", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_xtream_categories_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xtream_categories")),
        sa.UniqueConstraint(
            "account_id", "category_id", name=op.f("uq_xtream_categories_account_id")
        ),
    )
    op.create_table(
        "xtream_channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("icon", sa.String(length=1000), nullable=True),
        sa.Column("epg_channel_id", sa.String(length=300), nullable=True),
        sa.Column("category_id", sa.String(length=50), nullable=True),
        sa.Column("qualities", sa.JSON(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_xtream_channels_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xtream_channels")),
        sa.UniqueConstraint("account_id", "stream_id", name=op.f("uq_xtream_channels_account_id")),
    )
    with op.batch_alter_table("xtream_channels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_xtream_channels_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_xtream_channels_epg_channel_id"), ["epg_channel_id"], unique=False
        )

    op.create_table(
        "xmltv_channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("xmltv_id", sa.String(length=300), nullable=False),
        sa.Column("display_name", sa.String(length=500), nullable=False),
        sa.Column("display_names", sa.JSON(), nullable=False),
        sa.Column("icon", sa.String(length=1000), nullable=True),
        sa.Column("lcn", sa.String(length=20), nullable=True),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("guide_number", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["xmltv_sources.id"],
            name=op.f("fk_xmltv_channels_source_id_xmltv_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xmltv_channels")),
        sa.UniqueConstraint("guide_number", name=op.f("uq_xmltv_channels_guide_number")),
        sa.UniqueConstraint("source_id", "xmltv_id", name=op.f("uq_xmltv_channels_source_id")),
    )
    with op.batch_alter_table("xmltv_channels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_xmltv_channels_source_id"), ["source_id"], unique=False
        )

    op.create_table(
        "channel_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("xmltv_channel_id", sa.Integer(), nullable=False),
        sa.Column("xtream_channel_id", sa.Integer(), nullable=False),
        sa.Column("match_confidence", sa.Float(), nullable=False),
        sa.Column("is_manual", sa.Boolean(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("stream_priority", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["xmltv_channel_id"],
            ["xmltv_channels.id"],
            name=op.f("fk_channel_mappings_xmltv_channel_id_xmltv_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["xtream_channel_id"],
            ["xtream_channels.id"],
            name=op.f("fk_channel_mappings_xtream_channel_id_xtream_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_mappings")),
        sa.UniqueConstraint(
            "xmltv_channel_id",
            "xtream_channel_id",
            name=op.f("uq_channel_mappings_xmltv_channel_id"),
        ),
    )
    with op.batch_alter_table("channel_mappings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_channel_mappings_channel_priority",
            ["xmltv_channel_id", "stream_priority"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_channel_mappings_xtream_channel_id"), ["xtream_channel_id"], unique=False
        )

    op.create_table(
        "programmes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("xmltv_channel_id", sa.Integer(), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("stop", sa.DateTime(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("sub_title", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("episode_num", sa.JSON(), nullable=False),
        sa.Column("icon", sa.String(length=1000), nullable=True),
        sa.Column("rating", sa.JSON(), nullable=False),
        sa.Column("previously_shown", sa.Boolean(), nullable=False),
        sa.Column("is_new", sa.Boolean(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["xmltv_channel_id"],
            ["xmltv_channels.id"],
            name=op.f("fk_programmes_xmltv_channel_id_xmltv_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programmes")),
    )
    with op.batch_alter_table("programmes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_programmes_channel_start", ["xmltv_channel_id", "start"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("programmes", schema=None) as batch_op:
        batch_op.drop_index("ix_programmes_channel_start")

    op.drop_table("programmes")
    with op.batch_alter_table("channel_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_mappings_xtream_channel_id"))
        batch_op.drop_index("ix_channel_mappings_channel_priority")

    op.drop_table("channel_mappings")
    with op.batch_alter_table("xmltv_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_xmltv_channels_source_id"))

    op.drop_table("xmltv_channels")
    with op.batch_alter_table("xtream_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_xtream_channels_epg_channel_id"))
        batch_op.drop_index(batch_op.f("ix_xtream_channels_account_id"))

    op.drop_table("xtream_channels")
    op.drop_table("xtream_categories")
    op.drop_table("xmltv_sources")
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_log_timestamp"))
        batch_op.drop_index(batch_op.f("ix_event_log_channel_id"))
        batch_op.drop_index("ix_event_log_category_time")

    op.drop_table("event_log")
    op.drop_table("app_state")
    op.drop_table("accounts")

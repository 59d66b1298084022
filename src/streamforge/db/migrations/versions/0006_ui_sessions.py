"""web UI sessions in the shared database: ui_sessions

Revision ID: 0006
Revises: 0003 (the head on main when written; relink when merging)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_ui_sessions")),
    )
    with op.batch_alter_table("ui_sessions") as batch:
        batch.create_index(batch.f("ix_ui_sessions_last_seen"), ["last_seen"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ui_sessions") as batch:
        batch.drop_index(batch.f("ix_ui_sessions_last_seen"))
    op.drop_table("ui_sessions")

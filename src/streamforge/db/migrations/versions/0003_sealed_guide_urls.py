"""sealed guide URLs: xmltv_sources.location_sealed

A guide URL that carries credentials (``username=…&password=…``, ``user:pass@``
or an Xtream ``/live/U/P/`` path) is kept sealed by the credential store in
``location_sealed``; ``location`` then holds only the redacted form. Existing
plain URLs are sealed at the first start after this migration (the migration
cannot reach the credential key or the OS keyring).

Revision ID: 0003
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("xmltv_sources") as batch:
        batch.add_column(sa.Column("location_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("xmltv_sources") as batch:
        batch.drop_column("location_sealed")

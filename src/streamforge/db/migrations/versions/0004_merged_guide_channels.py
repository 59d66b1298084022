"""one guide channel per XMLTV id; source priority and time offsets

Revision ID: 0004
Revises: 0005 (written against 0001; 0005 reached main first, so it follows 0005)

A channel listed by several guide sources was one ``xmltv_channels`` row per
source; now it is one row per XMLTV id, and ``guide_channel_sources`` links it
to every source that lists it. Existing duplicates are merged into the row
that has a GuideNumber (else the most mappings, else the oldest): their
links, programmes and mappings move to it, the enabled flag is kept if any
was enabled. ``programmes.source_id`` records where each programme came
from; ``xmltv_sources.priority`` and the two ``time_offset_minutes`` columns
are new (0 for every existing row).

Only ``ADD COLUMN``, ``CREATE TABLE`` and ``CREATE INDEX`` are used, so no
table is rebuilt (a rebuild of ``xmltv_channels`` under SQLite's foreign keys
would cascade into the mappings).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0005"
branch_labels = None
depends_on = None


def _add_programme_source(dialect: str) -> None:
    if dialect == "sqlite":
        # SQLite's ALTER TABLE accepts a REFERENCES clause on a NULL-default column;
        # Alembic would rebuild the table for the constraint.
        op.execute(
            "ALTER TABLE programmes ADD COLUMN source_id INTEGER "
            "REFERENCES xmltv_sources (id) ON DELETE CASCADE"
        )
    else:
        op.add_column("programmes", sa.Column("source_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_programmes_source_id_xmltv_sources"),
            "programmes",
            "xmltv_sources",
            ["source_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_index(op.f("ix_programmes_source_id"), "programmes", ["source_id"], unique=False)


def _merge_duplicates(bind: Any) -> None:
    channels = bind.execute(
        sa.text("SELECT id, xmltv_id, guide_number, is_enabled FROM xmltv_channels ORDER BY id")
    ).all()
    mapping_counts = dict(
        bind.execute(
            sa.text(
                "SELECT xmltv_channel_id, COUNT(*) FROM channel_mappings GROUP BY xmltv_channel_id"
            )
        ).all()
    )
    has_devices = sa.inspect(bind).has_table("channel_devices")
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in channels:
        groups[row[1]].append(row)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        keeper = min(rows, key=lambda r: (r[2] is None, -mapping_counts.get(r[0], 0), r[0]))
        keep = {"k": keeper[0]}
        for dup in rows:
            if dup[0] == keeper[0]:
                continue
            ids = {"k": keeper[0], "d": dup[0]}
            bind.execute(
                sa.text(
                    "DELETE FROM channel_mappings WHERE xmltv_channel_id = :d AND "
                    "xtream_channel_id IN (SELECT xtream_channel_id FROM channel_mappings "
                    "WHERE xmltv_channel_id = :k)"
                ),
                ids,
            )
            top = bind.execute(
                sa.text(
                    "SELECT COALESCE(MAX(stream_priority) + 1, 0) FROM channel_mappings "
                    "WHERE xmltv_channel_id = :k"
                ),
                keep,
            ).scalar_one()
            bind.execute(
                sa.text(
                    "UPDATE channel_mappings SET xmltv_channel_id = :k, "
                    "stream_priority = stream_priority + :top, is_primary = :no "
                    "WHERE xmltv_channel_id = :d"
                ),
                {**ids, "top": int(top), "no": False},
            )
            if has_devices:
                # A device assignment of the duplicate moves over unless the keeper has one.
                bind.execute(
                    sa.text(
                        "UPDATE channel_devices SET xmltv_channel_id = :k "
                        "WHERE xmltv_channel_id = :d AND NOT EXISTS "
                        "(SELECT 1 FROM channel_devices WHERE xmltv_channel_id = :k)"
                    ),
                    ids,
                )
            for table in ("programmes", "guide_channel_sources"):
                bind.execute(
                    sa.text(
                        f"UPDATE {table} SET xmltv_channel_id = :k "  # noqa: S608
                        "WHERE xmltv_channel_id = :d"
                    ),
                    ids,
                )
            number = dup[2]
            bind.execute(sa.text("DELETE FROM xmltv_channels WHERE id = :d"), ids)
            if number is not None and keeper[2] is None:
                bind.execute(
                    sa.text("UPDATE xmltv_channels SET guide_number = :n WHERE id = :k"),
                    {"n": number, "k": keeper[0]},
                )
                keeper = (keeper[0], keeper[1], number, keeper[3])
            if dup[3] and not keeper[3]:
                bind.execute(
                    sa.text("UPDATE xmltv_channels SET is_enabled = :yes WHERE id = :k"),
                    {"yes": True, "k": keeper[0]},
                )
                keeper = (keeper[0], keeper[1], keeper[2], True)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.add_column(
        "xmltv_sources",
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "xmltv_sources",
        sa.Column("time_offset_minutes", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "xmltv_channels",
        sa.Column("time_offset_minutes", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_table(
        "guide_channel_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("xmltv_channel_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("display_names", sa.JSON(), nullable=False),
        sa.Column("icon", sa.String(length=1000), nullable=True),
        sa.Column("lcn", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["xmltv_sources.id"],
            name=op.f("fk_guide_channel_sources_source_id_xmltv_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["xmltv_channel_id"],
            ["xmltv_channels.id"],
            name=op.f("fk_guide_channel_sources_xmltv_channel_id_xmltv_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guide_channel_sources")),
        sa.UniqueConstraint(
            "xmltv_channel_id",
            "source_id",
            name=op.f("uq_guide_channel_sources_xmltv_channel_id"),
        ),
    )
    op.create_index(
        op.f("ix_guide_channel_sources_source_id"),
        "guide_channel_sources",
        ["source_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_guide_channel_sources_xmltv_channel_id"),
        "guide_channel_sources",
        ["xmltv_channel_id"],
        unique=False,
    )
    _add_programme_source(dialect)
    # Every existing channel row becomes a link of its source; its programmes are that source's.
    op.execute(
        "INSERT INTO guide_channel_sources (xmltv_channel_id, source_id, display_names, icon, lcn) "
        "SELECT id, source_id, display_names, icon, lcn FROM xmltv_channels"
    )
    op.execute(
        "UPDATE programmes SET source_id = (SELECT source_id FROM xmltv_channels "
        "WHERE xmltv_channels.id = programmes.xmltv_channel_id)"
    )
    _merge_duplicates(bind)
    op.create_index("uq_xmltv_channels_xmltv_id", "xmltv_channels", ["xmltv_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_xmltv_channels_xmltv_id", table_name="xmltv_channels")
    op.drop_index(op.f("ix_programmes_source_id"), table_name="programmes")
    with op.batch_alter_table("programmes") as batch_op:
        batch_op.drop_column("source_id")
    op.drop_index(
        op.f("ix_guide_channel_sources_xmltv_channel_id"), table_name="guide_channel_sources"
    )
    op.drop_index(op.f("ix_guide_channel_sources_source_id"), table_name="guide_channel_sources")
    op.drop_table("guide_channel_sources")
    if op.get_bind().dialect.name == "sqlite":
        # Plain columns: SQLite drops them in place (no rebuild of the referenced tables).
        op.execute("ALTER TABLE xmltv_channels DROP COLUMN time_offset_minutes")
        op.execute("ALTER TABLE xmltv_sources DROP COLUMN time_offset_minutes")
        op.execute("ALTER TABLE xmltv_sources DROP COLUMN priority")
    else:
        op.drop_column("xmltv_channels", "time_offset_minutes")
        op.drop_column("xmltv_sources", "time_offset_minutes")
        op.drop_column("xmltv_sources", "priority")

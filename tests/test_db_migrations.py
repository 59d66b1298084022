from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from streamforge.db.engine import Database
from streamforge.db.migrate import current_revision, head_revision, upgrade
from streamforge.db.models import Account, ChannelMapping, XmltvChannel, XmltvSource, XtreamChannel
from streamforge.errors import SchemaTooNewError

TABLES = {
    "accounts",
    "xtream_categories",
    "xtream_channels",
    "xmltv_sources",
    "xmltv_channels",
    "programmes",
    "channel_mappings",
    "event_log",
    "app_state",
}


def _exercise(db: Database) -> None:
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    with db.session() as s:
        acc = Account(
            name="a",
            server_url="http://p",
            username="u",
            password_encrypted=b"x",
            exp_date=datetime(2030, 1, 2, 3, 4, tzinfo=UTC),
        )
        s.add(acc)
        s.flush()
        xc = XtreamChannel(
            account_id=acc.id, stream_id=7, name="UK: BBC One FHD", qualities={"tier": "FHD"}
        )
        src = XmltvSource(name="g", kind="file", location="/x")
        s.add_all([xc, src])
        s.flush()
        ch = XmltvChannel(source_id=src.id, xmltv_id="bbc1.uk", display_name="BBC One")
        s.add(ch)
        s.flush()
        s.add(
            ChannelMapping(
                xmltv_channel_id=ch.id,
                xtream_channel_id=xc.id,
                stream_priority=0,
                is_primary=True,
                match_confidence=1.0,
            )
        )
    with db.session() as s:
        got = s.scalars(select(Account)).one()
        assert got.exp_date == datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
        assert s.scalars(select(XtreamChannel)).one().qualities == {"tier": "FHD"}
    # the seed's UNIQUE(xmltv_channel_id, xtream_channel_id)
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(ChannelMapping(xmltv_channel_id=ch.id, xtream_channel_id=xc.id))
    # UNIQUE(account_id, stream_id)
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(XtreamChannel(account_id=acc.id, stream_id=7, name="dup"))
    # deleting an account removes its channels and their mappings (foreign keys on)
    with db.session() as s:
        s.delete(s.get(Account, acc.id))
    with db.session() as s:
        assert s.scalars(select(ChannelMapping)).all() == []
        assert s.scalars(select(XtreamChannel)).all() == []
    # upgrading twice is harmless
    upgrade(db.engine)


def test_sqlite_migrations(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sf.db'}")
    try:
        _exercise(db)
        with db.engine.connect() as c:
            assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert c.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert c.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    finally:
        db.dispose()


@pytest.mark.postgres
def test_postgresql_migrations(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        with db.engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
        _exercise(db)
        assert db.engine.dialect.name == "postgresql"
    finally:
        db.dispose()


def test_database_newer_than_code_refuses(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sf.db'}")
    try:
        upgrade(db.engine)
        with db.engine.begin() as c:
            c.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        before = set(inspect(db.engine).get_table_names())
        with pytest.raises(SchemaTooNewError, match="newer than this StreamForge"):
            upgrade(db.engine)
        assert set(inspect(db.engine).get_table_names()) == before
        with db.engine.connect() as c:
            assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                "9999_future"
            )
    finally:
        db.dispose()


def _seed_duplicates(db: Database) -> None:
    """At 0001: one channel listed by two guides, numbered and mapped in the second."""
    with db.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO accounts (id, name, server_url, username, password_encrypted, "
                "priority, is_active, status, is_trial, max_connections, active_cons, "
                "allowed_output_formats, created_at) VALUES (1, 'a', 'http://p', 'u', x'00', "
                "0, 1, 'Active', 0, 1, 0, '[]', '2026-01-01 00:00:00')"
            )
        )
        c.execute(
            text(
                "INSERT INTO xtream_channels "
                "(id, account_id, stream_id, name, qualities, added_at) "
                "VALUES (1, 1, 7, 'BBC One', '{}', '2026-01-01 00:00:00')"
            )
        )
        for sid in (1, 2):
            c.execute(
                text(
                    "INSERT INTO xmltv_sources (id, name, kind, is_active, last_report, "
                    f"created_at) VALUES ({sid}, 'g{sid}', 'file', 1, '{{}}', "
                    "'2026-01-01 00:00:00')"
                )
            )
        c.execute(
            text(
                "INSERT INTO xmltv_channels (id, source_id, xmltv_id, display_name, display_names, "
                "is_enabled, guide_number) VALUES (10, 1, 'bbc1.uk', 'BBC One', '[\"BBC One\"]', "
                "0, NULL), (11, 2, 'bbc1.uk', 'BBC 1', '[\"BBC 1\"]', 1, '101')"
            )
        )
        c.execute(
            text(
                "INSERT INTO channel_mappings (xmltv_channel_id, xtream_channel_id, "
                "match_confidence, is_manual, is_primary, stream_priority) "
                "VALUES (11, 1, 1.0, 1, 1, 0)"
            )
        )
        for cid in (10, 11):
            c.execute(
                text(
                    "INSERT INTO programmes (xmltv_channel_id, start, title, categories, "
                    "episode_num, rating, previously_shown, is_new, extra) VALUES "
                    f"({cid}, '2026-01-01 10:00:00', 'Show {cid}', '[]', '[]', '[]', 0, 0, '{{}}')"
                )
            )


def test_0004_merges_duplicate_guide_channels(tmp_path: Path) -> None:
    from alembic import command

    from streamforge.db.migrate import alembic_config
    from streamforge.db.models import GuideChannelSource, Programme

    db = Database(f"sqlite:///{tmp_path / 'sf.db'}")
    try:
        command.upgrade(alembic_config(db.engine), "0001")
        _seed_duplicates(db)
        upgrade(db.engine)
        with db.session() as s:
            (channel,) = s.scalars(select(XmltvChannel)).all()
            assert (channel.id, channel.guide_number, channel.is_enabled) == (11, "101", True)
            assert channel.time_offset_minutes == 0
            (mapping,) = s.scalars(select(ChannelMapping)).all()
            assert mapping.xmltv_channel_id == 11
            links = {
                (link.source_id, link.xmltv_channel_id)
                for link in s.scalars(select(GuideChannelSource))
            }
            assert links == {(1, 11), (2, 11)}
            programmes = {
                (p.title, p.source_id, p.xmltv_channel_id) for p in s.scalars(select(Programme))
            }
            assert programmes == {("Show 10", 1, 11), ("Show 11", 2, 11)}
            assert [src.priority for src in s.scalars(select(XmltvSource))] == [0, 0]
        # one channel per XMLTV id from now on
        with pytest.raises(IntegrityError), db.session() as s:
            s.add(XmltvChannel(source_id=1, xmltv_id="bbc1.uk", display_name="again"))
    finally:
        db.dispose()

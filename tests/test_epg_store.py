"""The guide import's driver-level insert round-trips every column on SQLite
and on a real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from streamforge.db.engine import Database
from streamforge.db.migrate import upgrade
from streamforge.db.models import Programme, XmltvSource
from streamforge.epg.store import import_guide
from streamforge.epg.xmltv_parse import ImportWindow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

GUIDE = """<?xml version="1.0" encoding="UTF-8"?>
<tv>
<channel id="bbcone.uk"><display-name>BBC One</display-name></channel>
<programme start="20260301130000 +0100" stop="20260301140000 +0100" channel="bbcone.uk">
<title lang="en">News &amp; Weather</title><title lang="cy">Newyddion</title>
<desc>Today's news</desc><category>News</category><category>Weather</category>
<episode-num system="xmltv_ns">1.2.</episode-num><previously-shown/><new/>
<rating system="BBFC"><value>PG</value></rating>
</programme>
</tv>"""


def _roundtrip(db: Database, tmp_path: Path) -> None:
    upgrade(db.engine)
    guide = tmp_path / "guide.xml"
    guide.write_text(GUIDE, encoding="utf-8")
    with db.session() as session:
        source = XmltvSource(name="g", kind="file", location=str(guide))
        session.add(source)
        session.flush()
        source_id = source.id
    report = import_guide(db, source_id, str(guide), now=NOW, window=ImportWindow(1, 7))
    assert report.programmes == 1
    with db.session() as session:
        (programme,) = session.scalars(select(Programme)).all()
        assert programme.start == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        assert programme.stop == programme.start + timedelta(hours=1)
        assert programme.title == "News & Weather"
        assert programme.description == "Today's news"
        assert programme.categories == ["News", "Weather"]
        assert programme.episode_num == [["xmltv_ns", "1.2."]]
        assert programme.rating == [["BBFC", "PG"]]
        assert programme.previously_shown is True
        assert programme.is_new is True
        assert programme.extra["titles"] == [
            {"text": "News & Weather", "lang": "en"},
            {"text": "Newyddion", "lang": "cy"},
        ]
    # a second import replaces, never duplicates
    import_guide(db, source_id, str(guide), now=NOW, window=ImportWindow(1, 7))
    with db.session() as session:
        assert len(session.scalars(select(Programme)).all()) == 1


def test_sqlite_roundtrip(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        _roundtrip(db, tmp_path)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_postgresql_roundtrip(postgres_url: str, tmp_path: Path) -> None:
    db = Database(postgres_url)
    try:
        with db.engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
        _roundtrip(db, tmp_path)
    finally:
        db.dispose()

"""The programme row format: what is stored is what is read back.

A parsed programme goes through :func:`programme_values` (the exact values
the import sends, JSON columns serialised), is read back as the database's
JSON columns give it, and :func:`programme_out` must yield the same
programme — minus only what the module docstring says reading drops.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from streamforge.db.engine import Database
from streamforge.db.migrate import upgrade
from streamforge.db.models import XmltvSource
from streamforge.epg.programme_rows import (
    JSON_COLUMNS,
    PROGRAMME_COLUMNS,
    VALUE_COLUMNS,
    programme_out,
    programme_row,
    programme_values,
)
from streamforge.epg.store import import_guide
from streamforge.epg.xmltv_parse import ImportWindow, ProgrammeRecord
from streamforge.epg.xmltv_types import (
    CREDIT_KINDS,
    SUBTITLE_TYPES,
    Audio,
    Credit,
    EpisodeNum,
    LangText,
    PreviouslyShown,
    ProgrammeOut,
    Rating,
    Subtitles,
    Video,
)

T0 = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_word = st.text("abcxyz éß日本", min_size=1, max_size=8)
_lang = st.none() | st.sampled_from(["en", "cy", "de"])
_lang_text = st.builds(LangText, _text, _lang)
_texts = st.lists(_lang_text, max_size=3)
_pairs = st.lists(st.tuples(st.none() | st.sampled_from(["MPAA", "BBFC"]), _word), max_size=2)
_flag = st.none() | st.booleans()

records = st.builds(
    ProgrammeRecord,
    channel_id=st.just("c.example"),
    start=st.integers(0, 10_000).map(lambda m: T0 + timedelta(minutes=m)),
    stop=st.none() | st.integers(10_001, 20_000).map(lambda m: T0 + timedelta(minutes=m)),
    titles=st.lists(st.builds(LangText, _word, _lang), min_size=1, max_size=3),
    sub_titles=_texts,
    descs=_texts,
    credits=st.lists(
        st.builds(Credit, st.sampled_from(CREDIT_KINDS), _word, st.none() | _word), max_size=3
    ),
    date=st.none() | st.sampled_from(["2024", "20240101"]),
    categories=_texts,
    keywords=_texts,
    language=st.none() | _lang_text,
    orig_language=st.none() | _lang_text,
    length=st.none()
    | st.tuples(st.integers(0, 600), st.sampled_from(["seconds", "minutes", "hours"])),
    icon=st.none() | st.just("http://img.example/p.png"),
    urls=st.lists(st.just("http://example.org/p"), max_size=2),
    countries=_texts,
    episode_nums=st.lists(st.tuples(st.sampled_from(["onscreen", "xmltv_ns"]), _word), max_size=2),
    video=st.none() | st.builds(Video, _flag, _flag, st.none() | _word, st.none() | _word),
    audio=st.none() | st.builds(Audio, _flag, st.none() | _word),
    previously_shown=st.booleans(),
    previously_shown_start=st.none() | st.just(T0 - timedelta(days=3)),
    previously_shown_channel=st.none() | st.just("other.source"),
    premiere=st.none() | _lang_text,
    last_chance=st.none() | _lang_text,
    new=st.booleans(),
    subtitles=st.lists(st.sampled_from([*sorted(SUBTITLE_TYPES), "", "bogus"]), max_size=2),
    ratings=_pairs,
    star_ratings=_pairs,
)


def _stored(record: ProgrammeRecord) -> SimpleNamespace:
    """The row as the database hands it back: JSON columns parsed again."""
    values = programme_values(record)
    row: dict[str, Any] = {
        column: orjson.loads(value) if column in JSON_COLUMNS else value
        for column, value in zip(VALUE_COLUMNS, values, strict=True)
    }
    return SimpleNamespace(**row)


def _non_blank(items: list[LangText]) -> list[LangText]:
    return [item for item in items if item.text]


def _one(item: LangText | None) -> LangText | None:
    return item if item is not None and item.text else None


def expected_out(record: ProgrammeRecord, channel: str) -> ProgrammeOut:
    """What reading back must give (see the programme_rows module docstring)."""
    seconds = {"seconds": 1, "minutes": 60, "hours": 3600}
    return ProgrammeOut(
        channel=channel,
        start=record.start,
        stop=record.stop,
        titles=record.titles,
        sub_titles=_non_blank(record.sub_titles),
        descs=_non_blank(record.descs),
        credits=record.credits,
        date=record.date,
        categories=_non_blank(record.categories),
        keywords=_non_blank(record.keywords),
        language=_one(record.language),
        orig_language=_one(record.orig_language),
        length_seconds=record.length[0] * seconds[record.length[1]] if record.length else None,
        icons=[record.icon] if record.icon else [],
        urls=record.urls,
        countries=_non_blank(record.countries),
        episode_nums=[EpisodeNum(value, system) for system, value in record.episode_nums],
        video=record.video,
        audio=record.audio,
        previously_shown=PreviouslyShown(record.previously_shown_start)
        if record.previously_shown
        else None,
        premiere=_one(record.premiere),
        last_chance=_one(record.last_chance),
        new=record.new,
        subtitles=[Subtitles(t) for t in record.subtitles if t in SUBTITLE_TYPES],
        ratings=[Rating(value, system) for system, value in record.ratings],
        star_ratings=[Rating(value, system) for system, value in record.star_ratings],
    )


def _as_lists(out: ProgrammeOut) -> dict[str, Any]:
    """Field values with sequences compared as lists."""
    return {
        name: list(value) if isinstance(value, (list, tuple)) else value
        for name, value in ((n, getattr(out, n)) for n in ProgrammeOut.__dataclass_fields__)
    }


@settings(max_examples=300, deadline=None)
@given(records)
def test_stored_programme_reads_back_the_same(record: ProgrammeRecord) -> None:
    assert _as_lists(programme_out("out.id", _stored(record))) == _as_lists(
        expected_out(record, "out.id")
    )


def test_row_columns_are_the_value_columns() -> None:
    record = ProgrammeRecord("c", T0, None, [LangText("News")])
    assert tuple(programme_row(record)) == VALUE_COLUMNS
    assert [c.key for c in PROGRAMME_COLUMNS] == ["xmltv_channel_id", *VALUE_COLUMNS]


def test_rows_of_earlier_versions_keep_reading() -> None:
    """video/audio flags used to be stored as the guide's raw text."""
    row = SimpleNamespace(
        start=T0,
        stop=None,
        title="News",
        sub_title=None,
        description=None,
        categories=["News"],
        episode_num=[],
        icon=None,
        rating=[],
        previously_shown=False,
        is_new=False,
        extra={
            "video": {"present": "yes", "colour": "NO", "aspect": "16:9", "quality": None},
            "audio": {"present": "maybe", "stereo": "stereo"},
        },
    )
    out = programme_out("x", row)
    assert out.video == Video(present=True, colour=False, aspect="16:9")
    assert out.audio == Audio(present=False, stereo="stereo")
    assert out.categories == [LangText("News")]


GUIDE = f"""<?xml version="1.0" encoding="UTF-8"?>
<tv>
  <channel id="c.example"><display-name>C</display-name></channel>
  <programme start="{T0:%Y%m%d%H%M%S} +0000" stop="{T0 + timedelta(hours=1):%Y%m%d%H%M%S} +0000"
             channel="c.example">
    <title lang="en">News</title><title lang="cy">Newyddion</title>
    <desc>Tonight.</desc>
    <credits><actor role="Herself">Ann</actor><presenter>Bob</presenter></credits>
    <category>News</category>
    <length units="minutes">60</length>
    <episode-num system="xmltv_ns">1.2.</episode-num>
    <video><present>yes</present><colour>no</colour><aspect>16:9</aspect></video>
    <audio><stereo>stereo</stereo></audio>
    <previously-shown start="{T0 - timedelta(days=1):%Y%m%d%H%M%S} +0000" channel="x"/>
    <subtitles type="teletext"/>
    <rating system="BBFC"><value>PG</value></rating>
    <star-rating><value>3/5</value></star-rating>
    <new/>
  </programme>
</tv>
"""


def test_through_the_real_database(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'rows.db'}")
    upgrade(db.engine)
    try:
        with db.session() as session:
            source = XmltvSource(name="g", kind="file", location="g.xml")
            session.add(source)
            session.flush()
            source_id = source.id
        guide = tmp_path / "g.xml"
        guide.write_text(GUIDE, encoding="utf-8")
        import_guide(db, source_id, str(guide), now=T0, window=ImportWindow(1, 7))
        with db.session() as session:
            (row,) = session.execute(select(*PROGRAMME_COLUMNS)).all()
        out = programme_out("c.example", row)
    finally:
        db.dispose()
    assert out.titles == [LangText("News", "en"), LangText("Newyddion", "cy")]
    assert out.descs == [LangText("Tonight.")]
    assert out.credits == [Credit("actor", "Ann", "Herself"), Credit("presenter", "Bob")]
    assert out.length_seconds == 3600
    assert out.episode_nums == [EpisodeNum("1.2.", "xmltv_ns")]
    assert out.video == Video(present=True, colour=False, aspect="16:9")
    assert out.audio == Audio(stereo="stereo")
    assert out.previously_shown == PreviouslyShown(T0 - timedelta(days=1))
    assert out.subtitles == [Subtitles("teletext")]
    assert out.ratings == [Rating("PG", "BBFC")]
    assert out.star_ratings == [Rating("3/5")]
    assert out.new is True
    assert out.start == T0
    assert out.stop == T0 + timedelta(hours=1)

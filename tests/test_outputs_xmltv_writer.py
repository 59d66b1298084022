"""Tests for the streaming XMLTV writer, including the real ``tv_validate_file``."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from streamforge.outputs.xmltv_writer import (
    Audio,
    ChannelOut,
    Credit,
    EpisodeNum,
    Image,
    LangText,
    PreviouslyShown,
    ProgrammeOut,
    Rating,
    Review,
    Subtitles,
    Video,
    gzip_chunks,
    iter_xmltv,
    xml_attr,
    xml_text,
    xmltv_time,
)

DTD = Path("/usr/share/xmltv/xmltv.dtd")
T0 = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
DIRTY = "Tom & Jerry <live> \"quoted\" 'single' \x00\x07\x1b\x0b\x0c\x85 done"
ARABIC = "الأخبار المسائية"
HEBREW = "חדשות הערב"

PROGRAMME_ORDER = [
    "title", "sub-title", "desc", "credits", "date", "category", "keyword", "language",
    "orig-language", "length", "icon", "url", "country", "episode-num", "video", "audio",
    "previously-shown", "premiere", "last-chance", "new", "subtitles", "rating",
    "star-rating", "review", "image",
]  # fmt: skip


def _doc(channels: list[ChannelOut], programmes: list[ProgrammeOut], **kw: object) -> bytes:
    return b"".join(iter_xmltv(channels, programmes, **kw))  # type: ignore[arg-type]


def _parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    return etree.fromstring(data, parser)


def _full_programme(channel: str, start: datetime) -> ProgrammeOut:
    # Fields deliberately given in an order unlike the DTD's.
    return ProgrammeOut(
        images=(Image("http://img/p.jpg", type="poster", size="3", orient="P", system="tmdb"),),
        reviews=(Review("Great & gripping", type="text", source="Paper", reviewer="Ann"),),
        star_ratings=(Rating("4/5", system="imdb"),),
        ratings=(Rating("PG", system="MPAA", icons=("http://img/pg.png",)),),
        subtitles=(Subtitles("teletext", LangText("English", "en")),),
        new=True,
        last_chance=LangText("Final showing", "en"),
        premiere=LangText("", None),
        previously_shown=PreviouslyShown(start=T0 - timedelta(days=7), channel=channel),
        audio=Audio(present=True, stereo="dolby digital"),
        video=Video(present=True, colour=True, aspect="16:9", quality="HDTV"),
        episode_nums=(
            EpisodeNum("1.4.0/1", "xmltv_ns"),
            EpisodeNum("S02E05", "onscreen"),
            EpisodeNum("bogus", "xmltv_ns"),
        ),
        countries=(LangText("GB"),),
        urls=("http://example.org/show?a=1&b=2",),
        icons=("http://img/show.png",),
        length_seconds=3600,
        orig_language=LangText("English", "en"),
        language=LangText(ARABIC, "ar"),
        keywords=(LangText("news"),),
        categories=(LangText("News", "en"), LangText(HEBREW, "he")),
        date="2026",
        credits=(
            Credit("guest", "Guest Person"),
            Credit("actor", "Actor One", role="Hero & <Villain>"),
            Credit("director", "Dir Ector", images=(Image("http://img/d.jpg", type="person"),)),
            Credit("unknown-kind", "Dropped"),
        ),
        descs=(LangText(DIRTY + " 📺 " + ARABIC, "en"), LangText("   ", "fr")),
        sub_titles=(LangText(HEBREW, "he"),),
        titles=(LangText("Evening News 🌙", "en"), LangText(ARABIC, "ar")),
        stop=start + timedelta(hours=1),
        start=start,
        channel=channel,
    )


def _realistic_guide() -> tuple[list[ChannelOut], list[ProgrammeOut]]:
    channels = [
        ChannelOut(
            "bbc1.uk",
            (LangText("BBC One & Friends <HD>", "en"), LangText("بي بي سي", "ar")),
            icon="http://img/bbc1.png?size=1&fmt=png",
            urls=("http://bbc.co.uk",),
        ),
        ChannelOut("kan11.il", (LangText(HEBREW + " \x1b[1m", "he"),)),
        ChannelOut("dirty.example", (LangText(DIRTY),)),
        ChannelOut("noname.example", ()),
    ]
    programmes: list[ProgrammeOut] = []
    for index, channel in enumerate(channels):
        for hour in range(3):
            start = T0 + timedelta(hours=hour)
            if hour == 0:
                programmes.append(_full_programme(channel.id, start))
            else:
                programmes.append(
                    ProgrammeOut(
                        channel=channel.id,
                        start=start,
                        stop=start + timedelta(hours=1),
                        titles=(LangText(f"{DIRTY} #{index}.{hour} 🎬"),),
                        descs=(LangText(f"{ARABIC} — {HEBREW} 😀"),),
                    )
                )
    return channels, programmes


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tv_validate_file", "--dtd-file", str(DTD), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


needs_validator = pytest.mark.skipif(
    shutil.which("tv_validate_file") is None or not DTD.exists(),
    reason="tv_validate_file or /usr/share/xmltv/xmltv.dtd not installed",
)


@needs_validator
def test_realistic_dirty_guide_validates(tmp_path: Path) -> None:
    channels, programmes = _realistic_guide()
    path = tmp_path / "guide.xml"
    path.write_bytes(_doc(channels, programmes))
    result = _validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validated ok" in result.stdout


@needs_validator
def test_validator_rejects_programme_for_missing_channel(tmp_path: Path) -> None:
    channels, programmes = _realistic_guide()
    orphan = ProgrammeOut("missing.example", T0, T0 + timedelta(hours=1), (LangText("Lost"),))
    path = tmp_path / "broken.xml"
    path.write_bytes(_doc(channels, [*programmes, orphan], drop_orphans=False))
    result = _validate(path)
    assert result.returncode != 0
    assert "missing.example" in result.stdout + result.stderr
    # The default writer drops the orphan and the guide validates again.
    path.write_bytes(_doc(channels, [*programmes, orphan]))
    assert _validate(path).returncode == 0


def test_text_survives_round_trip() -> None:
    channels, programmes = _realistic_guide()
    root = _parse(_doc(channels, programmes))
    assert root.tag == "tv"
    assert root.get("generator-info-name") == "StreamForge"
    bbc = root.find("channel[@id='bbc1.uk']")
    assert bbc is not None
    assert [d.text for d in bbc.findall("display-name")] == ["BBC One & Friends <HD>", "بي بي سي"]
    assert bbc.find("display-name").get("lang") == "en"
    assert bbc.find("icon").get("src") == "http://img/bbc1.png?size=1&fmt=png"
    kan = root.find("channel[@id='kan11.il']/display-name")
    assert kan is not None
    assert kan.text == HEBREW + " [1m"
    noname = root.find("channel[@id='noname.example']/display-name")
    assert noname is not None
    assert noname.text == "noname.example"
    first = root.find("programme")
    assert first is not None
    assert first.findtext("title") == "Evening News 🌙"
    desc = first.findtext("desc")
    assert desc == "Tom & Jerry <live> \"quoted\" 'single'  done 📺 " + ARABIC
    assert len(first.findall("desc")) == 1  # the blank one is omitted


def test_programme_children_follow_dtd_order() -> None:
    root = _parse(_doc([ChannelOut("a.b", (LangText("A"),))], [_full_programme("a.b", T0)]))
    programme = root.find("programme")
    assert programme is not None
    tags = [child.tag for child in programme]
    ranks = [PROGRAMME_ORDER.index(tag) for tag in tags]
    assert ranks == sorted(ranks)
    assert set(tags) == set(PROGRAMME_ORDER)
    credits = programme.find("credits")
    assert credits is not None
    assert [c.tag for c in credits] == ["director", "actor", "guest"]
    assert credits.find("actor").get("role") == "Hero & <Villain>"
    episodes = [(e.get("system"), e.text) for e in programme.findall("episode-num")]
    assert episodes == [("xmltv_ns", "1.4.0/1"), ("onscreen", "S02E05")]
    assert programme.findtext("length") == "60"
    assert programme.find("length").get("units") == "minutes"


def test_times_are_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert xmltv_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus2)) == "20260102010405 +0000"
    assert xmltv_time(datetime(2026, 1, 2, 3, 4, 5)) == "20260102030405 +0000"
    root = _parse(
        _doc(
            [ChannelOut("a.b", (LangText("A"),))],
            [ProgrammeOut("a.b", datetime(2026, 6, 1, 12, tzinfo=plus2), None, (LangText("T"),))],
        )
    )
    programme = root.find("programme")
    assert programme is not None
    assert programme.get("start") == "20260601100000 +0000"
    assert programme.get("stop") is None


def test_untitled_and_orphan_programmes_are_dropped() -> None:
    channels = [ChannelOut("a.b", (LangText("A"),))]
    programmes = [
        ProgrammeOut("a.b", T0, None, ()),
        ProgrammeOut("a.b", T0, None, (LangText(" \x00 "),)),
        ProgrammeOut("x.y", T0, None, (LangText("Orphan"),)),
        ProgrammeOut("a.b", T0, None, (LangText("Kept"),)),
    ]
    root = _parse(_doc(channels, programmes))
    assert [p.findtext("title") for p in root.findall("programme")] == ["Kept"]


def test_invalid_enumerations_are_omitted() -> None:
    programme = ProgrammeOut(
        "a.b",
        T0,
        None,
        (LangText("T"),),
        subtitles=(Subtitles("hologram"),),
        reviews=(Review("r", type="video"),),
        images=(Image("u", type="gif", size="9", orient="X"),),
    )
    root = _parse(_doc([ChannelOut("a.b", (LangText("A"),))], [programme]))
    node = root.find("programme")
    assert node is not None
    assert node.find("subtitles").get("type") is None
    assert node.find("review").get("type") == "text"
    assert dict(node.find("image").attrib) == {}


def test_streams_lazily_with_early_header_and_bounded_chunks() -> None:
    pulled = {"channels": 0, "programmes": 0}

    def channels() -> Iterator[ChannelOut]:
        for i in range(50):
            pulled["channels"] += 1
            yield ChannelOut(f"c{i}.x", (LangText(f"C{i}"),))

    def programmes() -> Iterator[ProgrammeOut]:
        for i in range(20_000):
            pulled["programmes"] += 1
            start = T0 + timedelta(minutes=30 * (i // 50))
            stop = start + timedelta(minutes=30)
            yield ProgrammeOut(f"c{i % 50}.x", start, stop, (LangText("T"),))

    stream = iter_xmltv(channels(), programmes(), chunk_size=4096)
    head = next(stream)
    assert head.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert b'<!DOCTYPE tv SYSTEM "xmltv.dtd">' in head
    assert pulled == {"channels": 0, "programmes": 0}
    next(stream)
    next(stream)
    assert pulled["programmes"] < 20_000
    rest = list(stream)
    assert pulled["programmes"] == 20_000
    assert max(len(chunk) for chunk in rest) < 4096 + 1024
    assert rest[-1].endswith(b"</tv>\n")


def test_gzip_variant_round_trips() -> None:
    channels, programmes = _realistic_guide()
    plain = _doc(channels, programmes)
    compressed = b"".join(gzip_chunks(iter_xmltv(channels, programmes, chunk_size=512)))
    assert compressed[:2] == b"\x1f\x8b"
    assert gzip.decompress(compressed) == plain


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60), st.text(max_size=30))
def test_any_text_yields_well_formed_xml(text: str, attr: str) -> None:
    channel = ChannelOut("a.b", (LangText(text or "x", attr or None),), icon=attr or None)
    programme = ProgrammeOut(
        "a.b", T0, None, (LangText(text + "t"),), descs=(LangText(text, attr or None),)
    )
    root = _parse(_doc([channel], [programme]))
    node = root.find("programme")
    assert node is not None
    expected = "".join(c for c in text + "t" if xml_text(c) != "")
    # XML parsers normalise line ends in content.
    expected = expected.replace("\r\n", "\n").replace("\r", "\n")
    assert node.findtext("title") == expected


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_attribute_values_round_trip(value: str) -> None:
    root = _parse(f'<r a="{xml_attr(value)}"/>'.encode())
    kept = "".join(c for c in value if xml_attr(c) != "")
    assert root.get("a") == kept

"""XMLTV import: records, times, window filtering, hostile files, bounded memory."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.epg.xmltv_parse import (
    GuideChannelRecord,
    ImportWindow,
    ProgrammeRecord,
    SkipReason,
    XmltvReader,
)
from streamforge.epg.xmltv_time import (
    XmltvTimeError,
    format_xmltv_time,
    parse_xmltv_time,
)
from streamforge.epg.xmltv_types import Audio, Credit, LangText, Video
from streamforge.errors import GuideError

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

FULL_GUIDE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tv SYSTEM "xmltv.dtd">
<tv generator-info-name="test">
  <channel id="BBCOne.uk">
    <display-name lang="en">BBC One</display-name>
    <display-name lang="cy">BBC Un</display-name>
    <display-name>101</display-name>
    <icon src="http://img.example/bbc1.png"/>
    <url>http://www.bbc.co.uk</url>
  </channel>
  <channel id="Das.Erste.de">
    <display-name lang="de">Das Erste</display-name>
    <lcn>1</lcn>
  </channel>
  <programme start="20240301180000 +0100" stop="20240301190000 +0100" channel="BBCOne.uk">
    <title lang="en">News at Six</title>
    <title lang="cy">Newyddion</title>
    <sub-title lang="en">Evening</sub-title>
    <desc lang="en">The day's news.</desc>
    <credits>
      <director>Jane Roe</director>
      <actor role="Herself">Ann Presenter</actor>
      <presenter>Bob Host</presenter>
    </credits>
    <date>2024</date>
    <category lang="en">News</category>
    <category lang="en">Current affairs</category>
    <keyword>politics</keyword>
    <language>English</language>
    <orig-language>Welsh</orig-language>
    <length units="minutes">60</length>
    <icon src="http://img.example/news.png"/>
    <url>http://www.bbc.co.uk/news</url>
    <country>GB</country>
    <episode-num system="xmltv_ns">0.11.0/1</episode-num>
    <episode-num>S01E12</episode-num>
    <video><present>yes</present><aspect>16:9</aspect><quality>HDTV</quality></video>
    <audio><stereo>dolby digital</stereo></audio>
    <previously-shown start="20240201180000 +0000" channel="BBCTwo.uk"/>
    <premiere lang="en">First showing</premiere>
    <new/>
    <subtitles type="teletext"/>
    <rating system="BBFC"><value>PG</value></rating>
    <star-rating system="imdb"><value>7/10</value></star-rating>
  </programme>
  <programme start="20240301190000" channel="BBCOne.uk"><title>Film</title></programme>
  <programme start="20240301210000 +0000" channel="BBCOne.uk"><title>Late News</title></programme>
  <programme start="20240301200000 +0100" stop="20240301210000 +0100" channel="Das.Erste.de">
    <title lang="de">Tagesschau</title>
  </programme>
</tv>
"""


def _read(data: bytes, **kwargs: object) -> tuple[list[object], XmltvReader]:
    reader = XmltvReader(io.BytesIO(data), now=NOW, **kwargs)  # type: ignore[arg-type]
    return list(reader), reader


def _channels(records: Sequence[object]) -> list[GuideChannelRecord]:
    return [r for r in records if isinstance(r, GuideChannelRecord)]


def _programmes(records: Sequence[object]) -> list[ProgrammeRecord]:
    return [r for r in records if isinstance(r, ProgrammeRecord)]


# --- records ----------------------------------------------------------------------------


def test_channel_records_keep_names_in_order_with_language_icon_and_lcn() -> None:
    records, reader = _read(FULL_GUIDE)
    bbc, erste = _channels(records)
    assert bbc.xmltv_id == "BBCOne.uk"
    assert bbc.display_names == [
        LangText("BBC One", "en"),
        LangText("BBC Un", "cy"),
        LangText("101", None),
    ]
    assert bbc.names == ["BBC One", "BBC Un", "101"]
    assert bbc.icon == "http://img.example/bbc1.png"
    assert bbc.urls == ["http://www.bbc.co.uk"]
    assert bbc.lcn == "101"
    assert erste.lcn == "1"
    assert reader.report.channels == 2


def test_programme_record_keeps_every_supported_field() -> None:
    records, _ = _read(FULL_GUIDE)
    news = _programmes(records)[0]
    assert news.channel_id == "BBCOne.uk"
    assert news.start == datetime(2024, 3, 1, 17, 0, tzinfo=UTC)
    assert news.stop == datetime(2024, 3, 1, 18, 0, tzinfo=UTC)
    assert news.titles == [LangText("News at Six", "en"), LangText("Newyddion", "cy")]
    assert news.title == "News at Six"
    assert news.sub_titles == [LangText("Evening", "en")]
    assert news.descs == [LangText("The day's news.", "en")]
    assert news.credits == [
        Credit("director", "Jane Roe"),
        Credit("actor", "Ann Presenter", "Herself"),
        Credit("presenter", "Bob Host"),
    ]
    assert news.date == "2024"
    assert news.categories == [LangText("News", "en"), LangText("Current affairs", "en")]
    assert news.keywords == [LangText("politics")]
    assert news.language == LangText("English")
    assert news.orig_language == LangText("Welsh")
    assert news.length == (60, "minutes")
    assert news.icon == "http://img.example/news.png"
    assert news.urls == ["http://www.bbc.co.uk/news"]
    assert news.countries == [LangText("GB")]
    assert news.episode_nums == [("xmltv_ns", "0.11.0/1"), ("onscreen", "S01E12")]
    assert news.video == Video(present=True, aspect="16:9", quality="HDTV")
    assert news.audio == Audio(stereo="dolby digital")
    assert news.previously_shown
    assert news.previously_shown_start == datetime(2024, 2, 1, 18, 0, tzinfo=UTC)
    assert news.previously_shown_channel == "BBCTwo.uk"
    assert news.premiere == LangText("First showing", "en")
    assert news.new
    assert news.subtitles == ["teletext"]
    assert news.ratings == [("BBFC", "PG")]
    assert news.star_ratings == [("imdb", "7/10")]


def test_missing_stop_is_taken_from_the_next_programme_of_the_channel() -> None:
    records, _ = _read(FULL_GUIDE)
    by_title = {p.title: p for p in _programmes(records)}
    assert by_title["Film"].start == datetime(2024, 3, 1, 19, 0, tzinfo=UTC)
    assert by_title["Film"].stop == datetime(2024, 3, 1, 21, 0, tzinfo=UTC)
    assert by_title["Late News"].stop is None
    assert by_title["Tagesschau"].stop == datetime(2024, 3, 1, 20, 0, tzinfo=UTC)


def test_channels_come_before_programmes_and_counts_match() -> None:
    records, reader = _read(FULL_GUIDE)
    kinds = [type(r).__name__ for r in records]
    assert kinds[:2] == ["GuideChannelRecord", "GuideChannelRecord"]
    assert reader.report.programmes == 4 == len(_programmes(records))
    assert reader.report.skipped == {}
    assert reader.report.bytes_read == len(FULL_GUIDE)


# --- skipping -----------------------------------------------------------------------------


def _guide(
    programmes: str, channels: str = '<channel id="a"><display-name>A</display-name></channel>'
) -> bytes:
    return f'<?xml version="1.0"?><tv>{channels}{programmes}</tv>'.encode()


def test_skipped_programmes_are_counted_by_reason() -> None:
    data = _guide(
        '<programme start="20240301120000" stop="20240301130000" channel="a"><title>ok</title>'
        "</programme>"
        '<programme start="20240301120000" stop="20240301130000" channel="zz"><title>x</title>'
        "</programme>"
        '<programme start="20240301120000" stop="20240301130000"><title>x</title></programme>'
        '<programme start="yesterday" stop="20240301130000" channel="a"><title>x</title>'
        "</programme>"
        '<programme start="20240301120000" stop="20240301110000" channel="a"><title>x</title>'
        "</programme>"
        '<programme start="20240301120000" stop="20240301130000" channel="a"><desc>d</desc>'
        "</programme>"
        '<programme start="20240201120000" stop="20240201130000" channel="a"><title>x</title>'
        "</programme>"
        '<programme start="20240401120000" stop="20240401130000" channel="a"><title>x</title>'
        "</programme>",
        channels='<channel id="a"><display-name>A</display-name></channel>'
        '<channel id="a"><display-name>again</display-name></channel><channel/>',
    )
    records, reader = _read(data)
    assert [p.title for p in _programmes(records)] == ["ok"]
    assert reader.report.programmes == 1
    assert reader.report.channels == 1
    assert reader.report.skipped == {
        SkipReason.UNKNOWN_CHANNEL: 1,
        SkipReason.MISSING_CHANNEL: 1,
        SkipReason.BAD_TIME: 1,
        SkipReason.STOP_BEFORE_START: 1,
        SkipReason.MISSING_TITLE: 1,
        SkipReason.OUTSIDE_WINDOW: 2,
        SkipReason.DUPLICATE_CHANNEL: 1,
        SkipReason.CHANNEL_WITHOUT_ID: 1,
    }
    assert reader.report.skipped_total == 9


def _window_programme(start: datetime, stop: datetime) -> bytes:
    return _guide(
        f'<programme start="{format_xmltv_time(start)}" stop="{format_xmltv_time(stop)}" '
        'channel="a"><title>t</title></programme>'
    )


@pytest.mark.parametrize(
    ("start_offset_h", "stop_offset_h", "kept"),
    [
        (-25, -24, False),  # ended exactly at the window start
        (-25, -23, True),  # overlaps the window start
        (0, 1, True),
        (7 * 24 - 1, 7 * 24 + 1, True),  # overlaps the window end
        (7 * 24, 7 * 24 + 1, False),  # starts exactly at the window end
        (-100, -99, False),
    ],
)
def test_default_window_is_one_day_back_seven_days_ahead(
    start_offset_h: int, stop_offset_h: int, kept: bool
) -> None:
    data = _window_programme(
        NOW + timedelta(hours=start_offset_h), NOW + timedelta(hours=stop_offset_h)
    )
    records, reader = _read(data)
    assert bool(_programmes(records)) is kept
    assert reader.report.skipped.get(SkipReason.OUTSIDE_WINDOW, 0) == (0 if kept else 1)


def test_custom_and_disabled_windows() -> None:
    data = _window_programme(NOW + timedelta(days=10), NOW + timedelta(days=10, hours=1))
    assert not _programmes(_read(data)[0])
    assert _programmes(_read(data, window=ImportWindow(days_back=0, days_ahead=14))[0])
    assert _programmes(_read(data, window=None)[0])


# --- compression --------------------------------------------------------------------------


@pytest.mark.parametrize("encode", [gzip.compress, lzma.compress, lambda data: data])
def test_compressed_guides_with_misleading_names(tmp_path: Path, encode: object) -> None:
    assert callable(encode)
    path = tmp_path / "guide.txt.gz.xz"
    path.write_bytes(encode(FULL_GUIDE))
    records = list(XmltvReader(path, now=NOW))
    assert len(_channels(records)) == 2
    assert len(_programmes(records)) == 4


def test_progress_callback_reaches_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "guide.xml"
    path.write_bytes(gzip.compress(FULL_GUIDE))
    seen: list[tuple[int, int | None]] = []
    list(XmltvReader(path, now=NOW, progress=lambda d, t: seen.append((d, t))))
    size = path.stat().st_size
    assert seen[-1] == (size, size)


# --- hostile and broken files ----------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE tv [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<ROOT><channel id="a"><display-name>&lol9;</display-name></channel></ROOT>
"""


@pytest.mark.parametrize("root", [b"tv", b"lolz"])
def test_billion_laughs_fails_fast_with_a_clear_error(root: bytes) -> None:
    data = BILLION_LAUGHS.replace(b"ROOT", root)
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(GuideError, match="declares XML entities") as caught:
            _read(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2.0
    assert peak < 5_000_000
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "doctype",
    [
        b'<!DOCTYPE tv [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        b'<!DOCTYPE tv [<!ENTITY % xxe SYSTEM "file:///etc/passwd"> %xxe;]>',
        b'<!DOCTYPE tv [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/evil.dtd">]>',
    ],
)
def test_xxe_does_not_leak_local_files(doctype: bytes) -> None:
    data = (
        b'<?xml version="1.0"?>' + doctype + b'<tv><channel id="a">'
        b"<display-name>&xxe;</display-name></channel>"
        b'<programme start="20240301120000" channel="a"><title>&xxe;</title></programme></tv>'
    )
    reader = XmltvReader(io.BytesIO(data), now=NOW)
    seen: list[object] = []
    with pytest.raises(GuideError, match="declares XML entities"):
        seen.extend(reader)
    assert "root:" not in repr(seen)
    assert seen == []


def test_passwd_content_never_appears_even_when_referenced_without_declaration() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE tv SYSTEM "file:///etc/passwd"><tv>'
        b'<channel id="a"><display-name>A</display-name></channel></tv>'
    )
    records, _ = _read(data)
    assert "root:" not in repr(records)
    assert _channels(records)[0].names == ["A"]


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        # mtime=0: a parameter must be the same bytes in every test worker
        (b"", "empty"),
        (gzip.compress(b"", mtime=0), "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not an XML document"),
        (b"this is not xml at all", "not an XML document"),
        (b"<html><body><p>404 Not Found</body></html>", "malformed|not an XML"),
        (b'<?xml version="1.0"?><html><body/></html>', "root element is <html>"),
        (b'<?xml version="1.0"?><guide><channel id="a"/></guide>', "root element is not <tv>"),
        (FULL_GUIDE[: len(FULL_GUIDE) // 2], "truncated"),
        (gzip.compress(FULL_GUIDE, mtime=0)[:200], "truncated"),
    ],
)
def test_broken_files_give_one_line_guide_errors(data: bytes, pattern: str) -> None:
    with pytest.raises(GuideError, match=pattern) as caught:
        _read(data)
    assert "\n" not in str(caught.value)


def test_error_midway_after_records_were_yielded() -> None:
    reader = XmltvReader(
        io.BytesIO(FULL_GUIDE[: FULL_GUIDE.index(b"<programme")] + b"<prog"), now=NOW
    )
    got: list[object] = []
    with pytest.raises(GuideError):
        got.extend(reader)
    assert len(got) == 2


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240301193000 +0100", datetime(2024, 3, 1, 18, 30, tzinfo=UTC)),
        ("20240301193000 -0530", datetime(2024, 3, 2, 1, 0, tzinfo=UTC)),
        ("20240301193000+0100", datetime(2024, 3, 1, 18, 30, tzinfo=UTC)),
        ("20240301193000 +01:00", datetime(2024, 3, 1, 18, 30, tzinfo=UTC)),
        ("20240301193000 +01", datetime(2024, 3, 1, 18, 30, tzinfo=UTC)),
        ("20240301193000", datetime(2024, 3, 1, 19, 30, tzinfo=UTC)),
        ("20240301193000 Z", datetime(2024, 3, 1, 19, 30, tzinfo=UTC)),
        ("20240301193000 GMT", datetime(2024, 3, 1, 19, 30, tzinfo=UTC)),
        ("202403011930 +0000", datetime(2024, 3, 1, 19, 30, tzinfo=UTC)),
        ("2024030119", datetime(2024, 3, 1, 19, 0, tzinfo=UTC)),
        ("20240301", datetime(2024, 3, 1, tzinfo=UTC)),
        ("202403", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024", datetime(2024, 1, 1, tzinfo=UTC)),
        ("20240301000000 +0200", datetime(2024, 2, 29, 22, 0, tzinfo=UTC)),
        ("20241231233000 -0100", datetime(2025, 1, 1, 0, 30, tzinfo=UTC)),
        ("  20240301193000.5 +0000 ", datetime(2024, 3, 1, 19, 30, tzinfo=UTC)),
    ],
)
def test_parse_xmltv_time_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_xmltv_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "2024030",
        "20241301000000",
        "20240230000000",
        "20240301250000",
        "20240301193000 +2500",
        "20240301193000 +0170",
        "20240301193000 EST",
    ],
)
def test_parse_xmltv_time_rejects_garbage(text: str) -> None:
    with pytest.raises(XmltvTimeError):
        parse_xmltv_time(text)
    with pytest.raises(GuideError):
        parse_xmltv_time(text)


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30)).map(
        lambda d: d.replace(microsecond=0)
    ),
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
)
def test_time_round_trips_through_any_offset(moment: datetime, offset_minutes: int) -> None:
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    local = moment.strftime("%Y%m%d%H%M%S") + f" {sign}{hours:02d}{minutes:02d}"
    parsed = parse_xmltv_time(local)
    assert parsed == moment.replace(tzinfo=UTC) - timedelta(minutes=offset_minutes)
    assert parse_xmltv_time(format_xmltv_time(parsed)) == parsed


# --- bounded memory ---


def _big_guide(channels: int, programmes_per_channel: int) -> Iterator[bytes]:
    yield b'<?xml version="1.0" encoding="UTF-8"?>\n<tv>\n'
    for c in range(channels):
        yield (
            f'<channel id="ch{c}.example"><display-name lang="en">Channel {c}</display-name>'
            f'<icon src="http://img.example/{c}.png"/></channel>\n'
        ).encode()
    start = NOW - timedelta(hours=6)
    for p in range(programmes_per_channel):
        begin = format_xmltv_time(start + timedelta(minutes=30 * p))
        end = format_xmltv_time(start + timedelta(minutes=30 * (p + 1)))
        for c in range(channels):
            yield (
                f'<programme start="{begin}" stop="{end}" channel="ch{c}.example">'
                f'<title lang="en">Show {p} on {c}</title>'
                f'<desc lang="en">{"A long description of the episode. " * 8}</desc>'
                '<category lang="en">Drama</category>'
                f'<episode-num system="xmltv_ns">0.{p}.</episode-num></programme>\n'
            ).encode()
    yield b"</tv>\n"


def _resident_bytes() -> int:
    with Path("/proc/self/statm").open() as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_parsing_a_multi_megabyte_guide_uses_bounded_memory(tmp_path: Path) -> None:
    """Python allocations (tracemalloc) and libxml2's C tree (resident size) stay small."""
    path = tmp_path / "big.xml"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        for chunk in _big_guide(channels=150, programmes_per_channel=50):
            handle.write(chunk)
    uncompressed = sum(len(chunk) for chunk in _big_guide(150, 50))
    assert uncompressed > 4_000_000
    baseline = _resident_bytes()
    resident_peak = baseline
    tracemalloc.start()
    try:
        count = 0
        reader = XmltvReader(path, now=NOW)
        for record in reader:
            count += isinstance(record, ProgrammeRecord)
            if count % 250 == 0:
                resident_peak = max(resident_peak, _resident_bytes())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 150 * 50 == reader.report.programmes
    assert peak < 3_000_000, f"Python peak {peak} bytes for a {uncompressed}-byte guide"
    # A fully built lxml tree of this guide takes tens of megabytes.
    assert resident_peak - baseline < 12_000_000

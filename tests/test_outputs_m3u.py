"""Tests for the streaming M3U builder."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.outputs.m3u import (
    M3UChannel,
    clean_attribute,
    clean_title,
    clean_url,
    iter_m3u,
    m3u_entry,
)

BASE = "http://192.168.1.20:5004"
EXTINF = re.compile(r'^#EXTINF:-1 ((?:[a-z-]+="[^"]*" ?)+),(.*)$')
ATTR = re.compile(r'([a-z-]+)="([^"]*)"')


def _parse(line: str) -> tuple[dict[str, str], str]:
    match = EXTINF.match(line)
    assert match is not None, line
    return dict(ATTR.findall(match.group(1))), match.group(2)


def test_simple_playlist() -> None:
    channels = [
        M3UChannel(
            name="BBC One HD",
            url=f"{BASE}/auto/v101",
            number="101",
            tvg_id="bbc1.uk",
            logo="http://img/bbc1.png",
            group="UK",
        ),
        M3UChannel(name="Bare", url=f"{BASE}/auto/v2"),
    ]
    text = "".join(iter_m3u(BASE + "/", channels))
    assert text == (
        f'#EXTM3U url-tvg="{BASE}/epg.xml" x-tvg-url="{BASE}/epg.xml"\n'
        '#EXTINF:-1 tvg-id="bbc1.uk" tvg-name="BBC One HD" tvg-logo="http://img/bbc1.png" '
        'tvg-chno="101" group-title="UK",BBC One HD\n'
        f"{BASE}/auto/v101\n"
        '#EXTINF:-1 tvg-id="" tvg-name="Bare",Bare\n'
        f"{BASE}/auto/v2\n"
    )


def test_dirty_values_are_sanitised() -> None:
    entry = m3u_entry(
        M3UChannel(
            name='Sky "Sports", 1\nHD\r\x00',
            url=" http://h/a\nb ",
            number="1\n2",
            tvg_id='id"x',
            logo="http://l/\x07a.png",
            group="News,\tWorld",
        )
    )
    lines = entry.split("\n")
    assert len(lines) == 3
    assert lines[2] == ""
    attrs, title = _parse(lines[0])
    assert title == "Sky 'Sports' 1 HD"
    assert attrs == {
        "tvg-id": "id'x",
        "tvg-name": "Sky 'Sports' 1 HD",
        "tvg-logo": "http://l/ a.png",
        "tvg-chno": "1 2",
        "group-title": "News, World",
    }
    assert lines[1] == "http://h/ab"


def test_is_a_lazy_generator() -> None:
    pulled: list[int] = []

    def channels() -> Iterator[M3UChannel]:
        for i in range(1_000_000):
            pulled.append(i)
            yield M3UChannel(name=f"C{i}", url=f"{BASE}/auto/v{i}")

    chunks = iter_m3u(BASE, channels())
    assert next(chunks).startswith("#EXTM3U")
    assert "C0" in next(chunks)
    assert len(pulled) == 1


def test_emoji_and_rtl_survive() -> None:
    attrs, title = _parse(m3u_entry(M3UChannel(name="قناة 📺 ערוץ", url="u")).split("\n")[0])
    assert title == "قناة 📺 ערוץ"
    assert attrs["tvg-name"] == title


text_st = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(text_st, text_st, text_st, text_st, text_st, text_st)
def test_every_entry_is_exactly_two_parseable_lines(
    name: str, url: str, number: str, tvg_id: str, logo: str, group: str
) -> None:
    channel = M3UChannel(name=name, url=url, number=number, tvg_id=tvg_id, logo=logo, group=group)
    entry = m3u_entry(channel)
    assert entry.endswith("\n")
    lines = entry[:-1].split("\n")
    assert len(lines) == 2
    attrs, title = _parse(lines[0])
    assert "," not in title
    assert attrs["tvg-name"] == title == clean_title(name)
    assert attrs["tvg-id"] == clean_attribute(tvg_id)
    assert lines[1] == clean_url(url)
    assert not any(c.isspace() for c in lines[1])
    for line in lines:
        assert "\r" not in line
        assert "\u2028" not in line

"""The mock panel's programme guide: deterministic programmes and their XMLTV/JSON forms.

Theory of operation
-------------------
Programmes are a pure function of (guide channel id, UTC day): each day is cut into
slots of 30 to 120 minutes drawn from a RNG seeded with ``"{epg_id}:{day}"``, so every
request — from any process, at any time — sees the same schedule, and the schedule is
always "around now". :func:`programmes` returns the programmes overlapping a window;
:func:`render_xmltv` writes a valid XMLTV document (all ``<channel>`` elements, then
all ``<programme>`` elements, as the DTD requires) and :func:`short_epg` the
``get_short_epg`` JSON shape (base64 title/description, as real panels send).
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from streamforge.mockprovider.catalog import GuideChannel, Stream

_DAY = 86_400
_TITLES = (
    "Morning News",
    "The Big Match",
    "Live: Premier Football",
    "Cooking Together",
    "Nature Now",
    "Evening News",
    "Late Show",
    "Film: The Long Road",
    "Documentary: Oceans",
    "Kids Club",
    "Quiz Night",
    "Weather",
    "Sports Tonight",
    "Music Charts",
    "Talk of the Town",
    "Film: Midnight Express",
    "Formula Weekly",
    "Travel Diaries",
    "History Hour",
    "Comedy Hour",
)
_CATEGORIES = ("News", "Sports", "Movie", "Documentary", "Kids", "Entertainment", "Music")
_SLOTS = (30, 30, 60, 60, 60, 90, 120)


@dataclass(frozen=True)
class Programme:
    channel: str
    start: int
    stop: int
    title: str
    description: str
    category: str

    @property
    def programme_id(self) -> int:
        digest = hashlib.sha256(f"{self.channel}:{self.start}".encode()).digest()
        return int.from_bytes(digest[:4], "big")


def _day_programmes(epg_id: str, day: int) -> list[Programme]:
    rng = random.Random(f"{epg_id}:{day}")
    start = day * _DAY
    end = start + _DAY
    out: list[Programme] = []
    while start < end:
        stop = min(end, start + rng.choice(_SLOTS) * 60)
        title = rng.choice(_TITLES)
        out.append(
            Programme(
                channel=epg_id,
                start=start,
                stop=stop,
                title=title,
                description=f"{title} on {epg_id}: episode {rng.randrange(1, 300)}.",
                category=rng.choice(_CATEGORIES),
            )
        )
        start = stop
    return out


def programmes(epg_id: str, start: float, stop: float) -> list[Programme]:
    """Programmes of ``epg_id`` overlapping ``[start, stop)`` (unix seconds)."""
    first = int(start) // _DAY
    last = int(stop) // _DAY
    result: list[Programme] = []
    for day in range(first, last + 1):
        result.extend(p for p in _day_programmes(epg_id, day) if p.stop > start and p.start < stop)
    return result


def _xmltv_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%d%H%M%S +0000")


def render_xmltv(
    channels: Iterable[GuideChannel], now: float, hours_before: float, hours_after: float
) -> bytes:
    """A complete XMLTV document for ``channels`` covering ``now - before .. now + after``."""
    chans = list(channels)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n',
        '<tv generator-info-name="StreamForge mock provider">\n',
    ]
    for ch in chans:
        parts.append(f"  <channel id={quoteattr(ch.epg_id)}>\n")
        parts.append(f"    <display-name>{escape(ch.display_name)}</display-name>\n")
        if ch.icon:
            parts.append(f"    <icon src={quoteattr(ch.icon)}/>\n")
        parts.append("  </channel>\n")
    lo = now - hours_before * 3600
    hi = now + hours_after * 3600
    for ch in chans:
        for p in programmes(ch.epg_id, lo, hi):
            parts.append(
                f'  <programme start="{_xmltv_time(p.start)}" stop="{_xmltv_time(p.stop)}" '
                f"channel={quoteattr(p.channel)}>\n"
                f'    <title lang="en">{escape(p.title)}</title>\n'
                f'    <desc lang="en">{escape(p.description)}</desc>\n'
                f'    <category lang="en">{escape(p.category)}</category>\n'
                "  </programme>\n"
            )
    parts.append("</tv>\n")
    return "".join(parts).encode("utf-8")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _panel_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def short_epg(stream: Stream, now: float, limit: int) -> dict[str, Any]:
    """The ``get_short_epg`` answer: the current and next ``limit`` programmes."""
    if not stream.epg_channel_id:
        return {"epg_listings": []}
    listings: list[dict[str, Any]] = []
    for p in programmes(stream.epg_channel_id, now, now + 2 * _DAY)[: max(limit, 0)]:
        listings.append(
            {
                "id": str(p.programme_id),
                "epg_id": str(p.programme_id % 100_000),
                "title": _b64(p.title),
                "lang": "en",
                "start": _panel_time(p.start),
                "end": _panel_time(p.stop),
                "description": _b64(p.description),
                "channel_id": p.channel,
                "start_timestamp": str(p.start),
                "stop_timestamp": str(p.stop),
            }
        )
    return {"epg_listings": listings}

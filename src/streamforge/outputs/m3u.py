"""Streaming M3U playlist builder.

The playlist is the "extended M3U" dialect IPTV players and Plex's M3U
tuners understand::

    #EXTM3U url-tvg="{base}/epg.xml" x-tvg-url="{base}/epg.xml"
    #EXTINF:-1 tvg-id="…" tvg-name="…" tvg-logo="…" tvg-chno="…" group-title="…",Name
    http://…/stream-url

The format has no escaping at all, so values are sanitised instead:

* attribute values lose control characters (a newline would start a new
  directive) and double quotes become single quotes (a ``"`` would end the
  attribute early);
* the display name after the comma additionally loses commas, because many
  parsers take the text after the *last* comma of the line as the name;
* the URL line loses whitespace and control characters.

Whitespace runs collapse to one space.  Empty optional attributes (logo,
group) are left out rather than written empty.

:func:`iter_m3u` is a generator yielding one ``str`` chunk per channel, so a
playlist of any size streams in constant memory while the caller iterates
database rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class M3UChannel:
    """One playlist entry; ``url`` is StreamForge's proxy URL for the channel."""

    name: str
    url: str
    number: str = ""
    tvg_id: str = ""
    logo: str = ""
    group: str = ""


def clean_attribute(value: str) -> str:
    """An attribute value safe inside ``"…"`` on a single line."""
    value = _CONTROL.sub(" ", value).replace('"', "'")
    return _SPACES.sub(" ", value).strip()


def clean_title(value: str) -> str:
    """A display name safe after the ``#EXTINF`` comma."""
    return _SPACES.sub(" ", clean_attribute(value).replace(",", " ")).strip()


def clean_url(value: str) -> str:
    """A URL line without whitespace or control characters."""
    return _SPACES.sub("", _CONTROL.sub("", value))


def m3u_header(base_url: str) -> str:
    """The ``#EXTM3U`` line pointing players at StreamForge's guide."""
    epg = clean_attribute(f"{base_url.rstrip('/')}/epg.xml")
    return f'#EXTM3U url-tvg="{epg}" x-tvg-url="{epg}"\n'


def m3u_entry(channel: M3UChannel) -> str:
    """The ``#EXTINF`` line and URL line of one channel."""
    title = clean_title(channel.name)
    attrs = [
        f'tvg-id="{clean_attribute(channel.tvg_id)}"',
        f'tvg-name="{title}"',
    ]
    logo = clean_attribute(channel.logo)
    if logo:
        attrs.append(f'tvg-logo="{logo}"')
    number = clean_attribute(channel.number)
    if number:
        attrs.append(f'tvg-chno="{number}"')
    group = clean_attribute(channel.group)
    if group:
        attrs.append(f'group-title="{group}"')
    return f"#EXTINF:-1 {' '.join(attrs)},{title}\n{clean_url(channel.url)}\n"


def iter_m3u(base_url: str, channels: Iterable[M3UChannel]) -> Iterator[str]:
    """Yield the playlist: the header, then one chunk per channel."""
    yield m3u_header(base_url)
    for channel in channels:
        yield m3u_entry(channel)

"""The XMLTV value types, shared by the guide parser and the guide writer.

:mod:`streamforge.epg.xmltv_parse` builds its records from these types,
:mod:`streamforge.epg.programme_rows` stores them in and reads them back from
the ``programmes`` table, and :mod:`streamforge.outputs.xmltv_writer` writes
them out; each type is defined here and nowhere else. Field names follow the
DTD (``xmltv.dtd``): a :class:`Credit`'s ``kind`` is the credits element
(``actor``, ``director`` …) and its ``role`` the character an actor plays.

This module imports nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "CREDIT_KINDS",
    "SUBTITLE_TYPES",
    "Audio",
    "ChannelOut",
    "Credit",
    "EpisodeNum",
    "Image",
    "LangText",
    "PreviouslyShown",
    "ProgrammeOut",
    "Rating",
    "Review",
    "Subtitles",
    "Video",
]

#: The ``<credits>`` children in the order the DTD fixes.
CREDIT_KINDS: tuple[str, ...] = (
    "director",
    "actor",
    "writer",
    "adapter",
    "producer",
    "composer",
    "editor",
    "presenter",
    "commentator",
    "guest",
)

#: The values the DTD allows for ``<subtitles type>``.
SUBTITLE_TYPES = frozenset({"teletext", "onscreen", "deaf-signed"})


@dataclass(frozen=True, slots=True)
class LangText:
    """A text value with an optional language code (``lang`` attribute)."""

    text: str
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelOut:
    """One ``<channel>``; ``display_names`` should hold at least one name
    (the id is used when it holds none)."""

    id: str
    display_names: Sequence[LangText]
    icon: str | None = None
    urls: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Image:
    """An ``<image>`` (programme artwork or credit portrait)."""

    url: str
    type: str | None = None
    size: str | None = None
    orient: str | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class Credit:
    """One credited person; ``kind`` is one of :data:`CREDIT_KINDS`,
    ``role`` (the character played) is only written for actors."""

    kind: str
    name: str
    role: str | None = None
    images: Sequence[Image] = ()
    urls: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class EpisodeNum:
    value: str
    system: str = "onscreen"


@dataclass(frozen=True, slots=True)
class Video:
    present: bool | None = None
    colour: bool | None = None
    aspect: str | None = None
    quality: str | None = None


@dataclass(frozen=True, slots=True)
class Audio:
    present: bool | None = None
    stereo: str | None = None


@dataclass(frozen=True, slots=True)
class PreviouslyShown:
    start: datetime | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Subtitles:
    type: str | None = None
    language: LangText | None = None


@dataclass(frozen=True, slots=True)
class Rating:
    """A ``<rating>`` or ``<star-rating>`` (value such as ``"PG"`` or ``"3/5"``)."""

    value: str
    system: str | None = None
    icons: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Review:
    value: str
    type: str = "text"
    source: str | None = None
    reviewer: str | None = None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class ProgrammeOut:
    """One ``<programme>`` with every field the DTD defines."""

    channel: str
    start: datetime
    stop: datetime | None
    titles: Sequence[LangText]
    sub_titles: Sequence[LangText] = ()
    descs: Sequence[LangText] = ()
    credits: Sequence[Credit] = ()
    date: str | None = None
    categories: Sequence[LangText] = ()
    keywords: Sequence[LangText] = ()
    language: LangText | None = None
    orig_language: LangText | None = None
    length_seconds: int | None = None
    icons: Sequence[str] = ()
    urls: Sequence[str] = ()
    countries: Sequence[LangText] = ()
    episode_nums: Sequence[EpisodeNum] = ()
    video: Video | None = None
    audio: Audio | None = None
    previously_shown: PreviouslyShown | None = None
    premiere: LangText | None = None
    last_chance: LangText | None = None
    new: bool = False
    subtitles: Sequence[Subtitles] = ()
    ratings: Sequence[Rating] = ()
    star_ratings: Sequence[Rating] = ()
    reviews: Sequence[Review] = ()
    images: Sequence[Image] = ()

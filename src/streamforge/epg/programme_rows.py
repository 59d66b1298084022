"""The ``programmes`` row format: how a programme is stored and read back.

A parsed programme (:class:`~streamforge.epg.xmltv_parse.ProgrammeRecord`)
is stored as one row of ``programmes``; the guide output reads the row back
as an :class:`~streamforge.epg.xmltv_types.ProgrammeOut`. Both directions
live here, so the format is spelled out once:

* plain columns hold what every programme has and what queries need:
  ``start``, ``stop``, ``title`` (the first title), ``sub_title`` and
  ``description`` (the first of each), ``categories`` (their texts),
  ``episode_num`` and ``rating`` (``[system, value]`` pairs), ``icon``,
  ``previously_shown`` and ``is_new``;
* the JSON column ``extra`` holds everything else, and only what is present,
  to keep rows small: ``titles``/``sub_titles``/``descs``/``categories`` as
  ``{"text", "lang"}`` lists when there are several or one has a language;
  ``credits`` as ``{"role": kind, "name", "character"}``; ``keywords``,
  ``countries``; ``language``, ``orig_language``, ``premiere``,
  ``last_chance`` as ``{"text", "lang"}``; ``date``, ``urls``,
  ``subtitles`` (types), ``previously_shown_channel``,
  ``previously_shown_start`` (ISO 8601); ``length`` as ``[amount, unit]``;
  ``video``/``audio`` with ``"yes"``/``"no"`` flags; ``star_ratings`` as
  ``[system, value]`` pairs.

Reading back drops what XMLTV output cannot use or must not carry: blank
texts, credit kinds the DTD does not know, subtitle types it does not allow,
and the source's channel id of ``previously-shown`` (it names a channel of
the source guide, not one StreamForge publishes). Rows written by earlier
versions read back the same way (``video``/``audio`` flags were stored as
the guide's raw text, which reads as yes only when it is ``yes``).

The round trip is pinned by ``tests/test_epg_programme_rows.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from streamforge.db.models import Programme
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

if TYPE_CHECKING:
    from streamforge.epg.xmltv_parse import ProgrammeRecord

__all__ = [
    "JSON_COLUMNS",
    "PROGRAMME_COLUMNS",
    "VALUE_COLUMNS",
    "programme_out",
    "programme_row",
    "programme_values",
]

#: Column order of :func:`programme_values` (``xmltv_channel_id`` is added at insert).
VALUE_COLUMNS = (
    "start",
    "stop",
    "title",
    "sub_title",
    "description",
    "categories",
    "episode_num",
    "icon",
    "rating",
    "previously_shown",
    "is_new",
    "extra",
)
#: The columns of :data:`VALUE_COLUMNS` stored as JSON.
JSON_COLUMNS = frozenset({"categories", "episode_num", "rating", "extra"})

#: What :func:`programme_out` reads: the row's channel, then :data:`VALUE_COLUMNS`.
PROGRAMME_COLUMNS = (
    Programme.xmltv_channel_id,
    *(getattr(Programme, name) for name in VALUE_COLUMNS),
)

_EXTRA_FIELDS = ("date", "urls", "subtitles", "previously_shown_channel")
_LENGTH_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600}

# ---------------------------------------------------------------- storing


def _lang(item: LangText | None) -> dict[str, Any] | None:
    return {"text": item.text, "lang": item.lang} if item is not None else None


def _all_texts(items: list[LangText]) -> list[dict[str, Any]]:
    return [{"text": item.text, "lang": item.lang} for item in items]


def _texts(items: list[LangText]) -> list[dict[str, Any]] | None:
    """Texts worth keeping beside the plain column: several, or with a language."""
    if not items or (len(items) == 1 and items[0].lang is None):
        return None
    return _all_texts(items)


def _flag(value: bool | None) -> str | None:
    if value is None:
        return None
    return "yes" if value else "no"


def programme_row(record: ProgrammeRecord) -> dict[str, Any]:
    """The database row of one programme (see the module docstring)."""
    extra: dict[str, Any] = {}
    for key, items in (
        ("titles", record.titles),
        ("sub_titles", record.sub_titles),
        ("descs", record.descs),
        ("categories", record.categories),
    ):
        texts = _texts(items)
        if texts:
            extra[key] = texts
    if record.credits:
        extra["credits"] = [
            {"role": c.kind, "name": c.name, "character": c.role} for c in record.credits
        ]
    if record.keywords:
        extra["keywords"] = _all_texts(record.keywords)
    if record.countries:
        extra["countries"] = _all_texts(record.countries)
    for key in ("language", "orig_language", "premiere", "last_chance"):
        value = getattr(record, key)
        if value is not None:
            extra[key] = _lang(value)
    for key in _EXTRA_FIELDS:
        value = getattr(record, key)
        if value:
            extra[key] = value
    if record.length:
        extra["length"] = list(record.length)
    if record.video:
        video = record.video
        extra["video"] = {
            "present": _flag(video.present),
            "colour": _flag(video.colour),
            "aspect": video.aspect,
            "quality": video.quality,
        }
    if record.audio:
        extra["audio"] = {"present": _flag(record.audio.present), "stereo": record.audio.stereo}
    if record.previously_shown_start:
        extra["previously_shown_start"] = record.previously_shown_start.isoformat()
    if record.star_ratings:
        extra["star_ratings"] = [list(r) for r in record.star_ratings]
    return {
        "start": record.start,
        "stop": record.stop,
        "title": record.title,
        "sub_title": record.sub_titles[0].text if record.sub_titles else None,
        "description": record.descs[0].text if record.descs else None,
        "categories": [c.text for c in record.categories],
        "episode_num": [list(e) for e in record.episode_nums],
        "icon": record.icon,
        "rating": [list(r) for r in record.ratings],
        "previously_shown": record.previously_shown,
        "is_new": record.new,
        "extra": extra,
    }


def programme_values(record: ProgrammeRecord) -> tuple[Any, ...]:
    """:func:`programme_row` as a tuple in :data:`VALUE_COLUMNS` order, with the JSON
    columns already serialised — what the staging spool keeps and the insert sends."""
    row = programme_row(record)
    return tuple(
        orjson.dumps(row[c]).decode() if c in JSON_COLUMNS else row[c] for c in VALUE_COLUMNS
    )


# ---------------------------------------------------------------- reading back


def _read_texts(items: Any) -> list[LangText]:
    return [LangText(i.get("text", ""), i.get("lang")) for i in items or [] if i.get("text")]


def _read_one(item: Any) -> LangText | None:
    if not item or not item.get("text"):
        return None
    return LangText(item["text"], item.get("lang"))


def _read_length(value: Any) -> int | None:
    if not value:
        return None
    amount, unit = int(value[0]), str(value[1])
    return amount * _LENGTH_UNITS.get(unit, 60)


def _read_flag(value: Any) -> bool | None:
    if value is None:
        return None
    return str(value).lower() == "yes"


def programme_out(channel: str, p: Any) -> ProgrammeOut:
    """The XMLTV programme of a ``programmes`` row (an ORM object or a result row
    with the :data:`PROGRAMME_COLUMNS`), published under guide id ``channel``."""
    extra: dict[str, Any] = p.extra or {}
    titles = _read_texts(extra.get("titles")) or [LangText(p.title)]
    sub_titles = _read_texts(extra.get("sub_titles")) or (
        [LangText(p.sub_title)] if p.sub_title else []
    )
    descs = _read_texts(extra.get("descs")) or ([LangText(p.description)] if p.description else [])
    categories = _read_texts(extra.get("categories")) or [
        LangText(c) for c in p.categories or [] if c
    ]
    previously: PreviouslyShown | None = None
    if p.previously_shown:
        start = extra.get("previously_shown_start")
        previously = PreviouslyShown(
            start=datetime.fromisoformat(start) if start else None,
            channel=None,
        )
    video = extra.get("video")
    audio = extra.get("audio")
    return ProgrammeOut(
        channel=channel,
        start=p.start,
        stop=p.stop,
        titles=titles,
        sub_titles=sub_titles,
        descs=descs,
        credits=[
            Credit(kind=c["role"], name=c["name"], role=c.get("character"))
            for c in extra.get("credits", [])
            if c.get("role") in CREDIT_KINDS and c.get("name")
        ],
        date=extra.get("date"),
        categories=categories,
        keywords=_read_texts(extra.get("keywords")),
        language=_read_one(extra.get("language")),
        orig_language=_read_one(extra.get("orig_language")),
        length_seconds=_read_length(extra.get("length")),
        icons=[p.icon] if p.icon else [],
        urls=list(extra.get("urls", [])),
        countries=_read_texts(extra.get("countries")),
        episode_nums=[
            EpisodeNum(value=str(v), system=str(s or "onscreen")) for s, v in p.episode_num or []
        ],
        video=Video(
            present=_read_flag(video.get("present")),
            colour=_read_flag(video.get("colour")),
            aspect=video.get("aspect"),
            quality=video.get("quality"),
        )
        if video
        else None,
        audio=Audio(present=_read_flag(audio.get("present")), stereo=audio.get("stereo"))
        if audio
        else None,
        previously_shown=previously,
        premiere=_read_one(extra.get("premiere")),
        last_chance=_read_one(extra.get("last_chance")),
        new=p.is_new,
        subtitles=[Subtitles(type=t) for t in extra.get("subtitles", []) if t in SUBTITLE_TYPES],
        ratings=[Rating(value=str(v), system=s) for s, v in p.rating or []],
        star_ratings=[Rating(value=str(v), system=s) for s, v in extra.get("star_ratings", [])],
    )

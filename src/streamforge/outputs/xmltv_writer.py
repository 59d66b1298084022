"""Streaming XMLTV writer.

Theory of operation
-------------------
The guide StreamForge serves (``/epg.xml``) can hold hundreds of thousands
of programmes, so it is never built as a tree.  The caller hands over two
iterables of small frozen dataclasses, :class:`ChannelOut` and
:class:`ProgrammeOut` (the XMLTV value types of
:mod:`streamforge.epg.xmltv_types`, re-exported here), typically generators over database rows, and
:func:`iter_xmltv` turns them into UTF-8 ``bytes`` chunks of roughly
``chunk_size`` bytes.  Memory use is bounded by one chunk plus the set of
channel ids already written, whatever the size of the guide.  The document
header is yielded on its own first, so an HTTP response starts at once.

The output follows ``xmltv.dtd`` exactly: ``<tv>`` holds every ``<channel>``
before any ``<programme>``, and children appear in the order the DTD fixes
(for a programme: title, sub-title, desc, credits, date, category, keyword,
language, orig-language, length, icon, url, country, episode-num, video,
audio, previously-shown, premiere, last-chance, new, subtitles, rating,
star-rating, review, image; inside credits: director, actor, writer,
adapter, producer, composer, editor, presenter, commentator, guest).
Enumerated attributes (image type/size/orient, review type, subtitles type)
are written only when the value is one the DTD allows.

Text comes from IPTV providers and is often dirty.  Characters XML 1.0
cannot carry (C0 controls other than TAB/LF/CR, lone surrogates,
U+FFFE/U+FFFF) and C1 controls (legal but which xmltv's validator rejects as
mis-encoded windows-1252) are removed; ``& < >`` are escaped in text and
``& < > "`` plus TAB/LF/CR in attributes (as character references, so
attribute normalisation does not eat them).  Everything else, emoji and
right-to-left scripts included, is written as is.

Beyond the DTD, the writer avoids what ``tv_validate_file`` reports as
errors: a programme whose channel was not written is dropped (unless
``drop_orphans=False``), a programme without a non-blank title is dropped,
blank descriptions and sub-titles are omitted, and ``xmltv_ns`` episode
numbers that do not have the ``season.episode.part`` shape are omitted.
Channel ids are written verbatim, because Plex matches on them.

Times are written as ``YYYYMMDDhhmmss +0000``; naive datetimes are taken to
be UTC already (that is how the database stores them).

:func:`gzip_chunks` wraps any chunk iterator in a streaming gzip encoder for
``/epg.xml.gz``.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from types import MappingProxyType

from streamforge.epg.xmltv_types import (
    CREDIT_KINDS,
    SUBTITLE_TYPES,
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
)

__all__ = [
    "CREDIT_KINDS",
    "DEFAULT_CHUNK_SIZE",
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
    "TimeFormatter",
    "Video",
    "channel_xml",
    "document_head",
    "gzip_chunks",
    "iter_xmltv",
    "programme_xml",
    "xml_attr",
    "xml_text",
    "xmltv_time",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 64 * 1024

_CREDIT_ORDER = MappingProxyType({kind: index for index, kind in enumerate(CREDIT_KINDS)})
_IMAGE_TYPES = frozenset({"poster", "backdrop", "still", "person", "character"})
_IMAGE_SIZES = frozenset({"1", "2", "3"})
_IMAGE_ORIENTS = frozenset({"P", "L"})
_REVIEW_TYPES = frozenset({"text", "url"})
_XMLTV_NS_EPISODE = re.compile(
    r"^\s*\d*(\s*/\s*\d+)?\s*\.\s*\d*(\s*/\s*\d+)?\s*\.\s*\d*(\s*/\s*\d+)?\s*$"
)

# Dropped from all output: XML-illegal characters and C1 controls.
_DROP = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff"
_DROP_RE = re.compile(f"[{_DROP}]")
_TEXT_SPECIAL = re.compile(f"[{_DROP}&<>]")
_ATTR_SPECIAL = re.compile(f'[{_DROP}&<>"\t\n\r]')


def xml_text(value: str) -> str:
    """``value`` made safe as element content."""
    if _TEXT_SPECIAL.search(value) is None:
        return value
    value = _DROP_RE.sub("", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_attr(value: str) -> str:
    """``value`` made safe inside a double-quoted attribute."""
    if _ATTR_SPECIAL.search(value) is None:
        return value
    value = _DROP_RE.sub("", value)
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def xmltv_time(moment: datetime) -> str:
    """``YYYYMMDDhhmmss +0000`` in UTC (naive datetimes are already UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"{moment.hour:02d}{moment.minute:02d}{moment.second:02d} +0000"
    )


# ---------------------------------------------------------------- fragments


def _lang_attr(lang: str | None) -> str:
    return f' lang="{xml_attr(lang)}"' if lang else ""


def _lang_elements(out: list[str], tag: str, items: Iterable[LangText], skip_blank: bool) -> None:
    for item in items:
        text = xml_text(item.text)
        if skip_blank and (not text or text.isspace()):
            continue
        if item.lang:
            out.append(f'<{tag} lang="{xml_attr(item.lang)}">{text}</{tag}>')
        else:
            out.append(f"<{tag}>{text}</{tag}>")


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _image(image: Image) -> str:
    attrs = ""
    if image.type in _IMAGE_TYPES:
        attrs += f' type="{image.type}"'
    if image.size in _IMAGE_SIZES:
        attrs += f' size="{image.size}"'
    if image.orient in _IMAGE_ORIENTS:
        attrs += f' orient="{image.orient}"'
    if image.system:
        attrs += f' system="{xml_attr(image.system)}"'
    return f"<image{attrs}>{xml_text(image.url)}</image>"


def _credits(out: list[str], credits: Sequence[Credit]) -> None:
    known = sorted(
        (c for c in credits if c.kind in _CREDIT_ORDER), key=lambda c: _CREDIT_ORDER[c.kind]
    )
    if not known:
        return
    out.append("<credits>")
    for credit in known:
        attrs = f' role="{xml_attr(credit.role)}"' if credit.kind == "actor" and credit.role else ""
        inner = xml_text(credit.name)
        inner += "".join(_image(image) for image in credit.images)
        inner += "".join(f"<url>{xml_text(url)}</url>" for url in credit.urls)
        out.append(f"<{credit.kind}{attrs}>{inner}</{credit.kind}>")
    out.append("</credits>")


def _rating(tag: str, rating: Rating) -> str:
    system = f' system="{xml_attr(rating.system)}"' if rating.system else ""
    icons = "".join(f'<icon src="{xml_attr(src)}"/>' for src in rating.icons)
    return f"<{tag}{system}><value>{xml_text(rating.value)}</value>{icons}</{tag}>"


def _review(review: Review) -> str:
    kind = review.type if review.type in _REVIEW_TYPES else "text"
    attrs = f' type="{kind}"'
    if review.source:
        attrs += f' source="{xml_attr(review.source)}"'
    if review.reviewer:
        attrs += f' reviewer="{xml_attr(review.reviewer)}"'
    attrs += _lang_attr(review.lang)
    return f"<review{attrs}>{xml_text(review.value)}</review>"


def _video(video: Video) -> str:
    inner = ""
    if video.present is not None:
        inner += f"<present>{_yes_no(video.present)}</present>"
    if video.colour is not None:
        inner += f"<colour>{_yes_no(video.colour)}</colour>"
    if video.aspect:
        inner += f"<aspect>{xml_text(video.aspect)}</aspect>"
    if video.quality:
        inner += f"<quality>{xml_text(video.quality)}</quality>"
    return f"<video>{inner}</video>"


def _audio(audio: Audio) -> str:
    inner = ""
    if audio.present is not None:
        inner += f"<present>{_yes_no(audio.present)}</present>"
    if audio.stereo:
        inner += f"<stereo>{xml_text(audio.stereo)}</stereo>"
    return f"<audio>{inner}</audio>"


def _length(seconds: int) -> str:
    if seconds % 60 == 0:
        return f'<length units="minutes">{seconds // 60}</length>'
    return f'<length units="seconds">{seconds}</length>'


def channel_xml(channel: ChannelOut) -> str:
    """The ``<channel>`` element of ``channel``."""
    out = [f'<channel id="{xml_attr(channel.id)}">']
    before = len(out)
    _lang_elements(out, "display-name", channel.display_names, skip_blank=True)
    if len(out) == before:
        out.append(f"<display-name>{xml_text(channel.id)}</display-name>")
    if channel.icon:
        out.append(f'<icon src="{xml_attr(channel.icon)}"/>')
    out.extend(f"<url>{xml_text(url)}</url>" for url in channel.urls)
    out.append("</channel>\n")
    return "".join(out)


class TimeFormatter:
    """:func:`xmltv_time` with a small memo.

    A guide repeats the same slot boundaries on every channel, so one
    document needs only a few hundred distinct timestamps; memoising them
    removes most formatting cost.  The memo is per document and is simply
    emptied when it reaches ``limit`` entries.
    """

    def __init__(self, limit: int = 8192) -> None:
        self._memo: dict[datetime, str] = {}
        self._limit = limit

    def __call__(self, moment: datetime) -> str:
        text = self._memo.get(moment)
        if text is None:
            if len(self._memo) >= self._limit:
                self._memo.clear()
            text = self._memo[moment] = xmltv_time(moment)
        return text


def programme_xml(p: ProgrammeOut, time_text: Callable[[datetime], str] = xmltv_time) -> str | None:
    """The ``<programme>`` element of ``p``, or ``None`` if it has no usable title."""
    out: list[str] = []
    _lang_elements(out, "title", p.titles, skip_blank=True)
    if not out:
        return None
    stop = f' stop="{time_text(p.stop)}"' if p.stop is not None else ""
    out.insert(0, f'<programme start="{time_text(p.start)}"{stop} channel="{xml_attr(p.channel)}">')
    if p.sub_titles:
        _lang_elements(out, "sub-title", p.sub_titles, skip_blank=True)
    if p.descs:
        _lang_elements(out, "desc", p.descs, skip_blank=True)
    if p.credits:
        _credits(out, p.credits)
    if p.date:
        out.append(f"<date>{xml_text(p.date)}</date>")
    if p.categories:
        _lang_elements(out, "category", p.categories, skip_blank=True)
    if p.keywords:
        _lang_elements(out, "keyword", p.keywords, skip_blank=True)
    if p.language is not None:
        _lang_elements(out, "language", (p.language,), skip_blank=True)
    if p.orig_language is not None:
        _lang_elements(out, "orig-language", (p.orig_language,), skip_blank=True)
    if p.length_seconds is not None and p.length_seconds >= 0:
        out.append(_length(p.length_seconds))
    if p.icons:
        out.extend(f'<icon src="{xml_attr(src)}"/>' for src in p.icons)
    if p.urls:
        out.extend(f"<url>{xml_text(url)}</url>" for url in p.urls)
    if p.countries:
        _lang_elements(out, "country", p.countries, skip_blank=True)
    if p.episode_nums:
        _episode_nums(out, p.episode_nums)
    if p.video is not None:
        out.append(_video(p.video))
    if p.audio is not None:
        out.append(_audio(p.audio))
    if p.previously_shown is not None:
        out.append(_previously_shown(p.previously_shown, time_text))
    if p.premiere is not None:
        premiere = p.premiere
        out.append(f"<premiere{_lang_attr(premiere.lang)}>{xml_text(premiere.text)}</premiere>")
    if p.last_chance is not None:
        last = p.last_chance
        out.append(f"<last-chance{_lang_attr(last.lang)}>{xml_text(last.text)}</last-chance>")
    if p.new:
        out.append("<new/>")
    if p.subtitles:
        out.extend(_subtitles(subs) for subs in p.subtitles)
    if p.ratings:
        out.extend(_rating("rating", rating) for rating in p.ratings)
    if p.star_ratings:
        out.extend(_rating("star-rating", rating) for rating in p.star_ratings)
    if p.reviews:
        out.extend(_review(review) for review in p.reviews)
    if p.images:
        out.extend(_image(image) for image in p.images)
    out.append("</programme>\n")
    return "".join(out)


def _episode_nums(out: list[str], episodes: Sequence[EpisodeNum]) -> None:
    for episode in episodes:
        if episode.system == "xmltv_ns" and not _XMLTV_NS_EPISODE.match(episode.value):
            continue
        out.append(
            f'<episode-num system="{xml_attr(episode.system)}">'
            f"{xml_text(episode.value)}</episode-num>"
        )


def _previously_shown(shown: PreviouslyShown, time_text: Callable[[datetime], str]) -> str:
    attrs = ""
    if shown.start is not None:
        attrs += f' start="{time_text(shown.start)}"'
    if shown.channel:
        attrs += f' channel="{xml_attr(shown.channel)}"'
    return f"<previously-shown{attrs}/>"


def _subtitles(subs: Subtitles) -> str:
    kind = f' type="{subs.type}"' if subs.type in SUBTITLE_TYPES else ""
    inner: list[str] = []
    if subs.language is not None:
        _lang_elements(inner, "language", (subs.language,), skip_blank=True)
    return f"<subtitles{kind}>{''.join(inner)}</subtitles>"


def document_head(
    generator_name: str = "StreamForge",
    generator_url: str | None = None,
    source_name: str | None = None,
) -> str:
    """XML declaration, DOCTYPE and the opening ``<tv>`` tag."""
    attrs = f' generator-info-name="{xml_attr(generator_name)}"'
    if generator_url:
        attrs += f' generator-info-url="{xml_attr(generator_url)}"'
    if source_name:
        attrs += f' source-info-name="{xml_attr(source_name)}"'
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n<tv{attrs}>\n'
    )


# ---------------------------------------------------------------- streaming


def iter_xmltv(
    channels: Iterable[ChannelOut],
    programmes: Iterable[ProgrammeOut],
    *,
    generator_name: str = "StreamForge",
    generator_url: str | None = None,
    source_name: str | None = None,
    drop_orphans: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Yield the whole XMLTV document as UTF-8 chunks.

    ``channels`` is consumed completely before ``programmes`` is touched.
    With ``drop_orphans`` (the default) programmes for channels that were
    not written are skipped; turning it off is only useful for testing
    validators.
    """
    yield document_head(generator_name, generator_url, source_name).encode("utf-8")
    written: set[str] = set()
    buffer: list[str] = []
    size = 0
    for channel in channels:
        written.add(channel.id)
        piece = channel_xml(channel)
        buffer.append(piece)
        size += len(piece)
        if size >= chunk_size:
            yield "".join(buffer).encode("utf-8")
            buffer.clear()
            size = 0
    orphans = untitled = 0
    time_text = TimeFormatter()
    for programme in programmes:
        if drop_orphans and programme.channel not in written:
            orphans += 1
            continue
        piece_or_none = programme_xml(programme, time_text)
        if piece_or_none is None:
            untitled += 1
            continue
        buffer.append(piece_or_none)
        size += len(piece_or_none)
        if size >= chunk_size:
            yield "".join(buffer).encode("utf-8")
            buffer.clear()
            size = 0
    buffer.append("</tv>\n")
    yield "".join(buffer).encode("utf-8")
    if orphans or untitled:
        log.info(
            "XMLTV output skipped %d programme(s) for unlisted channels and %d without a title",
            orphans,
            untitled,
        )


def gzip_chunks(chunks: Iterable[bytes], level: int = 6) -> Iterator[bytes]:
    """Compress a chunk stream into one gzip member, chunk by chunk.

    ``wbits=31`` makes zlib write the gzip header and CRC-32/size trailer
    itself.  Empty outputs (zlib still buffering) are not yielded.
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()

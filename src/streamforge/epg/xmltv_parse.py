"""Safe, streaming XMLTV import.

Theory of operation
-------------------
:class:`XmltvReader` turns an XMLTV file (plain, gzip or xz - detected from
the content by :mod:`streamforge.epg.compression`) into a *generator* of
:class:`GuideChannelRecord` and :class:`ProgrammeRecord` objects, filling an
:class:`ImportReport` as it goes. The caller imports the records into a
staging area and swaps them in one transaction, so an error half-way through
simply propagates as :class:`~streamforge.errors.GuideError`.

Bounded memory
    ``lxml.etree.iterparse`` reads the stream in chunks and reports the *end*
    of every ``<channel>`` and ``<programme>``; once an element has been turned
    into a record it is cleared and every already-processed sibling before it
    is deleted from the root, so the in-memory tree never holds more than one
    element. A 500 MB guide parses in a few megabytes. The only state kept
    across elements is the set of channel ids (for the unknown-channel check)
    and at most one programme per channel that is waiting for its ``stop``.

Safety against hostile files
    The parser is built with ``resolve_entities=False``, ``no_network=True``,
    ``load_dtd=False`` and ``huge_tree=False``: no entity is ever expanded, no
    external DTD or entity is fetched, and libxml2's size limits stay on.
    XMLTV never needs entity declarations, so a document whose internal DTD
    subset declares *any* entity (the "billion laughs" bomb, XXE such as
    ``<!ENTITY x SYSTEM "file:///etc/passwd">``, parameter entities) is
    refused as soon as the root element starts - before any content that
    could reference it is read. Documents whose root is not ``<tv>``, empty
    files, non-XML and truncated files are all reported as one-line
    :class:`GuideError` messages.

Missing stop times
    ``stop`` is optional in the DTD. When a programme has none, it is held
    back until the next programme of the same channel arrives and then gets
    that programme's ``start`` as its ``stop`` (guides list a channel's
    programmes in time order); the last one of a channel keeps ``stop=None``.

Window filtering
    Only programmes overlapping ``[now - days_back, now + days_ahead)`` are
    yielded; everything skipped is counted in :attr:`ImportReport.skipped`
    under a :class:`SkipReason` value.

The DTD's content model puts every ``<channel>`` before the first
``<programme>``, so a programme whose channel has not been declared by then
is skipped as ``unknown_channel``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, BinaryIO

from lxml import etree

from streamforge import guide_number
from streamforge.epg.compression import (
    DEFAULT_MAX_UNCOMPRESSED,
    GuideStream,
    ProgressCallback,
    open_guide,
)
from streamforge.epg.xmltv_time import XmltvTimeError, parse_xmltv_time
from streamforge.epg.xmltv_types import CREDIT_KINDS, Audio, Credit, LangText, Video
from streamforge.errors import GuideError

GuideSource = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True, slots=True)
class GuideChannelRecord:
    """One ``<channel>``.

    ``display_names`` keeps the document order (the first is the preferred
    name) and each name's language; :attr:`names` gives just the strings.
    ``lcn`` comes from an ``<lcn>`` element or, failing that, from the first
    display name that is a plain number; it is always a valid GuideNumber
    (:mod:`streamforge.guide_number`): an ``<lcn>`` that is not one is dropped
    and counted as ``invalid_lcn`` in the import report.
    """

    xmltv_id: str
    display_names: list[LangText]
    icon: str | None = None
    urls: list[str] = field(default_factory=list)
    lcn: str | None = None

    @property
    def names(self) -> list[str]:
        """The display names without their languages, in document order."""
        return [name.text for name in self.display_names]


@dataclass(frozen=True, slots=True)
class ProgrammeRecord:
    """One ``<programme>`` with every field of the DTD subset StreamForge keeps.

    ``start``/``stop`` are aware UTC datetimes; ``stop`` is ``None`` only for
    the last programme of a channel that had no ``stop`` attribute. Pairs in
    ``episode_nums``, ``ratings`` and ``star_ratings`` are ``(system, value)``;
    the episode-num system defaults to ``"onscreen"`` as the DTD says.
    """

    channel_id: str
    start: datetime
    stop: datetime | None
    titles: list[LangText]
    sub_titles: list[LangText] = field(default_factory=list)
    descs: list[LangText] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)
    date: str | None = None
    categories: list[LangText] = field(default_factory=list)
    keywords: list[LangText] = field(default_factory=list)
    language: LangText | None = None
    orig_language: LangText | None = None
    length: tuple[int, str] | None = None
    icon: str | None = None
    urls: list[str] = field(default_factory=list)
    countries: list[LangText] = field(default_factory=list)
    episode_nums: list[tuple[str, str]] = field(default_factory=list)
    video: Video | None = None
    audio: Audio | None = None
    previously_shown: bool = False
    previously_shown_start: datetime | None = None
    previously_shown_channel: str | None = None
    premiere: LangText | None = None
    last_chance: LangText | None = None
    new: bool = False
    subtitles: list[str] = field(default_factory=list)
    ratings: list[tuple[str | None, str]] = field(default_factory=list)
    star_ratings: list[tuple[str | None, str]] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The first (preferred) title."""
        return self.titles[0].text


class SkipReason(enum.StrEnum):
    """Why an element was not imported (keys of :attr:`ImportReport.skipped`)."""

    OUTSIDE_WINDOW = "outside_window"
    UNKNOWN_CHANNEL = "unknown_channel"
    MISSING_CHANNEL = "missing_channel"
    BAD_TIME = "bad_time"
    STOP_BEFORE_START = "stop_before_start"
    MISSING_TITLE = "missing_title"
    CHANNEL_WITHOUT_ID = "channel_without_id"
    DUPLICATE_CHANNEL = "duplicate_channel"
    #: An ``<lcn>`` that is not a GuideNumber (the channel is kept, without it).
    INVALID_LCN = "invalid_lcn"


@dataclass(slots=True)
class ImportReport:
    """Counts of one import: records yielded and elements skipped by reason."""

    channels: int = 0
    programmes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0

    def skip(self, reason: SkipReason) -> None:
        """Count one skipped element."""
        self.skipped[reason.value] = self.skipped.get(reason.value, 0) + 1

    @property
    def skipped_total(self) -> int:
        """All skipped elements, whatever the reason."""
        return sum(self.skipped.values())


@dataclass(frozen=True, slots=True)
class ImportWindow:
    """Programmes kept: those overlapping ``[now - days_back, now + days_ahead)``."""

    days_back: float = 1.0
    days_ahead: float = 7.0

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The window's start and end around ``now``."""
        return now - timedelta(days=self.days_back), now + timedelta(days=self.days_ahead)


GuideRecord = GuideChannelRecord | ProgrammeRecord


def _text(element: Any) -> str:
    value = element.text
    return value.strip() if value else ""


def _lang_text(element: Any) -> LangText:
    return LangText(_text(element), element.get("lang"))


def _child_texts(element: Any, keep: frozenset[str]) -> dict[str, str]:
    return {child.tag: _text(child) for child in element if child.tag in keep}


_LANG_TEXT_LISTS = MappingProxyType(
    {
        "sub-title": "sub_titles",
        "desc": "descs",
        "category": "categories",
        "keyword": "keywords",
        "country": "countries",
    }
)
_VIDEO_KEYS = frozenset({"present", "colour", "aspect", "quality"})
_AUDIO_KEYS = frozenset({"present", "stereo"})
_CREDIT_KINDS = frozenset(CREDIT_KINDS)


def _yes(value: str | None) -> bool | None:
    """A DTD yes/no value (``None`` when absent; anything but ``yes`` is no)."""
    if value is None:
        return None
    return value.lower() == "yes"


def _value_pair(element: Any) -> tuple[str | None, str] | None:
    value = element.findtext("value")
    if value is None or not value.strip():
        return None
    return element.get("system"), value.strip()


def _parse_channel(
    element: Any, xmltv_id: str, report: ImportReport | None = None
) -> GuideChannelRecord:
    names: list[LangText] = []
    icon: str | None = None
    urls: list[str] = []
    lcn: str | None = None
    for child in element:
        tag = child.tag
        if tag == "display-name":
            name = _lang_text(child)
            if name.text:
                names.append(name)
        elif tag == "icon" and icon is None:
            icon = child.get("src")
        elif tag == "url":
            url = _text(child)
            if url:
                urls.append(url)
        elif tag == "lcn" and lcn is None:
            lcn = _text(child) or None
            if lcn is not None and not guide_number.is_valid(lcn):
                if report is not None:
                    report.skip(SkipReason.INVALID_LCN)
                lcn = None
    if lcn is None:
        lcn = next((name.text for name in names if guide_number.is_valid(name.text)), None)
    return GuideChannelRecord(xmltv_id, names, icon, urls, lcn)


class _ProgrammeBuilder:
    """Collects a ``<programme>``'s children into :class:`ProgrammeRecord` fields."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.titles: list[LangText] = []

    def _append(self, name: str, value: object) -> None:
        self.fields.setdefault(name, []).append(value)

    def add(self, child: Any) -> None:
        """Take one child element (the common ones are tested first)."""
        tag = child.tag
        text = child.text
        if tag == "title":
            if text and text.strip():
                self.titles.append(LangText(text.strip(), child.get("lang")))
            return
        field_name = _LANG_TEXT_LISTS.get(tag)
        if field_name is not None:
            value = LangText(text.strip() if text else "", child.get("lang"))
            self.fields.setdefault(field_name, []).append(value)
            return
        self._add_other(tag, child)

    def _add_other(self, tag: object, child: Any) -> None:
        if tag == "credits":
            for person in child:
                if person.tag in _CREDIT_KINDS and _text(person):
                    character = person.get("role") if person.tag == "actor" else None
                    self._append("credits", Credit(person.tag, _text(person), character))
        elif tag == "date":
            self.fields["date"] = _text(child) or None
        elif tag == "language":
            self.fields["language"] = _lang_text(child)
        elif tag == "orig-language":
            self.fields["orig_language"] = _lang_text(child)
        elif tag == "length":
            value = _text(child)
            if value.isdigit():
                self.fields["length"] = (int(value), child.get("units", "minutes"))
        elif tag == "icon":
            self.fields.setdefault("icon", child.get("src"))
        elif tag == "url":
            self._append("urls", _text(child))
        elif tag == "episode-num":
            value = _text(child)
            if value:
                self._append("episode_nums", (child.get("system", "onscreen"), value))
        elif tag == "video":
            video = _child_texts(child, _VIDEO_KEYS)
            self.fields["video"] = Video(
                present=_yes(video.get("present")),
                colour=_yes(video.get("colour")),
                aspect=video.get("aspect"),
                quality=video.get("quality"),
            )
        elif tag == "audio":
            audio = _child_texts(child, _AUDIO_KEYS)
            self.fields["audio"] = Audio(
                present=_yes(audio.get("present")), stereo=audio.get("stereo")
            )
        elif tag == "previously-shown":
            self._previously_shown(child)
        elif tag == "premiere":
            self.fields["premiere"] = _lang_text(child)
        elif tag == "last-chance":
            self.fields["last_chance"] = _lang_text(child)
        elif tag == "new":
            self.fields["new"] = True
        elif tag == "subtitles":
            self._append("subtitles", child.get("type", ""))
        elif tag in {"rating", "star-rating"}:
            pair = _value_pair(child)
            if pair is not None:
                self._append("ratings" if tag == "rating" else "star_ratings", pair)

    def _previously_shown(self, child: Any) -> None:
        self.fields["previously_shown"] = True
        self.fields["previously_shown_channel"] = child.get("channel")
        start = child.get("start")
        if start:
            try:
                self.fields["previously_shown_start"] = parse_xmltv_time(start)
            except XmltvTimeError:
                self.fields["previously_shown_start"] = None


class XmltvReader:
    """Iterate the records of one XMLTV guide; see the module docstring.

    >>> reader = XmltvReader("guide.xml.gz", now=datetime.now(UTC))   # doctest: +SKIP
    >>> for record in reader: ...                                     # doctest: +SKIP
    >>> reader.report.programmes                                      # doctest: +SKIP

    ``window=None`` keeps every programme regardless of its time.
    ``progress(bytes_read, total)`` is called as the raw file is consumed.
    Iterating twice re-reads the source only if it is a path.
    """

    def __init__(
        self,
        source: GuideSource,
        *,
        now: datetime | None = None,
        window: ImportWindow | None = ImportWindow(),
        progress: ProgressCallback | None = None,
        max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    ) -> None:
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        self._source = source
        self._window = window.bounds(now) if window is not None else None
        self._progress = progress
        self._max_uncompressed = max_uncompressed
        self.report = ImportReport()

    def __iter__(self) -> Iterator[GuideRecord]:
        self.report = ImportReport()
        stream = open_guide(
            self._source, progress=self._progress, max_uncompressed=self._max_uncompressed
        )
        with stream:
            try:
                yield from self._parse(stream)
            except etree.XMLSyntaxError as exc:
                raise GuideError(_describe_syntax_error(exc, stream)) from exc
            finally:
                self.report.bytes_read = stream.raw_bytes_read

    def _parse(self, stream: GuideStream) -> Iterator[GuideRecord]:
        context = etree.iterparse(
            stream,
            events=("start", "end"),
            tag=("tv", "channel", "programme"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        root: Any = None
        channel_ids: set[str] = set()
        waiting: dict[str, ProgrammeRecord] = {}
        for event, element in context:
            if event == "start":
                if root is None and element.tag == "tv" and element.getparent() is None:
                    _refuse_entities(element)
                    root = element
                continue
            if root is None:
                _refuse_entities(element)
                raise GuideError("not an XMLTV guide: the root element is not <tv>")
            if element.getparent() is not root:
                continue
            if element.tag == "channel":
                record = self._channel(element, channel_ids)
                if record is not None:
                    yield record
            else:
                yield from self._programme(element, channel_ids, waiting)
            element.clear(keep_tail=False)
            while element.getprevious() is not None:
                del root[0]
        if root is None:
            document = context.root
            if document is not None:
                _refuse_entities(document)
                raise GuideError(
                    f"not an XMLTV guide: the root element is <{document.tag}>, not <tv>"
                )
            raise GuideError("guide is empty")
        for pending in waiting.values():
            yield from self._admit(pending)

    def _channel(self, element: Any, channel_ids: set[str]) -> GuideChannelRecord | None:
        xmltv_id = (element.get("id") or "").strip()
        if not xmltv_id:
            self.report.skip(SkipReason.CHANNEL_WITHOUT_ID)
            return None
        if xmltv_id in channel_ids:
            self.report.skip(SkipReason.DUPLICATE_CHANNEL)
            return None
        channel_ids.add(xmltv_id)
        self.report.channels += 1
        return _parse_channel(element, xmltv_id, self.report)

    def _programme(
        self, element: Any, channel_ids: set[str], waiting: dict[str, ProgrammeRecord]
    ) -> Iterator[ProgrammeRecord]:
        channel = (element.get("channel") or "").strip()
        if not channel:
            self.report.skip(SkipReason.MISSING_CHANNEL)
            return
        if channel not in channel_ids:
            self.report.skip(SkipReason.UNKNOWN_CHANNEL)
            return
        try:
            start = parse_xmltv_time(element.get("start") or "")
            stop_raw = element.get("stop")
            stop = parse_xmltv_time(stop_raw) if stop_raw else None
        except XmltvTimeError:
            self.report.skip(SkipReason.BAD_TIME)
            return
        if stop is not None and stop <= start:
            self.report.skip(SkipReason.STOP_BEFORE_START)
            return
        builder = _ProgrammeBuilder()
        for child in element:
            builder.add(child)
        if not builder.titles:
            self.report.skip(SkipReason.MISSING_TITLE)
            return
        record = ProgrammeRecord(channel, start, stop, builder.titles, **builder.fields)
        previous = waiting.pop(channel, None)
        if previous is not None:
            if start > previous.start:
                previous = replace(previous, stop=start)
            yield from self._admit(previous)
        if stop is None:
            waiting[channel] = record
        else:
            yield from self._admit(record)

    def _admit(self, record: ProgrammeRecord) -> Iterator[ProgrammeRecord]:
        if self._window is not None:
            window_start, window_end = self._window
            end = record.stop if record.stop is not None else record.start
            if end <= window_start or record.start >= window_end:
                self.report.skip(SkipReason.OUTSIDE_WINDOW)
                return
        self.report.programmes += 1
        yield record


def _refuse_entities(element: Any) -> None:
    """Raise if the document's internal DTD subset declares any entity."""
    dtd = element.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise GuideError(
            "unsafe XMLTV guide: it declares XML entities (entity expansion/XXE attack?)"
        )


def _describe_syntax_error(exc: Any, stream: GuideStream) -> str:
    message = str(exc.msg if getattr(exc, "msg", None) else exc).splitlines()[0]
    line, column = exc.position if getattr(exc, "position", None) else (0, 0)
    if stream.uncompressed_bytes == 0:
        return "guide is empty"
    if "amplification" in message or "entity reference loop" in message:
        return f"unsafe XMLTV guide: it declares XML entities that expand explosively ({message})"
    if "Premature end" in message or "end of data" in message or "EndTag" in message:
        return f"guide is truncated (line {line}): {message}"
    if (line <= 1 and column <= 1) or "Start tag expected" in message:
        return f"not an XML document: {message}"
    return f"malformed XMLTV at line {line}, column {column}: {message}"

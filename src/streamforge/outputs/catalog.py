"""What the outputs publish, read from the database.

The **lineup** is every published channel
(:func:`~streamforge.db.rules.published_channel`: enabled, with a GuideNumber
and at least one provider stream mapped from an account that may stream) —
the rule the M3U, the guide and the tune path (``/auto/v{n}``) share. Each
published channel has one guide id (:attr:`LineupRow.epg_id`): its XMLTV id
when that is unique and looks like ``name.domain`` (what XMLTV expects), else
``{GuideNumber}.streamforge``. The same id is the M3U's ``tvg-id`` and the
XMLTV ``<channel id>``, and the GuideNumber is the lineup's ``GuideNumber``,
the M3U's ``tvg-chno`` and a ``<display-name>`` — so Plex, Jellyfin and any
player tie guide data to channels without guessing.

Plex hides channels that have no guide data, so a published channel whose
guide has no programmes gets two-hour placeholder blocks titled with the
channel's name.

Programmes are streamed from the database in batches (``yield_per``) so a
week-long guide for thousands of channels never sits in memory. A channel
listed by several guide sources gets its programmes merged by source priority,
with the sources' and the channel's time offsets applied
(:mod:`streamforge.epg.merge`); only one channel's rows are held at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy import func, select

from streamforge.db.engine import Database
from streamforge.db.models import (
    Account,
    ChannelMapping,
    Programme,
    XmltvChannel,
    XmltvSource,
    XtreamChannel,
)
from streamforge.db.rules import published_channel, streamable_account
from streamforge.epg.merge import Placed, SourceRank, merge
from streamforge.epg.programme_rows import PROGRAMME_COLUMNS, programme_out
from streamforge.guide_number import is_valid as valid_guide_number
from streamforge.guide_number import sort_key as guide_number_key
from streamforge.outputs import xmltv_writer as xw
from streamforge.xtream.quality import QualityTier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineupRow:
    channel_id: int
    guide_number: str
    name: str
    xmltv_id: str
    icon: str | None
    group: str
    best_tier: str
    stream_count: int
    epg_id: str = ""

    @property
    def hd(self) -> bool:
        return QualityTier.parse(self.best_tier).is_hd


_SECRET_KEYS = frozenset({"username", "user", "password", "pass", "pwd", "token", "auth", "key"})


def safe_logo(url: str | None, usernames: frozenset[str] = frozenset()) -> str | None:
    """``url`` if it is a plain http(s) image address, else ``None``.

    Some providers' ``stream_icon`` URLs embed the account's credentials (in
    the user info, a ``username=``/``password=`` query or ``/user/pass/``
    path segments): such a URL is never published or shown.
    """
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    if parts.username or parts.password:
        return None
    if any(key.lower() in _SECRET_KEYS for key, _value in parse_qsl(parts.query)):
        return None
    pieces = {unquote(p) for p in parts.path.split("/") if p}
    pieces |= {unquote(v) for _k, v in parse_qsl(parts.query)}
    if any(name and name in pieces for name in usernames):
        return None
    return url.strip()


def lineup(db: Database) -> list[LineupRow]:
    """The published channels in GuideNumber order.

    A channel's logo is its guide's ``<icon>``, else the first of its provider
    streams' icons that :func:`safe_logo` lets through.

    A stored GuideNumber that is not one (see :mod:`streamforge.guide_number`;
    an older version accepted ``²`` or ``1.2.3``) leaves its channel out of
    every output, with a warning naming it, instead of failing the lineup."""
    with db.session() as session:
        rows = session.execute(
            select(
                XmltvChannel.id,
                XmltvChannel.guide_number,
                XmltvChannel.display_name,
                XmltvChannel.xmltv_id,
                XmltvChannel.icon,
                XtreamChannel.qualities,
                XtreamChannel.icon,
            )
            .join(ChannelMapping, ChannelMapping.xmltv_channel_id == XmltvChannel.id)
            .join(XtreamChannel, XtreamChannel.id == ChannelMapping.xtream_channel_id)
            .join(Account, Account.id == XtreamChannel.account_id)
            .where(published_channel())
            # Only streamable streams count towards stream_count, tier and group.
            .where(streamable_account())
            .order_by(ChannelMapping.stream_priority)
        ).all()
        usernames = frozenset(session.scalars(select(Account.username)))
    by_channel: dict[int, dict[str, Any]] = {}
    skipped: dict[int, str] = {}
    for channel_id, number, name, xmltv_id, icon, qualities, stream_icon in rows:
        if not valid_guide_number(number):
            skipped[channel_id] = f"{name!r} ({number!r})"
            continue
        entry = by_channel.setdefault(
            channel_id,
            {
                "number": number,
                "name": name,
                "xmltv_id": xmltv_id,
                "icon": safe_logo(icon),
                "tier": QualityTier.SD,
                "count": 0,
                "group": "",
            },
        )
        entry["count"] += 1
        if entry["icon"] is None:
            entry["icon"] = safe_logo(stream_icon, usernames)
        quality = qualities or {}
        entry["tier"] = max(entry["tier"], QualityTier.parse(quality.get("tier")))
        if not entry["group"] and quality.get("category"):
            entry["group"] = str(quality["category"])
    result = [
        LineupRow(
            channel_id=cid,
            guide_number=e["number"],
            name=e["name"],
            xmltv_id=e["xmltv_id"],
            icon=e["icon"],
            group=e["group"],
            best_tier=e["tier"].name,
            stream_count=e["count"],
        )
        for cid, e in by_channel.items()
    ]
    if skipped:
        log.warning(
            "left %d channel(s) out of the lineup for an invalid GuideNumber "
            "(renumber them with `streamforge channel number`): %s",
            len(skipped),
            ", ".join(sorted(skipped.values())[:10]),
        )
    result.sort(key=lambda row: guide_number_key(row.guide_number))
    seen: dict[str, int] = {}
    for row in result:
        seen[row.xmltv_id] = seen.get(row.xmltv_id, 0) + 1
    return [
        replace(
            row,
            epg_id=row.xmltv_id
            if seen[row.xmltv_id] == 1 and _looks_like_xmltv_id(row.xmltv_id)
            else f"{row.guide_number}.streamforge",
        )
        for row in result
    ]


def _looks_like_xmltv_id(value: str) -> bool:
    head, dot, tail = value.partition(".")
    return bool(head and dot and tail) and not any(c.isspace() for c in value)


def find_channel(db: Database, guide_number: str) -> LineupRow | None:
    for row in lineup(db):
        if row.guide_number == guide_number:
            return row
    return None


def channel_out(row: LineupRow, display_names: list[str]) -> xw.ChannelOut:
    names = [row.name, *(n for n in display_names if n != row.name)]
    if row.guide_number not in names:
        names.append(row.guide_number)
    return xw.ChannelOut(
        id=row.epg_id, display_names=[xw.LangText(n) for n in names], icon=row.icon
    )


def guide_channels(db: Database, rows: list[LineupRow]) -> Iterator[xw.ChannelOut]:
    ids = [row.channel_id for row in rows]
    names: dict[int, list[str]] = {}
    with db.session() as session:
        for start in range(0, len(ids), 900):
            for cid, display in session.execute(
                select(XmltvChannel.id, XmltvChannel.display_names).where(
                    XmltvChannel.id.in_(ids[start : start + 900])
                )
            ):
                names[cid] = list(display or [])
    for row in rows:
        yield channel_out(row, names.get(row.channel_id, []))


def source_ranks(session: Any) -> dict[int, SourceRank]:
    """Every guide source's priority, time offset and state, for :func:`merge`."""
    return {
        sid: SourceRank(priority=prio, offset_minutes=offset, is_active=active)
        for sid, prio, offset, active in session.execute(
            select(
                XmltvSource.id,
                XmltvSource.priority,
                XmltvSource.time_offset_minutes,
                XmltvSource.is_active,
            )
        )
    }


def channel_offsets(session: Any, ids: list[int]) -> dict[int, int]:
    """The channels' own time offsets (only the ones that are set)."""
    found: dict[int, int] = {}
    for start in range(0, len(ids), 900):
        for cid, offset in session.execute(
            select(XmltvChannel.id, XmltvChannel.time_offset_minutes)
            .where(XmltvChannel.id.in_(ids[start : start + 900]))
            .where(XmltvChannel.time_offset_minutes != 0)
        ):
            found[cid] = int(offset)
    return found


def guide_programmes(
    db: Database, rows: list[LineupRow], *, since: datetime | None = None
) -> Iterator[xw.ProgrammeOut]:
    """Programmes of the lineup's channels, by channel then start time, merged from
    their guide sources; then placeholders for the channels that have none."""
    ids = {row.channel_id: row.epg_id for row in rows}
    if not ids:
        return
    since = since or datetime(1970, 1, 1, tzinfo=UTC)
    covered: set[int] = set()
    with db.session() as session:
        ranks = source_ranks(session)
        offsets = channel_offsets(session, list(ids))
        widest = max(
            [abs(r.offset_minutes) for r in ranks.values()] + [abs(o) for o in offsets.values()],
            default=0,
        )
        # Plain columns, not ORM objects: no identity map, no per-row bookkeeping.
        stmt = (
            select(*PROGRAMME_COLUMNS, Programme.source_id)
            .where(Programme.xmltv_channel_id.in_(list(ids)))
            .where(
                func.coalesce(Programme.stop, Programme.start)
                >= since - timedelta(minutes=2 * widest)
            )
            .order_by(Programme.xmltv_channel_id, Programme.start)
            .execution_options(yield_per=2000)
        )
        for channel_id, group in groupby(session.execute(stmt), key=lambda r: r.xmltv_channel_id):
            mine = list(group)
            source = mine[0].source_id
            rank = ranks.get(source) if source is not None else None
            if (
                not offsets.get(channel_id)
                and (rank is None or (rank.is_active and not rank.offset_minutes))
                and all(r.source_id == source for r in mine)
            ):
                # One source, no shift (the common case): the rows as they are.
                for record in mine:
                    if widest and (record.stop or record.start) < since:
                        continue
                    covered.add(channel_id)
                    yield programme_out(ids[channel_id], record)
                continue
            for placed in merge(mine, ranks, offsets.get(channel_id, 0)):
                if (placed.stop or placed.start) < since:
                    continue
                covered.add(channel_id)
                out = programme_out(ids[channel_id], placed.row)
                if placed.start != out.start or placed.stop != out.stop:
                    out = replace(out, start=placed.start, stop=placed.stop)
                yield out
    for row in rows:
        if row.channel_id not in covered:
            yield from placeholder_programmes(row, datetime.now(UTC))


def merged_window(
    session: Any, channel_ids: list[int], since: datetime, until: datetime
) -> dict[int, list[Placed]]:
    """The merged programmes of some channels that overlap ``[since, until)``, by
    channel (for the admin pages: a few columns, each with the source it came from)."""
    ranks = source_ranks(session)
    offsets = channel_offsets(session, channel_ids)
    widest = timedelta(
        minutes=2
        * max(
            [abs(r.offset_minutes) for r in ranks.values()] + [abs(o) for o in offsets.values()],
            default=0,
        )
    )
    rows: dict[int, list[Any]] = {}
    for start in range(0, len(channel_ids), 900):
        for row in session.execute(
            select(
                Programme.xmltv_channel_id,
                Programme.source_id,
                Programme.start,
                Programme.stop,
                Programme.title,
                Programme.sub_title,
            )
            .where(Programme.xmltv_channel_id.in_(channel_ids[start : start + 900]))
            .where(func.coalesce(Programme.stop, Programme.start) >= since - widest)
            .where(Programme.start < until + widest)
            .order_by(Programme.xmltv_channel_id, Programme.start)
        ):
            rows.setdefault(row.xmltv_channel_id, []).append(row)
    found: dict[int, list[Placed]] = {}
    for channel_id, mine in rows.items():
        found[channel_id] = [
            p
            for p in merge(mine, ranks, offsets.get(channel_id, 0))
            if (p.stop or p.start) > since and p.start < until
        ]
    return found


PLACEHOLDER_HOURS = 2


def placeholder_programmes(row: LineupRow, now: datetime) -> Iterator[xw.ProgrammeOut]:
    """Two-hour blocks from a day back to a week ahead, titled with the channel name."""
    block = timedelta(hours=PLACEHOLDER_HOURS)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    start -= timedelta(hours=start.hour % PLACEHOLDER_HOURS)
    end = now + timedelta(days=7)
    while start < end:
        yield xw.ProgrammeOut(
            channel=row.epg_id,
            start=start,
            stop=start + block,
            titles=[xw.LangText(row.name)],
            descs=[xw.LangText(f"{row.name} (no guide data for this channel)")],
        )
        start += block

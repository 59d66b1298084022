"""Guide channels and their mappings, as the user manages them.

A guide channel is referred to by its GuideNumber, its XMLTV id, or ``#id``
(the database id). A provider stream is referred to as users know it: by its
account and the provider's stream id, ``alpha/106``
(:func:`~streamforge.streaming.candidates.stream_ref`), or by the bare stream id
where only one account has it (:meth:`ChannelService.find_stream`); the
``xtream_channels`` row id is internal (the UI and the API still accept it as
an ``int``). Everything a user does to a mapping — add, remove,
reorder, set the primary — marks the channel's mappings manual
(``is_manual=1``), so automatic matching never undoes it.

``streams_for_channel`` is the seed's ``get_all_streams_for_channel``: every
mapped stream of active, streamable accounts, by ``stream_priority`` then
``is_primary`` — what a channel session plays and fails over through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from streamforge import guide_number
from streamforge.db.engine import Database
from streamforge.db.models import (
    Account,
    ChannelHealth,
    ChannelMapping,
    XmltvChannel,
    XtreamChannel,
    utcnow,
)
from streamforge.db.rules import account_may_stream, published_channel, streamable_account
from streamforge.epg.merge import check_offset
from streamforge.errors import ConfigError, ConflictError, NotFoundError
from streamforge.events import EventLog
from streamforge.streaming.candidates import (
    ProviderStream,
    QualityTier,
    order_streams,
    stream_ref,
)
from streamforge.streaming.health.judge import ChannelJudgement

#: Bounds of a channel's own threshold (seconds), as for the settings.
HEALTH_SECONDS_RANGE = (1.0, 600.0)
_UNSET = object()

StreamRef = str | int
"""``"alpha/106"`` or ``"106"`` (what users type), or an ``xtream_channels`` row id."""


def tier_of(qualities: dict[str, Any] | None) -> QualityTier:
    return QualityTier.parse((qualities or {}).get("tier"))


@dataclass(frozen=True)
class MappingView:
    mapping_id: int
    xtream_channel_id: int
    stream_id: int
    stream_name: str
    account: str
    account_active: bool
    stream_priority: int
    is_primary: bool
    is_manual: bool
    match_confidence: float
    quality: str

    @property
    def ref(self) -> str:
        """``account/stream_id``, how users name the stream."""
        return stream_ref(self.account, self.stream_id)

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, **self.__dict__}


@dataclass(frozen=True)
class ChannelView:
    id: int
    xmltv_id: str
    name: str
    guide_number: str | None
    is_enabled: bool
    icon: str | None
    stream_count: int
    mappings: list[MappingView]
    time_offset_minutes: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "mappings"}
        data["mappings"] = [m.as_dict() for m in self.mappings]
        return data


class ChannelService:
    def __init__(self, db: Database, events: EventLog) -> None:
        self._db = db
        self._events = events

    # -- lookup -----------------------------------------------------------
    @staticmethod
    def _resolve(session: Session, ref: str) -> XmltvChannel:
        ref = ref.strip()
        if ref.startswith("#") and ref[1:].isascii() and ref[1:].isdigit():
            # Past 18 digits no row can have that id (and SQLite would overflow).
            found = session.get(XmltvChannel, int(ref[1:])) if len(ref) <= 19 else None
        else:
            found = session.scalar(select(XmltvChannel).where(XmltvChannel.guide_number == ref))
            if found is None:
                found = session.scalar(
                    select(XmltvChannel).where(XmltvChannel.xmltv_id == ref).limit(1)
                )
        if found is None:
            raise NotFoundError(f"no guide channel {ref!r} (use a GuideNumber, an XMLTV id or #id)")
        return found

    def _mappings(self, session: Session, channel_id: int) -> list[MappingView]:
        rows = session.execute(
            select(ChannelMapping, XtreamChannel, Account)
            .join(XtreamChannel, XtreamChannel.id == ChannelMapping.xtream_channel_id)
            .join(Account, Account.id == XtreamChannel.account_id)
            .where(ChannelMapping.xmltv_channel_id == channel_id)
            .order_by(
                ChannelMapping.stream_priority, ChannelMapping.is_primary.desc(), ChannelMapping.id
            )
        ).all()
        return [
            MappingView(
                mapping_id=m.id,
                xtream_channel_id=x.id,
                stream_id=x.stream_id,
                stream_name=x.name,
                account=a.name,
                account_active=account_may_stream(a.is_active, a.status),
                stream_priority=m.stream_priority,
                is_primary=m.is_primary,
                is_manual=m.is_manual,
                match_confidence=round(m.match_confidence, 3),
                quality=tier_of(x.qualities).label,
            )
            for m, x, a in rows
        ]

    def _view(self, session: Session, channel: XmltvChannel) -> ChannelView:
        mappings = self._mappings(session, channel.id)
        return ChannelView(
            id=channel.id,
            xmltv_id=channel.xmltv_id,
            name=channel.display_name,
            guide_number=channel.guide_number,
            is_enabled=channel.is_enabled,
            icon=channel.icon,
            stream_count=len(mappings),
            mappings=mappings,
            time_offset_minutes=channel.time_offset_minutes,
        )

    def get(self, ref: str) -> ChannelView:
        with self._db.session() as session:
            return self._view(session, self._resolve(session, ref))

    def all(
        self,
        *,
        search: str | None = None,
        enabled: bool | None = None,
        mapped: bool | None = None,
        limit: int = 5000,
    ) -> list[ChannelView]:
        """Channels without their mapping details (``stream_count`` only)."""
        with self._db.session() as session:
            counts = (
                select(ChannelMapping.xmltv_channel_id, func.count().label("n"))
                .group_by(ChannelMapping.xmltv_channel_id)
                .subquery()
            )
            stmt = select(XmltvChannel, func.coalesce(counts.c.n, 0)).outerjoin(
                counts, counts.c.xmltv_channel_id == XmltvChannel.id
            )
            if search:
                like = f"%{search.lower()}%"
                stmt = stmt.where(
                    or_(
                        func.lower(XmltvChannel.display_name).like(like),
                        func.lower(XmltvChannel.xmltv_id).like(like),
                        XmltvChannel.guide_number == search,
                    )
                )
            if enabled is not None:
                stmt = stmt.where(XmltvChannel.is_enabled.is_(enabled))
            if mapped is True:
                stmt = stmt.where(counts.c.n > 0)
            elif mapped is False:
                stmt = stmt.where(counts.c.n.is_(None))
            rows = session.execute(stmt.limit(limit)).all()
            views = [
                ChannelView(
                    id=c.id,
                    xmltv_id=c.xmltv_id,
                    name=c.display_name,
                    guide_number=c.guide_number,
                    is_enabled=c.is_enabled,
                    icon=c.icon,
                    stream_count=int(n),
                    mappings=[],
                    time_offset_minutes=c.time_offset_minutes,
                )
                for c, n in rows
            ]
        views.sort(
            key=lambda v: (
                v.guide_number is None,
                guide_number.sort_key(v.guide_number),
                v.name.lower(),
            )
        )
        return views

    # -- channel settings ---------------------------------------------------
    def set_enabled(self, ref: str, enabled: bool) -> ChannelView:
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            channel.is_enabled = enabled
            if enabled and channel.guide_number is None:
                channel.guide_number = next_free_number(session, channel.lcn)
            view = self._view(session, channel)
        self._events.record(
            "info",
            "channel",
            f"channel {view.name!r} {'enabled' if enabled else 'disabled'}",
            {"channel": view.name},
            channel_id=view.id,
        )
        return view

    def set_number(self, ref: str, number: str) -> ChannelView:
        number = guide_number.parse(number)
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            clash = session.scalar(
                select(XmltvChannel).where(
                    XmltvChannel.guide_number == number, XmltvChannel.id != channel.id
                )
            )
            if clash is not None:
                raise ConflictError(f"GuideNumber {number} is already {clash.display_name!r}")
            channel.guide_number = number
            return self._view(session, channel)

    # -- media judgement -------------------------------------------------------
    def health(self, ref: str) -> ChannelJudgement:
        """The channel's media judgement (the defaults when it has none of its own)."""
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            return _judgement(session.get(ChannelHealth, channel.id))

    def set_health(
        self,
        ref: str,
        *,
        audio_only: bool | None = None,
        black: bool | None = None,
        frozen: bool | None = None,
        silence: bool | None = None,
        black_seconds: float | object | None = _UNSET,
        frozen_seconds: float | object | None = _UNSET,
        silence_seconds: float | object | None = _UNSET,
    ) -> ChannelJudgement:
        """Change what is given (a ``*_seconds`` of None goes back to the setting)."""
        low, high = HEALTH_SECONDS_RANGE
        seconds = {
            "black_seconds": black_seconds,
            "frozen_seconds": frozen_seconds,
            "silence_seconds": silence_seconds,
        }
        for name, value in seconds.items():
            if value is _UNSET or value is None:
                continue
            if not isinstance(value, int | float) or not low <= float(value) <= high:
                raise ConfigError(f"{name} must be {low:g}..{high:g} seconds, got {value!r}")
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            row = session.get(ChannelHealth, channel.id)
            if row is None:
                row = ChannelHealth(
                    xmltv_channel_id=channel.id,
                    audio_only=False,
                    black_check=True,
                    frozen_check=True,
                    silence_check=True,
                )
                session.add(row)
            for attr, value in (
                ("audio_only", audio_only),
                ("black_check", black),
                ("frozen_check", frozen),
                ("silence_check", silence),
            ):
                if value is not None:
                    setattr(row, attr, bool(value))
            for name, value in seconds.items():
                if value is not _UNSET:
                    setattr(row, name, None if value is None else float(value))  # type: ignore[arg-type]
            row.updated_at = utcnow()
            session.flush()
            judgement = _judgement(row)
            name = channel.display_name
            channel_id = channel.id
        self._events.record(
            "info",
            "channel",
            f"channel {name!r}: media checks {_describe(judgement)}",
            {"channel": name, "health": judgement.as_dict()},
            channel_id=channel_id,
        )
        return judgement

    def judgement_for_channel(self, channel_id: int) -> ChannelJudgement:
        with self._db.session() as session:
            return _judgement(session.get(ChannelHealth, channel_id))

    def set_time_offset(self, ref: str, minutes: int) -> ChannelView:
        """Shift this channel's programme times by ``minutes`` in the guide output
        (on top of its guide sources' offsets)."""
        minutes = check_offset(minutes)
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            channel.time_offset_minutes = minutes
            view = self._view(session, channel)
        self._log(view, f"time offset of {view.name!r} set to {minutes:+d} min")
        return view

    # -- mappings -------------------------------------------------------------
    def _stream(
        self, session: Session, ref: StreamRef, channel_id: int | None = None
    ) -> XtreamChannel:
        """The synced stream ``ref`` names (see :meth:`find_stream`)."""
        if isinstance(ref, int):
            stream = session.get(XtreamChannel, ref)
            if stream is None:
                raise NotFoundError(f"no provider stream with id {ref}")
            return stream
        text = ref.strip()
        account, slash, number = text.rpartition("/")
        if not number.isdigit() or (slash and not account):
            raise ConfigError(
                f"{ref!r} is not a stream reference: use ACCOUNT/STREAM_ID (e.g. alpha/106) "
                "or the provider's stream id"
            )
        query = (
            select(XtreamChannel, Account.name)
            .join(Account, Account.id == XtreamChannel.account_id)
            .where(XtreamChannel.stream_id == int(number))
            .order_by(Account.name)
        )
        if slash:
            query = query.where(Account.name == account)
        found = session.execute(query).all()
        if len(found) > 1 and channel_id is not None:
            mapped = set(
                session.scalars(
                    select(ChannelMapping.xtream_channel_id).where(
                        ChannelMapping.xmltv_channel_id == channel_id
                    )
                )
            )
            found = [row for row in found if row[0].id in mapped] or found
        if not found:
            where = f" on account {account!r}" if slash else ""
            raise NotFoundError(
                f"no provider stream {text}{where} "
                "(see `streamforge channel show`, or sync the account)"
            )
        if len(found) > 1:
            refs = ", ".join(stream_ref(name, int(number)) for _stream, name in found)
            raise ConflictError(f"stream {number} is on several accounts: use one of {refs}")
        chosen: XtreamChannel = found[0][0]
        return chosen

    def find_stream(self, ref: StreamRef, channel: str | None = None) -> tuple[int, str]:
        """(row id, ``account/stream_id``) of the stream ``ref`` names.

        ``"alpha/106"`` is account ``alpha``'s provider stream 106; a bare ``"106"``
        is the one synced stream with that id — among those mapped to ``channel``
        first, when several accounts carry it — else a :class:`ConflictError`
        listing the references to choose from.
        """
        with self._db.session() as session:
            channel_id = self._resolve(session, channel).id if channel is not None else None
            stream = self._stream(session, ref, channel_id)
            name = session.scalar(select(Account.name).where(Account.id == stream.account_id))
            return stream.id, stream_ref(str(name), stream.stream_id)

    @staticmethod
    def _renumber(session: Session, channel_id: int, order: list[int]) -> None:
        """Give mappings priorities 0..n-1 in ``order`` (xtream ids); mark them manual."""
        mappings = {
            m.xtream_channel_id: m
            for m in session.scalars(
                select(ChannelMapping).where(ChannelMapping.xmltv_channel_id == channel_id)
            )
        }
        if sorted(order) != sorted(mappings):
            raise ConfigError("the new order must list every mapped stream of the channel once")
        for priority, xtream_id in enumerate(order):
            mapping = mappings[xtream_id]
            mapping.stream_priority = priority
            mapping.is_primary = priority == 0
            mapping.is_manual = True

    def _current_order(self, session: Session, channel_id: int) -> list[int]:
        return [m.xtream_channel_id for m in self._mappings(session, channel_id)]

    def map_add(self, ref: str, stream: StreamRef, position: int | None = None) -> ChannelView:
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            found = self._stream(session, stream)
            order = self._current_order(session, channel.id)
            if found.id in order:
                raise ConflictError(f"{found.name!r} is already mapped to {channel.display_name!r}")
            session.add(
                ChannelMapping(
                    xmltv_channel_id=channel.id,
                    xtream_channel_id=found.id,
                    match_confidence=1.0,
                    is_manual=True,
                )
            )
            session.flush()
            order.insert(len(order) if position is None else max(position, 0), found.id)
            self._renumber(session, channel.id, order)
            if channel.guide_number is None:
                channel.guide_number = next_free_number(session, channel.lcn)
            view = self._view(session, channel)
        self._log(view, f"mapped {found.name!r} to {view.name!r}")
        return view

    def map_remove(self, ref: str, stream: StreamRef) -> ChannelView:
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            xtream_channel_id, label = self._mapped(session, channel.id, stream)
            mapping = session.scalar(
                select(ChannelMapping).where(
                    ChannelMapping.xmltv_channel_id == channel.id,
                    ChannelMapping.xtream_channel_id == xtream_channel_id,
                )
            )
            if mapping is None:
                raise NotFoundError(f"stream {label} is not mapped to this channel")
            session.delete(mapping)
            session.flush()
            order = self._current_order(session, channel.id)
            if order:
                self._renumber(session, channel.id, order)
            view = self._view(session, channel)
        self._log(view, f"unmapped stream {label} from {view.name!r}")
        return view

    def reorder(self, ref: str, order: Sequence[StreamRef]) -> ChannelView:
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            ids = [self._mapped(session, channel.id, stream)[0] for stream in order]
            self._renumber(session, channel.id, ids)
            view = self._view(session, channel)
        self._log(view, f"reordered the streams of {view.name!r}")
        return view

    def set_primary(self, ref: str, stream: StreamRef) -> ChannelView:
        with self._db.session() as session:
            channel = self._resolve(session, ref)
            order = self._current_order(session, channel.id)
            xtream_channel_id, label = self._mapped(session, channel.id, stream)
            if xtream_channel_id not in order:
                raise NotFoundError(f"stream {label} is not mapped to this channel")
            order.remove(xtream_channel_id)
            self._renumber(session, channel.id, [xtream_channel_id, *order])
            view = self._view(session, channel)
        self._log(view, f"set the primary stream of {view.name!r}")
        return view

    def _mapped(self, session: Session, channel_id: int, stream: StreamRef) -> tuple[int, str]:
        """(row id, label) of ``stream`` as a candidate among ``channel_id``'s mappings.

        A row id that names no stream is kept as is (the caller says it is not mapped)."""
        if isinstance(stream, int) and session.get(XtreamChannel, stream) is None:
            return stream, str(stream)
        found = self._stream(session, stream, channel_id)
        name = session.scalar(select(Account.name).where(Account.id == found.account_id))
        return found.id, stream_ref(str(name), found.stream_id)

    def _log(self, view: ChannelView, message: str) -> None:
        self._events.record(
            "info",
            "mapping",
            message,
            {
                "channel": view.name,
                "order": [m.ref for m in view.mappings],
                "order_names": [m.stream_name for m in view.mappings],
            },
            channel_id=view.id,
        )

    # -- for the stream proxy -------------------------------------------------------
    def published(self, guide_number: str) -> tuple[int, str] | None:
        """(id, name) of the published channel with this GuideNumber, else ``None``.

        Published is :func:`~streamforge.db.rules.published_channel`, the rule
        ``/lineup.json``, the M3U and the guide select with, so a channel that
        is not in the lineup answers 404 when tuned.
        """
        with self._db.session() as session:
            row = session.execute(
                select(XmltvChannel.id, XmltvChannel.display_name).where(
                    XmltvChannel.guide_number == guide_number, published_channel()
                )
            ).first()
            return (int(row[0]), str(row[1])) if row is not None else None

    def streams_for_channel(self, channel_id: int) -> tuple[ProviderStream, ...]:
        with self._db.session() as session:
            rows = session.execute(
                select(ChannelMapping, XtreamChannel, Account)
                .join(XtreamChannel, XtreamChannel.id == ChannelMapping.xtream_channel_id)
                .join(Account, Account.id == XtreamChannel.account_id)
                .where(ChannelMapping.xmltv_channel_id == channel_id)
                .where(streamable_account())
            ).all()
            return order_streams(
                ProviderStream(
                    mapping_id=m.id,
                    xtream_channel_id=x.id,
                    stream_id=x.stream_id,
                    name=x.name,
                    account_id=a.id,
                    account_name=a.name,
                    priority=m.stream_priority,
                    is_primary=m.is_primary,
                    quality=tier_of(x.qualities),
                    max_connections=max(a.max_connections, 1),
                )
                for m, x, a in rows
            )


def _judgement(row: ChannelHealth | None) -> ChannelJudgement:
    if row is None:
        return ChannelJudgement()
    return ChannelJudgement(
        audio_only=row.audio_only,
        black=row.black_check,
        frozen=row.frozen_check,
        silence=row.silence_check,
        black_seconds=row.black_seconds,
        frozen_seconds=row.frozen_seconds,
        silence_seconds=row.silence_seconds,
    )


def _describe(j: ChannelJudgement) -> str:
    parts = ["radio (audio only)"] if j.audio_only else []
    for label, on, seconds in (
        ("black", j.black, j.black_seconds),
        ("frozen", j.frozen, j.frozen_seconds),
        ("silence", j.silence, j.silence_seconds),
    ):
        if not on:
            parts.append(f"no {label} check")
        elif seconds is not None:
            parts.append(f"{label} after {seconds:g} s")
    return ", ".join(parts) if parts else "defaults"


def next_free_number(session: Session, preferred: str | None = None) -> str:
    """``preferred`` (the guide's LCN) if free, else the lowest free whole number."""
    taken = set(
        session.scalars(
            select(XmltvChannel.guide_number).where(XmltvChannel.guide_number.is_not(None))
        )
    )
    if preferred and guide_number.is_valid(preferred) and preferred not in taken:
        return preferred
    number = 1
    while str(number) in taken:
        number += 1
    return str(number)

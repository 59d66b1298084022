"""SQLAlchemy 2 models: StreamForge's schema.

The seed's tables (accounts, xtream_channels, channel_mappings, event_log) plus
what the data flow needs: provider categories, guide sources, guide channels,
programmes and a small key/value ``app_state`` table (device id, admin password
hash, settings changed at run time).

All timestamps are stored as UTC; :class:`UTCDateTime` hands back aware
datetimes on every backend (SQLite has no time zone type).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and returned as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Account(Base):
    """An Xtream Codes provider account. The password is only ever stored encrypted."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    server_url: Mapped[str] = mapped_column(String(500))
    username: Mapped[str] = mapped_column(String(200))
    password_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(30), default="Unknown")
    exp_date: Mapped[datetime | None] = mapped_column(default=None)
    is_trial: Mapped[bool] = mapped_column(Boolean, default=False)
    max_connections: Mapped[int] = mapped_column(Integer, default=1)
    active_cons: Mapped[int] = mapped_column(Integer, default=0)
    allowed_output_formats: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_synced_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    channels: Mapped[list[XtreamChannel]] = relationship(
        back_populates="account", cascade="all, delete-orphan", passive_deletes=True
    )


class XtreamCategory(Base):
    __tablename__ = "xtream_categories"
    __table_args__ = (UniqueConstraint("account_id", "category_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    category_id: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(300))


class XtreamChannel(Base):
    """One live stream of one provider account."""

    __tablename__ = "xtream_channels"
    __table_args__ = (UniqueConstraint("account_id", "stream_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    stream_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(500))
    icon: Mapped[str | None] = mapped_column(String(1000), default=None)
    epg_channel_id: Mapped[str | None] = mapped_column(String(300), default=None, index=True)
    category_id: Mapped[str | None] = mapped_column(String(50), default=None)
    qualities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="channels")


class XmltvSource(Base):
    """A guide: a URL, a file, or an account's own ``xmltv.php``."""

    __tablename__ = "xmltv_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # url | file | account
    location: Mapped[str | None] = mapped_column(String(1000), default=None)
    #: The full URL sealed by the credential store when it carries credentials
    #: (``location`` then holds the redacted form only).
    location_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), default=None
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_refreshed_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Lower is preferred: for each time slot a channel's programmes come from
    #: the best source that has any (see :mod:`streamforge.outputs.catalog`).
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Minutes added to every programme time of this source (for wrong feeds).
    time_offset_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class XmltvChannel(Base):
    """A guide channel. Enabled with a GuideNumber, it is what Plex sees.

    One row per XMLTV channel id, whichever guide sources list it: the sources
    that do are its :class:`GuideChannelSource` links. ``source_id`` is its
    best-priority source (whose names, icon and LCN it shows); removing that
    source moves it to the next one (:mod:`streamforge.epg.store`), and a
    channel no source lists any more is removed.
    """

    __tablename__ = "xmltv_channels"
    __table_args__ = (
        UniqueConstraint("source_id", "xmltv_id"),
        Index("uq_xmltv_channels_xmltv_id", "xmltv_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey("xmltv_sources.id", ondelete="CASCADE"), index=True
    )
    xmltv_id: Mapped[str] = mapped_column(String(300))
    display_name: Mapped[str] = mapped_column(String(500))
    display_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    icon: Mapped[str | None] = mapped_column(String(1000), default=None)
    lcn: Mapped[str | None] = mapped_column(String(20), default=None)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    guide_number: Mapped[str | None] = mapped_column(String(20), unique=True, default=None)
    #: Minutes added to this channel's programme times (on top of its sources' offsets).
    time_offset_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class GuideChannelSource(Base):
    """A guide source listing a guide channel, with what that source says of it."""

    __tablename__ = "guide_channel_sources"
    __table_args__ = (UniqueConstraint("xmltv_channel_id", "source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    xmltv_channel_id: Mapped[int] = mapped_column(
        ForeignKey("xmltv_channels.id", ondelete="CASCADE"), index=True
    )
    source_id: Mapped[int] = mapped_column(
        ForeignKey("xmltv_sources.id", ondelete="CASCADE"), index=True
    )
    display_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    icon: Mapped[str | None] = mapped_column(String(1000), default=None)
    lcn: Mapped[str | None] = mapped_column(String(20), default=None)


class Programme(Base):
    __tablename__ = "programmes"
    __table_args__ = (Index("ix_programmes_channel_start", "xmltv_channel_id", "start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    xmltv_channel_id: Mapped[int] = mapped_column(
        ForeignKey("xmltv_channels.id", ondelete="CASCADE")
    )
    #: The guide source this programme came from (rows before 0004: filled by it).
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("xmltv_sources.id", ondelete="CASCADE"), default=None, index=True
    )
    start: Mapped[datetime] = mapped_column()
    stop: Mapped[datetime | None] = mapped_column(default=None)
    title: Mapped[str] = mapped_column(Text)
    sub_title: Mapped[str | None] = mapped_column(Text, default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    episode_num: Mapped[list[Any]] = mapped_column(JSON, default=list)
    icon: Mapped[str | None] = mapped_column(String(1000), default=None)
    rating: Mapped[list[Any]] = mapped_column(JSON, default=list)
    previously_shown: Mapped[bool] = mapped_column(Boolean, default=False)
    is_new: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ChannelMapping(Base):
    """A provider stream behind a guide channel; ``stream_priority`` 0 is the primary."""

    __tablename__ = "channel_mappings"
    __table_args__ = (
        UniqueConstraint("xmltv_channel_id", "xtream_channel_id"),
        Index("ix_channel_mappings_channel_priority", "xmltv_channel_id", "stream_priority"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    xmltv_channel_id: Mapped[int] = mapped_column(
        ForeignKey("xmltv_channels.id", ondelete="CASCADE")
    )
    xtream_channel_id: Mapped[int] = mapped_column(
        ForeignKey("xtream_channels.id", ondelete="CASCADE"), index=True
    )
    match_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    is_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    stream_priority: Mapped[int] = mapped_column(Integer, default=0)


class ChannelHealth(Base):
    """A guide channel's own media judgement (no row: the defaults and the settings).

    ``audio_only`` marks a radio channel (never failed for its picture);
    ``black_check``/``frozen_check``/``silence_check`` switch single checks off;
    the ``*_seconds`` override the global thresholds (NULL: the setting).
    """

    __tablename__ = "channel_health"

    xmltv_channel_id: Mapped[int] = mapped_column(
        ForeignKey("xmltv_channels.id", ondelete="CASCADE"), primary_key=True
    )
    audio_only: Mapped[bool] = mapped_column(Boolean, default=False)
    black_check: Mapped[bool] = mapped_column(Boolean, default=True)
    frozen_check: Mapped[bool] = mapped_column(Boolean, default=True)
    silence_check: Mapped[bool] = mapped_column(Boolean, default=True)
    black_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    frozen_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    silence_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventLogEntry(Base):
    __tablename__ = "event_log"
    __table_args__ = (Index("ix_event_log_category_time", "category", "timestamp"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    level: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(Text)
    channel_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AppState(Base):
    """Small key/value store: device id, admin password hash, run-time settings."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class TunerDevice(Base):
    """One virtual HDHomeRun (see :mod:`streamforge.outputs.devices`).

    ``number`` is the N of ``/devices/N/`` (device 1 is the root URLs);
    ``rule`` says which channels it takes: ``auto`` (consecutive GuideNumbers
    up to the per-device cap), ``group`` (the channel's published group),
    ``category`` (a provider category of any of its streams) or ``channels``
    (hand-picked only); ``match`` is the group or category name.
    """

    __tablename__ = "tuner_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    device_id: Mapped[str] = mapped_column(String(8), unique=True)
    name: Mapped[str | None] = mapped_column(String(100), default=None)
    rule: Mapped[str] = mapped_column(String(20), default="auto")
    match: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelDevice(Base):
    """The device a guide channel was put on when first published (kept, so
    adding channels never moves existing ones); ``is_manual`` marks a
    hand-picked assignment, which wins over every rule."""

    __tablename__ = "channel_devices"

    xmltv_channel_id: Mapped[int] = mapped_column(
        ForeignKey("xmltv_channels.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[int] = mapped_column(
        ForeignKey("tuner_devices.id", ondelete="CASCADE"), index=True
    )
    is_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    seq: Mapped[int] = mapped_column(Integer, default=0)


class UiSessionRow(Base):
    """One logged-in browser of the web UI (see :mod:`streamforge.web.ui.sessions`).

    In the shared database so that every node of a cluster accepts it. The
    token itself is never stored, only its SHA-256; times are Unix seconds.
    """

    __tablename__ = "ui_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    csrf: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float, index=True)

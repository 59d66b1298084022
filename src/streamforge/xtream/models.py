"""Typed views of Xtream Codes panel answers, parsed tolerantly.

Xtream Codes panels (and the many clones that imitate them) agree on field
names but little else: numbers arrive as ``12`` or ``"12"`` or ``"12.0"``,
booleans as ``1``, ``"1"``, ``true`` or ``"true"``, timestamps as Unix seconds
in a string, and any field may be ``null``, ``""`` or simply missing. The
parsers here therefore never trust a type. Each raw value goes through a small
coercion function (:func:`as_int`, :func:`as_bool`, :func:`as_text`,
:func:`as_timestamp` …) that maps every odd spelling to one Python type or to
``None``.

Shape problems that make a whole answer unusable (a list where an object was
expected, an object without ``user_info`` …) raise
:class:`~streamforge.errors.ProviderBadResponse`. Problems confined to one list
entry (a live stream without a usable ``stream_id``) only drop that entry; the
parsers report how many they dropped so the caller can log it.

The models are frozen, slotted dataclasses rather than pydantic models: a
panel can list 60,000 live streams and plain dataclasses built by hand-written
coercion parse such a list several times faster. None of them holds the
account's username or password, so every model is safe to log.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from streamforge.errors import ProviderBadResponse

T = TypeVar("T")

_TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "t"})
_NULL_WORDS = frozenset({"", "null", "none", "n/a", "nan"})

# Unix timestamps outside this window are treated as garbage (panels use 0, -1
# and 9999999999 to mean "never expires").
_MIN_TIMESTAMP = 86_400
_MAX_TIMESTAMP = 32_503_680_000  # year 3000


# -- coercion ------------------------------------------------------------------


def as_text(value: object) -> str | None:
    """A stripped string, or ``None`` for null, empty and null-like words."""
    if type(value) is str:  # fast path: most values are already strings
        text = value.strip()
    elif value is None or isinstance(value, (dict, list)):
        return None
    else:
        text = str(value).strip()
    if not text or (len(text) <= 4 and text.lower() in _NULL_WORDS):
        return None
    return text


def as_int(value: object) -> int | None:
    """An integer from ``12``, ``"12"``, ``"12.0"``, ``12.0`` or ``True``; else ``None``."""
    if type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.isdigit():  # fast path: "12"
        return int(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None


def as_bool(value: object) -> bool:
    """``True`` for ``1``, ``"1"``, ``true``, ``"yes"`` …; everything else is ``False``."""
    if value in ("0", "1"):  # fast path
        return value == "1"
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_WORDS:
            return True
        number = as_int(text)
        return number is not None and number != 0
    return False


def as_timestamp(value: object) -> datetime | None:
    """A UTC datetime from Unix seconds (number or string) or an ISO-like date string.

    ``0``, negative numbers, absurdly distant years, ``null`` and ``""`` all
    mean "no date" and give ``None``.
    """
    number = as_int(value)
    if number is not None:
        if _MIN_TIMESTAMP <= number <= _MAX_TIMESTAMP:
            return datetime.fromtimestamp(number, tz=UTC)
        return None
    text = as_text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def as_id(value: object) -> str | None:
    """An identifier as a string: ``12`` and ``"12"`` both give ``"12"``; ``"12.0"`` too."""
    if (
        type(value) is str
        and value.isascii()
        and value.isdigit()
        and (value[0] != "0" or len(value) == 1)
    ):
        return value  # fast path: canonical decimal string
    if type(value) is int:
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = as_text(value)
    if text is None:
        return None
    number = as_int(text)
    if number is not None and text.replace(".", "", 1).lstrip("-").isdigit():
        return str(number)
    return text


def as_text_list(value: object) -> tuple[str, ...]:
    """A tuple of non-empty strings from a list, a ``{"0": …}`` object or ``"a,b"``."""
    items: list[object]
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, str):
        items = list(value.split(","))
    else:
        return ()
    result: list[str] = []
    for item in items:
        text = as_text(item)
        if text is not None:
            result.append(text)
    return tuple(result)


def decode_base64_text(value: object) -> str:
    """Decode the base64 text ``get_short_epg`` uses; return the raw text if it is not base64.

    Text that decodes to invalid UTF-8 or to control characters was plain text
    after all and is returned as it came.
    """
    text = as_text(value)
    if text is None:
        return ""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text
    try:
        decoded = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return text  # plain text that happened to use only base64 letters ("News")
    if not decoded.replace("\n", " ").replace("\t", " ").isprintable():
        return text
    return decoded


def list_entries(data: object) -> Iterator[Mapping[str, Any]] | None:
    """The entries of a list answer, or ``None`` when ``data`` is not list-shaped.

    Besides a JSON array, some panels answer with an object keyed by position
    (``{"0": {…}, "1": {…}}``); that counts as a list too. Non-object entries
    are skipped.
    """
    values: list[Any]
    if isinstance(data, list):
        values = data
    elif isinstance(data, dict) and data and "user_info" not in data:
        values = list(data.values())
        if not all(isinstance(item, dict) for item in values):
            return None
    else:
        return None
    return (item for item in values if isinstance(item, dict))


# -- account -------------------------------------------------------------------


class AccountStatus(enum.StrEnum):
    """The ``user_info.status`` of an account, normalised."""

    ACTIVE = "Active"
    EXPIRED = "Expired"
    DISABLED = "Disabled"
    BANNED = "Banned"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: object) -> AccountStatus:
        """Map a panel's status word (any case; ``Inactive`` means disabled) to a member."""
        text = (as_text(value) or "").lower()
        if text in {"active", "enabled"}:
            return cls.ACTIVE
        if text in {"expired", "expire"}:
            return cls.EXPIRED
        if text in {"disabled", "inactive", "suspended"}:
            return cls.DISABLED
        if text in {"banned", "blocked"}:
            return cls.BANNED
        return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """``server_info``: where the panel says it lives and what time it thinks it is."""

    url: str | None
    port: int | None
    https_port: int | None
    server_protocol: str | None
    timezone: str | None
    timestamp_now: datetime | None

    @classmethod
    def parse(cls, data: object) -> ServerInfo | None:
        """Parse ``server_info``; ``None`` when it is absent or not an object."""
        if not isinstance(data, dict):
            return None
        return cls(
            url=as_text(data.get("url")),
            port=as_int(data.get("port")),
            https_port=as_int(data.get("https_port")),
            server_protocol=as_text(data.get("server_protocol")),
            timezone=as_text(data.get("timezone")),
            timestamp_now=as_timestamp(data.get("timestamp_now")),
        )


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """The state of a provider account (``player_api.php`` without an action).

    ``auth`` is the panel's verdict on the credentials; ``status`` and
    ``exp_date`` say whether an authenticated account may still watch.
    ``exp_date`` is ``None`` for accounts that never expire. The username and
    password the panel echoes back are deliberately not kept.
    """

    auth: bool
    status: AccountStatus
    exp_date: datetime | None
    is_trial: bool
    active_cons: int
    max_connections: int
    allowed_output_formats: tuple[str, ...]
    created_at: datetime | None
    message: str | None
    server: ServerInfo | None

    @property
    def is_active(self) -> bool:
        """True when the credentials are accepted and the account is in ``Active`` state."""
        return self.auth and self.status is AccountStatus.ACTIVE

    @classmethod
    def parse(cls, data: object) -> AccountInfo:
        """Parse the whole account object (``{"user_info": …, "server_info": …}``).

        Raises :class:`ProviderBadResponse` when ``data`` has no ``user_info``
        object, which means the URL does not point at an Xtream Codes panel.
        """
        if not isinstance(data, dict) or not isinstance(data.get("user_info"), dict):
            raise ProviderBadResponse(
                "provider answer has no user_info object (is this an Xtream Codes panel URL?)"
            )
        user: Mapping[str, Any] = data["user_info"]
        return cls(
            auth=as_bool(user.get("auth")),
            status=AccountStatus.parse(user.get("status")),
            exp_date=as_timestamp(user.get("exp_date")),
            is_trial=as_bool(user.get("is_trial")),
            active_cons=max(as_int(user.get("active_cons")) or 0, 0),
            max_connections=max(as_int(user.get("max_connections")) or 0, 0),
            allowed_output_formats=tuple(
                fmt.lower() for fmt in as_text_list(user.get("allowed_output_formats"))
            ),
            created_at=as_timestamp(user.get("created_at")),
            message=as_text(user.get("message")),
            server=ServerInfo.parse(data.get("server_info")),
        )


def looks_like_account(data: object) -> bool:
    """True when ``data`` is the account object (what expired accounts send for any action)."""
    return isinstance(data, dict) and isinstance(data.get("user_info"), dict)


# -- categories and live streams -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Category:
    """One live category (``get_live_categories``)."""

    category_id: str
    category_name: str
    parent_id: str | None

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> Category | None:
        """Parse one entry; ``None`` when it has no category id."""
        category_id = as_id(item.get("category_id"))
        if category_id is None:
            return None
        parent = as_id(item.get("parent_id"))
        return cls(
            category_id=category_id,
            category_name=as_text(item.get("category_name")) or "",
            parent_id=None if parent in {None, "0"} else parent,
        )


@dataclass(frozen=True, slots=True)
class LiveStream:
    """One live stream (``get_live_streams``).

    ``category_ids`` lists every category the stream is in (newer panels send
    ``category_ids``; older ones only ``category_id``, which is then the only
    member).
    """

    stream_id: int
    name: str
    num: int | None
    stream_type: str
    stream_icon: str | None
    epg_channel_id: str | None
    added: datetime | None
    category_id: str | None
    category_ids: tuple[str, ...]
    tv_archive: bool
    tv_archive_duration: int
    custom_sid: str | None
    direct_source: str | None

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> LiveStream | None:
        """Parse one entry; ``None`` when it has no usable integer ``stream_id``."""
        stream_id = as_int(item.get("stream_id"))
        if stream_id is None or stream_id < 0:
            return None
        category_id = as_id(item.get("category_id"))
        category_ids = _id_tuple(item.get("category_ids"))
        if category_id is None and category_ids:
            category_id = category_ids[0]
        elif category_id is not None and category_id not in category_ids:
            category_ids = (category_id, *category_ids)
        return cls(
            stream_id=stream_id,
            name=as_text(item.get("name")) or "",
            num=as_int(item.get("num")),
            stream_type=as_text(item.get("stream_type")) or "live",
            stream_icon=as_text(item.get("stream_icon")),
            epg_channel_id=as_text(item.get("epg_channel_id")),
            added=as_timestamp(item.get("added")),
            category_id=category_id,
            category_ids=category_ids,
            tv_archive=as_bool(item.get("tv_archive")),
            tv_archive_duration=max(as_int(item.get("tv_archive_duration")) or 0, 0),
            custom_sid=as_text(item.get("custom_sid")),
            direct_source=as_text(item.get("direct_source")),
        )


def _id_tuple(value: object) -> tuple[str, ...]:
    """Identifiers from a list such as ``category_ids`` (``[12, "13"]``); ``()`` otherwise."""
    if not isinstance(value, list):
        return ()
    ids: list[str] = []
    for raw in value:
        cid = as_id(raw)
        if cid is not None:
            ids.append(cid)
    return tuple(ids)


@dataclass(frozen=True, slots=True)
class EpgListing:
    """One programme from ``get_short_epg`` (title and description already base64-decoded)."""

    title: str
    description: str
    start: datetime
    end: datetime
    epg_id: str | None
    channel_id: str | None
    lang: str | None

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> EpgListing | None:
        """Parse one entry; ``None`` without a usable start and end time."""
        start = as_timestamp(item.get("start_timestamp")) or as_timestamp(item.get("start"))
        end = (
            as_timestamp(item.get("stop_timestamp"))
            or as_timestamp(item.get("end"))
            or as_timestamp(item.get("stop"))
        )
        if start is None or end is None or end <= start:
            return None
        return cls(
            title=decode_base64_text(item.get("title")),
            description=decode_base64_text(item.get("description")),
            start=start,
            end=end,
            epg_id=as_id(item.get("epg_id")),
            channel_id=as_text(item.get("channel_id")),
            lang=as_text(item.get("lang")),
        )


@dataclass(frozen=True, slots=True)
class Parsed(Generic[T]):
    """A parsed list answer and the number of entries dropped as unusable."""

    items: list[T]
    skipped: int


def parse_categories(data: object) -> Parsed[Category] | None:
    """Parse ``get_live_categories``; ``None`` when ``data`` is not list-shaped."""
    entries = list_entries(data)
    if entries is None:
        return None
    items: list[Category] = []
    skipped = 0
    for entry in entries:
        category = Category.parse(entry)
        if category is None:
            skipped += 1
        else:
            items.append(category)
    return Parsed(items, skipped)


def parse_live_streams(data: object) -> Parsed[LiveStream] | None:
    """Parse ``get_live_streams``; ``None`` when ``data`` is not list-shaped."""
    entries = list_entries(data)
    if entries is None:
        return None
    items: list[LiveStream] = []
    skipped = 0
    parse = LiveStream.parse
    for entry in entries:
        stream = parse(entry)
        if stream is None:
            skipped += 1
        else:
            items.append(stream)
    return Parsed(items, skipped)


def parse_short_epg(data: object) -> Parsed[EpgListing] | None:
    """Parse ``get_short_epg`` (``{"epg_listings": […]}``); ``None`` for any other shape."""
    if not isinstance(data, dict) or "epg_listings" not in data:
        return None
    listings = data["epg_listings"]
    if listings is None or listings == {}:
        return Parsed([], 0)
    entries = list_entries(listings)
    if entries is None:
        return None
    items: list[EpgListing] = []
    skipped = 0
    for entry in entries:
        listing = EpgListing.parse(entry)
        if listing is None:
            skipped += 1
        else:
            items.append(listing)
    return Parsed(items, skipped)

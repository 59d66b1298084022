"""Several virtual HDHomeRun devices from one StreamForge.

Plex takes about 480 channels per DVR device, so a larger published lineup is
split over **devices**. Each device is a complete HDHomeRun: its own stable
DeviceID (valid libhdhomerun check digit, persisted), FriendlyName, base URL
``/devices/N/`` on the same port (``discover.json``, ``lineup.json``,
``lineup_status.json``, ``lineup.post``, ``device.xml``, ``epg.xml``,
``playlist.m3u``, ``auto/v{n}``), UDP discovery reply and SSDP UUID.
Device 1 is served at the root URLs as well, so a Plex set up before
devices existed keeps working (its DeviceID is the one kept in ``app_state``).

A port per device
-----------------
With ``device_ports = auto`` (the default) device N ≥ 2 is also served at the
root paths of its own HTTP port, :func:`served_port` (``port + N - 1``), and
that short URL (``http://192.168.1.20:5005``) is its advertised BaseURL: the
libhdhomerun of Debian/Ubuntu (20220303, what ``hdhomerun_config`` and many
tools use) keeps a discovered BaseURL in a 29-byte field, so a longer one
(``http://192.168.1.20:5004/devices/2``) is dropped and devices of one address
are then folded into one. Plex itself identifies a device by its DeviceID and
reads BaseURL/LineupURL from its ``discover.json``. The public port is counted
from the port of the ``base_url`` setting when it is set (a proxy or Docker
mapping forwards the same run of ports). A device whose port the server could
not bind is listed under :data:`UNSERVED_PORTS_KEY` and keeps its path URL.

Which channel is on which device
--------------------------------
A published channel is on exactly one device, decided in this order:

1. **hand-picked** — ``streamforge device assign N --channels …`` (kept even
   when a rule would say otherwise);
2. **rules** — a device whose rule is ``group`` takes the channels of that
   published group (the M3U ``group-title``), ``category`` the channels with
   a stream in that provider category (names compared case-insensitively);
   the lowest-numbered matching device wins;
3. **kept** — a channel keeps the ``auto`` device it was put on when first
   published; if a device holds more than ``channels_per_device`` (the
   setting was lowered, or channels came back), the ones put there last move;
4. **new** — the remaining channels, in GuideNumber order, fill the
   highest-numbered ``auto`` device that has room, else open a new ``auto``
   device numbered after the last one.

So on a fresh setup the lineup is consecutive GuideNumber ranges of at most
``channels_per_device``; later, adding channels never moves existing ones.
Each assignment is persisted (``channel_devices``) the first time a device's
documents are served; the assignments of channels that stop being published
are kept, so a channel that comes back returns to its device.

:func:`device_plan` computes the split read-only (``Database.run``) and says
whether anything is not persisted yet; :func:`settle` computes and persists
it on the writer thread (``Database.write``); :func:`current_plan` does the
first and, when needed, the second. ``rule = channels`` devices take only
hand-picked channels.

Tuner count
-----------
All devices share the account connections and channel sessions: every device
advertises the tuner count the accounts allow (the ``tuner_count`` setting,
else the sum of ``max_connections``), and the same channel tuned through any
device is one session. A tune beyond the accounts' real limit answers 503 with
HDHomeRun error 805, whichever device it came through.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from streamforge.db.engine import Database
from streamforge.db.models import (
    Account,
    ChannelDevice,
    ChannelMapping,
    TunerDevice,
    XmltvChannel,
    XtreamCategory,
    XtreamChannel,
)
from streamforge.db.rules import streamable_account
from streamforge.errors import ConfigError, ConflictError, NotFoundError
from streamforge.guide_number import sort_key as guide_number_key
from streamforge.outputs.catalog import LineupRow, lineup
from streamforge.outputs.device_id import generate_device_id, is_valid_device_id
from streamforge.outputs.hdhomerun import TunerIdentity
from streamforge.outputs.identity import DEVICE_ID_KEY, device_auth, tuner_count
from streamforge.settings import Settings
from streamforge.state import get_state, set_state

AUTO = "auto"
GROUP = "group"
CATEGORY = "category"
CHANNELS = "channels"
RULES = (AUTO, GROUP, CATEGORY, CHANNELS)

UNSERVED_PORTS_KEY = "device_ports_unserved"
"""``app_state``: the device numbers whose own port the running server could not bind."""


@dataclass(frozen=True, slots=True)
class Device:
    """One virtual HDHomeRun (``pk`` is ``0`` for one not persisted yet)."""

    pk: int
    number: int
    device_id: str
    name: str | None = None
    rule: str = AUTO
    match: str | None = None
    port: int | None = None
    """The public port the device is served on by itself (``None``: path URL only)."""

    def friendly_name(self, settings: Settings) -> str:
        """The user's name, else ``device_name`` (device 1) or ``"device_name N"``."""
        if self.name:
            return self.name
        return settings.device_name if self.number == 1 else f"{settings.device_name} {self.number}"

    @property
    def path(self) -> str:
        """The URL path prefix of the device: ``/devices/N`` (``""`` for device 1)."""
        return "" if self.number == 1 else device_path(self.number)

    def base_url(self, base: str) -> str:
        """The device's base URL under the server's public ``base``: its own
        port when it has one, else ``base`` + :attr:`path`."""
        if self.port is not None:
            return with_port(base, self.port)
        return self.path_url(base)

    def own_url(self, base: str) -> str:
        """Where the device's own playlist and guide live: its own port, else
        ``/devices/N`` on the main port (the root ones carry every device)."""
        if self.port is not None:
            return with_port(base, self.port)
        return base.rstrip("/") + device_path(self.number)

    def path_url(self, base: str) -> str:
        """The device's URL on the main port (``/devices/N``; the root for device 1)."""
        return base.rstrip("/") + self.path

    def describe(self) -> str:
        if self.rule in (GROUP, CATEGORY):
            return f"{self.rule} {self.match!r}"
        return "hand-picked channels" if self.rule == CHANNELS else "GuideNumber ranges"


def device_path(number: int) -> str:
    """``/devices/N`` — where device N's documents live (device 1 also at the root)."""
    return f"/devices/{number}"


def with_port(base: str, port: int) -> str:
    """``base`` with its port replaced: ``http://h:5004`` → ``http://h:5006``."""
    parts = urlsplit(base.rstrip("/"))
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", ""))


def served_port(settings: Settings, number: int) -> int | None:
    """The local HTTP port device ``number`` is served on by itself (``port + N - 1``);
    ``None`` for device 1 (the main port), with ``device_ports = off`` or past 65535."""
    if number < 2 or settings.device_ports != "auto":
        return None
    port = settings.port + number - 1
    return port if port <= 65535 else None


def public_port(settings: Settings, number: int) -> int | None:
    """The port clients reach device ``number`` on by itself: counted from the
    ``base_url`` setting's port when set, else :func:`served_port`."""
    if served_port(settings, number) is None:
        return None
    if not settings.base_url:
        return served_port(settings, number)
    parts = urlsplit(settings.base_url)
    port = (parts.port or (443 if parts.scheme == "https" else 80)) + number - 1
    return port if port <= 65535 else None


def _unserved(db: Database) -> set[int]:
    stored = get_state(db, UNSERVED_PORTS_KEY)
    return {int(n) for n in stored} if isinstance(stored, list) else set()


def _with_ports(db: Database, settings: Settings, devices: Iterable[Device]) -> list[Device]:
    if settings.device_ports != "auto":
        return list(devices)
    unserved = _unserved(db)
    return [
        replace(d, port=None if d.number in unserved else public_port(settings, d.number))
        for d in devices
    ]


@dataclass(frozen=True)
class DevicePlan:
    """The split of the published lineup over the devices."""

    devices: tuple[Device, ...]
    rows_by_device: dict[int, tuple[LineupRow, ...]]
    lineup: tuple[LineupRow, ...]
    pending: bool = False
    _device_of: dict[int, int] = field(default_factory=dict, repr=False)

    def device(self, number: int) -> Device | None:
        for device in self.devices:
            if device.number == number:
                return device
        return None

    def rows(self, number: int) -> tuple[LineupRow, ...]:
        return self.rows_by_device.get(number, ())

    def device_of(self, channel_id: int) -> int | None:
        """The number of the device a published channel is on."""
        return self._device_of.get(channel_id)


@dataclass(frozen=True, slots=True)
class _Stored:
    device_pk: int
    manual: bool
    seq: int


@dataclass
class _Split:
    """What :func:`_split` decided: the device of every published channel,
    the assignments to (re)write and the auto devices to open."""

    device_of: dict[int, int]
    writes: dict[int, tuple[int, bool]]
    opened: list[int]


def _matches(device: Device, row: LineupRow, categories: dict[int, set[str]]) -> bool:
    wanted = (device.match or "").casefold()
    if not wanted:
        return False
    if device.rule == GROUP:
        return row.group.casefold() == wanted
    if device.rule == CATEGORY:
        return wanted in categories.get(row.channel_id, set())
    return False


def _split(
    rows: Iterable[LineupRow],
    devices: Iterable[Device],
    stored: dict[int, _Stored],
    categories: dict[int, set[str]],
    cap: int,
) -> _Split:
    """The assignment rules of the module docstring, on plain values."""
    ordered = sorted(devices, key=lambda d: d.number)
    by_pk = {d.pk: d for d in ordered if d.pk}
    rule_devices = [d for d in ordered if d.rule in (GROUP, CATEGORY)]
    auto = [d.number for d in ordered if d.rule == AUTO]
    numbers = [d.number for d in ordered]
    device_of: dict[int, int] = {}
    writes: dict[int, tuple[int, bool]] = {}
    rest: list[LineupRow] = []
    kept: list[tuple[int, LineupRow, int]] = []
    for row in rows:
        found = stored.get(row.channel_id)
        on = by_pk.get(found.device_pk) if found is not None else None
        if found is not None and on is not None and found.manual:
            device_of[row.channel_id] = on.number
            continue
        rule = next((d for d in rule_devices if _matches(d, row, categories)), None)
        if rule is not None:
            device_of[row.channel_id] = rule.number
            if on is None or on.number != rule.number:
                writes[row.channel_id] = (rule.number, False)
            continue
        if found is not None and on is not None and on.rule == AUTO:
            kept.append((found.seq, row, on.number))
        else:
            rest.append(row)
    counts = dict.fromkeys(auto, 0)
    for _seq, row, number in sorted(kept, key=lambda item: item[0]):
        if counts[number] < cap:
            counts[number] += 1
            device_of[row.channel_id] = number
        else:
            rest.append(row)
    opened: list[int] = []
    for row in sorted(rest, key=lambda r: guide_number_key(r.guide_number)):
        room = [n for n in auto if counts[n] < cap]
        if room:
            target = room[-1]
        else:
            target = max(numbers, default=0) + 1
            numbers.append(target)
            auto.append(target)
            opened.append(target)
            counts[target] = 0
        counts[target] += 1
        device_of[row.channel_id] = target
        writes[row.channel_id] = (target, False)
    return _Split(device_of, writes, opened)


# -- reading ----------------------------------------------------------------------------
def _load_devices(db: Database) -> list[Device]:
    with db.session() as session:
        found = session.scalars(select(TunerDevice).order_by(TunerDevice.number)).all()
        return [Device(d.id, d.number, d.device_id, d.name, d.rule, d.match) for d in found]


def _load_stored(db: Database) -> dict[int, _Stored]:
    with db.session() as session:
        return {
            cid: _Stored(pk, bool(manual), int(seq))
            for cid, pk, manual, seq in session.execute(
                select(
                    ChannelDevice.xmltv_channel_id,
                    ChannelDevice.device_id,
                    ChannelDevice.is_manual,
                    ChannelDevice.seq,
                )
            )
        }


def _load_categories(db: Database) -> dict[int, set[str]]:
    """Provider category names (case-folded) of each channel's streamable streams."""
    result: dict[int, set[str]] = {}
    with db.session() as session:
        for cid, name in session.execute(
            select(ChannelMapping.xmltv_channel_id, XtreamCategory.name)
            .join(XtreamChannel, XtreamChannel.id == ChannelMapping.xtream_channel_id)
            .join(Account, Account.id == XtreamChannel.account_id)
            .join(
                XtreamCategory,
                (XtreamCategory.account_id == XtreamChannel.account_id)
                & (XtreamCategory.category_id == XtreamChannel.category_id),
            )
            .where(streamable_account())
        ):
            result.setdefault(cid, set()).add(str(name).casefold())
    return result


def _first_device(db: Database) -> Device:
    """Device 1 before it is persisted: the DeviceID kept in ``app_state``."""
    stored = get_state(db, DEVICE_ID_KEY)
    return Device(0, 1, stored if isinstance(stored, str) and is_valid_device_id(stored) else "")


def _plan(
    db: Database, settings: Settings, devices: list[Device], rows: list[LineupRow]
) -> tuple[DevicePlan, _Split]:
    stored = _load_stored(db)
    needs_categories = any(d.rule == CATEGORY for d in devices)
    categories = _load_categories(db) if needs_categories else {}
    split = _split(rows, devices, stored, categories, settings.channels_per_device)
    every = _with_ports(db, settings, list(devices) + [Device(0, n, "") for n in split.opened])
    grouped: dict[int, list[LineupRow]] = {d.number: [] for d in every}
    for row in rows:
        grouped[split.device_of[row.channel_id]].append(row)
    plan = DevicePlan(
        devices=tuple(sorted(every, key=lambda d: d.number)),
        rows_by_device={n: tuple(r) for n, r in grouped.items()},
        lineup=tuple(rows),
        pending=bool(split.writes or split.opened or any(d.pk == 0 for d in devices)),
        _device_of=dict(split.device_of),
    )
    return plan, split


def device_plan(db: Database, settings: Settings) -> DevicePlan:
    """The split as it stands, read-only; ``pending`` when :func:`settle` has work."""
    devices = _load_devices(db) or [_first_device(db)]
    return _plan(db, settings, devices, lineup(db))[0]


# -- writing (the writer thread) ----------------------------------------------------------
def _fresh_device_id(taken: set[str]) -> str:
    rng = random.SystemRandom()
    while True:
        candidate = generate_device_id(rng)
        if candidate not in taken:
            return candidate


def _ensure_first(db: Database) -> None:
    with db.session() as session:
        if session.scalar(select(func.count(TunerDevice.id))):
            return
    first = _first_device(db).device_id
    if not first:
        first = _fresh_device_id(set())
        set_state(db, DEVICE_ID_KEY, first)
    with db.session() as session:
        session.add(TunerDevice(number=1, device_id=first, rule=AUTO))


def _create_device(
    db: Database,
    number: int,
    *,
    name: str | None = None,
    rule: str = AUTO,
    match: str | None = None,
) -> None:
    with db.session() as session:
        taken = set(session.scalars(select(TunerDevice.device_id)))
        session.add(
            TunerDevice(
                number=number, device_id=_fresh_device_id(taken), name=name, rule=rule, match=match
            )
        )


def settle(db: Database, settings: Settings) -> DevicePlan:
    """Compute the split and persist what is new (run on the writer thread)."""
    _ensure_first(db)
    rows = lineup(db)
    plan, split = _plan(db, settings, _load_devices(db), rows)
    if not plan.pending:
        return plan
    for number in split.opened:
        _create_device(db, number)
    pks = {d.number: d.pk for d in _load_devices(db)}
    with db.session() as session:
        seq = int(session.scalar(select(func.coalesce(func.max(ChannelDevice.seq), 0))) or 0)
        for channel_id, (number, manual) in split.writes.items():
            seq += 1
            session.merge(
                ChannelDevice(
                    xmltv_channel_id=channel_id, device_id=pks[number], is_manual=manual, seq=seq
                )
            )
    return _plan(db, settings, _load_devices(db), rows)[0]


async def current_plan(db: Database, settings: Settings) -> DevicePlan:
    """The split, persisted first when anything is new (what every output serves)."""
    plan = await db.run(device_plan, db, settings)
    if plan.pending:
        plan = await db.write(settle, db, settings)
    return plan


def _device_row(session: Session, number: int) -> TunerDevice:
    found = session.scalar(select(TunerDevice).where(TunerDevice.number == number))
    if found is None:
        raise NotFoundError(f"no device {number}")
    return found


def _check_rule(rule: str, match: str | None) -> str | None:
    if rule not in RULES:
        raise ConfigError(f"rule must be one of {', '.join(RULES)}")
    if rule in (GROUP, CATEGORY):
        if not match or not match.strip():
            raise ConfigError(f"a {rule} device needs the {rule} name")
        return match.strip()
    return None


def add_device(
    db: Database,
    settings: Settings,
    *,
    name: str | None = None,
    rule: str = CHANNELS,
    match: str | None = None,
) -> Device:
    """A new device numbered after the last one (writer thread)."""
    match = _check_rule(rule, match)
    settle(db, settings)
    with db.session() as session:
        number = int(session.scalar(select(func.max(TunerDevice.number))) or 0) + 1
    _create_device(db, number, name=(name or "").strip() or None, rule=rule, match=match)
    return _settled_device(db, settings, number)


def _settled_device(db: Database, settings: Settings, number: int) -> Device:
    found = settle(db, settings).device(number)
    if found is None:
        raise NotFoundError(f"no device {number}")
    return found


def update_device(
    db: Database,
    settings: Settings,
    number: int,
    *,
    name: str | None = None,
    rule: str | None = None,
    match: str | None = None,
) -> Device:
    """Rename a device (``name=""`` restores the default) or change its rule."""
    checked = _check_rule(rule, match) if rule is not None else None
    with db.session() as session:
        row = _device_row(session, number)
        if name is not None:
            row.name = name.strip() or None
        if rule is not None:
            row.rule, row.match = rule, checked
    return _settled_device(db, settings, number)


def assign_channels(
    db: Database, settings: Settings, number: int, guide_numbers: Iterable[str]
) -> Device:
    """Hand-pick channels (by GuideNumber) onto device ``number``; they stay there."""
    wanted = [g.strip() for g in guide_numbers if g.strip()]
    if not wanted:
        raise ConfigError("name at least one GuideNumber")
    settle(db, settings)
    with db.session() as session:
        device = _device_row(session, number)
        found = dict(
            session.execute(
                select(XmltvChannel.guide_number, XmltvChannel.id).where(
                    XmltvChannel.guide_number.in_(wanted)
                )
            ).all()
        )
        missing = [g for g in wanted if g not in found]
        if missing:
            raise NotFoundError(f"no channel with GuideNumber {', '.join(missing)}")
        seq = int(session.scalar(select(func.coalesce(func.max(ChannelDevice.seq), 0))) or 0)
        for guide_number in wanted:
            seq += 1
            session.merge(
                ChannelDevice(
                    xmltv_channel_id=found[guide_number],
                    device_id=device.id,
                    is_manual=True,
                    seq=seq,
                )
            )
    return _settled_device(db, settings, number)


def release_channels(db: Database, settings: Settings, guide_numbers: Iterable[str]) -> None:
    """Undo hand-picking: the channels follow the rules again."""
    wanted = [g.strip() for g in guide_numbers if g.strip()]
    with db.session() as session:
        ids = list(
            session.scalars(select(XmltvChannel.id).where(XmltvChannel.guide_number.in_(wanted)))
        )
        session.execute(
            delete(ChannelDevice).where(
                ChannelDevice.xmltv_channel_id.in_(ids), ChannelDevice.is_manual.is_(True)
            )
        )
    settle(db, settings)


def remove_device(db: Database, settings: Settings, number: int) -> DevicePlan:
    """Remove device ``number``; its channels go where the rules put new ones.

    Device 1 stays (it is the root URLs existing Plex setups use); change its
    rule instead. Numbers of the other devices never change.
    """
    if number == 1:
        raise ConflictError("device 1 is the root device and cannot be removed")
    with db.session() as session:
        session.delete(_device_row(session, number))
    return settle(db, settings)


# -- identities ---------------------------------------------------------------------
def device_identities(
    db: Database, settings: Settings, plan: DevicePlan, base: str
) -> list[TunerIdentity]:
    """The :class:`TunerIdentity` of every device of ``plan`` (persisted ones)."""
    count = tuner_count(db, settings)
    auth = device_auth(db)
    return [
        TunerIdentity(
            device_id=d.device_id,
            base_url=d.base_url(base),
            tuner_count=count,
            device_auth=auth,
            friendly_name=d.friendly_name(settings),
        )
        for d in plan.devices
        if d.device_id
    ]


def settled_identities(db: Database, settings: Settings, base: str) -> list[TunerIdentity]:
    """Every device's identity after persisting the split (writer thread)."""
    return device_identities(db, settings, settle(db, settings), base)


def device_summaries(plan: DevicePlan, settings: Settings, base: str) -> list[dict[str, object]]:
    """Plain rows for the API, the CLI and the UI."""
    cap = settings.channels_per_device
    out: list[dict[str, object]] = []
    for d in plan.devices:
        rows = plan.rows(d.number)
        out.append(
            {
                "number": d.number,
                "device_id": d.device_id,
                "name": d.friendly_name(settings),
                "custom_name": d.name,
                "rule": d.rule,
                "match": d.match,
                "takes": d.describe(),
                "channel_count": len(rows),
                "over_limit": len(rows) > cap,
                "first": rows[0].guide_number if rows else None,
                "last": rows[-1].guide_number if rows else None,
                "port": d.port,
                "urls": device_urls(base, d),
            }
        )
    return out


def device_urls(base: str, device: Device) -> dict[str, str]:
    """A device's addresses for Plex, Jellyfin/Emby and players.

    The HDHomeRun documents of device 1 are the root URLs; its own playlist
    and guide are under ``/devices/1/`` (the root ones carry every device's
    channels, for players that take one playlist). A device on its own port
    has everything at that port's root; ``path`` is its ``/devices/N`` URL on
    the main port, which always works.
    """
    root = device.base_url(base)
    path = base.rstrip("/") + device_path(device.number)
    own = device.own_url(base)
    return {
        "base": root,
        "path": path,
        "discover": f"{root}/discover.json",
        "lineup": f"{root}/lineup.json",
        "device_xml": f"{root}/device.xml",
        "m3u": f"{own}/playlist.m3u",
        "xmltv": f"{own}/epg.xml",
    }

"""What the mock panel sells: accounts, categories, live streams and guide channels.

Theory of operation
-------------------
A :class:`Catalog` is an immutable value. Accounts see either every stream
(``stream_ids is None``) or a fixed subset, which is how one mock server plays several
"providers" at once. Streams carry the Xtream fields a client reads (``num``,
``epg_channel_id``, ``category_id`` …) plus the name of the :mod:`media` profile that
feeds them, so different streams come with different resolutions, PIDs and program
numbers.

:meth:`Catalog.demo` is the small fixture the integration tests use: two accounts
whose streams share guide ids, so that one guide channel (``bbcone.uk``) has a
primary and a backup on account ``alpha`` and another backup on account ``beta``.
:meth:`Catalog.synthetic` builds a large, realistic-looking catalogue from a seed
(``UK: BBC One FHD``, ``|US| ESPN 2 HD``, ``DE: Das Erste HEVC`` …); the same seed
always gives the same catalogue. :meth:`Catalog.from_dict` reads the JSON/TOML config
file shape documented on it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any

from streamforge.errors import ConfigError, NotFoundError

#: A fixed "added" timestamp base so generated catalogues are reproducible.
_ADDED_BASE = 1_700_000_000


class AccountStatus(StrEnum):
    ACTIVE = "Active"
    EXPIRED = "Expired"
    DISABLED = "Disabled"
    BANNED = "Banned"


@dataclass(frozen=True)
class Account:
    """One provider line (username/password) and its limits."""

    username: str
    password: str
    status: AccountStatus = AccountStatus.ACTIVE
    exp_date: int | None = None
    max_connections: int = 1
    is_trial: bool = False
    allowed_output_formats: tuple[str, ...] = ("m3u8", "ts", "rtmp")
    created_at: int = _ADDED_BASE
    stream_ids: frozenset[int] | None = None

    def effective_status(self, now: float | None = None) -> AccountStatus:
        """The configured status, or ``Expired`` once ``exp_date`` has passed."""
        now = time.time() if now is None else now
        expired = self.exp_date is not None and self.exp_date < now
        if self.status is AccountStatus.ACTIVE and expired:
            return AccountStatus.EXPIRED
        return self.status

    def sees(self, stream_id: int) -> bool:
        return self.stream_ids is None or stream_id in self.stream_ids

    def __repr__(self) -> str:  # never show the password
        return f"Account(username={self.username!r}, status={self.status.value!r})"


@dataclass(frozen=True)
class Category:
    category_id: int
    name: str
    parent_id: int = 0


@dataclass(frozen=True)
class Stream:
    """One live stream as the panel lists it."""

    stream_id: int
    name: str
    category_id: int
    epg_channel_id: str | None = None
    icon: str = ""
    profile: str = "sd"
    num: int = 0
    added: int = _ADDED_BASE
    tv_archive: int = 0
    tv_archive_duration: int = 0
    custom_sid: str = ""


@dataclass(frozen=True)
class GuideChannel:
    epg_id: str
    display_name: str
    icon: str = ""


@dataclass(frozen=True)
class Catalog:
    """Accounts, categories, streams and guide channels of one mock panel."""

    accounts: tuple[Account, ...]
    categories: tuple[Category, ...]
    streams: tuple[Stream, ...]
    guide_channels: tuple[GuideChannel, ...] = ()
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        seen: set[int] = set()
        for s in self.streams:
            if s.stream_id in seen:
                raise ConfigError(f"catalog: duplicate stream_id {s.stream_id}")
            seen.add(s.stream_id)
        names = [a.username for a in self.accounts]
        if len(names) != len(set(names)):
            raise ConfigError("catalog: duplicate account username")

    # -- look-ups ---------------------------------------------------------------
    @cached_property
    def _streams_by_id(self) -> dict[int, Stream]:
        return {s.stream_id: s for s in self.streams}

    @cached_property
    def _accounts_by_name(self) -> dict[str, Account]:
        return {a.username: a for a in self.accounts}

    @cached_property
    def _guide_by_id(self) -> dict[str, GuideChannel]:
        return {g.epg_id: g for g in self.guide_channels}

    def account(self, username: str) -> Account:
        try:
            return self._accounts_by_name[username]
        except KeyError:
            raise NotFoundError(f"mock provider: no account {username!r}") from None

    def find_account(self, username: str) -> Account | None:
        return self._accounts_by_name.get(username)

    def stream(self, stream_id: int) -> Stream:
        try:
            return self._streams_by_id[stream_id]
        except KeyError:
            raise NotFoundError(f"mock provider: no stream {stream_id}") from None

    def find_stream(self, stream_id: int) -> Stream | None:
        return self._streams_by_id.get(stream_id)

    def streams_for(self, account: Account) -> list[Stream]:
        if account.stream_ids is None:
            return list(self.streams)
        return [s for s in self.streams if s.stream_id in account.stream_ids]

    def categories_for(self, account: Account) -> list[Category]:
        used = {s.category_id for s in self.streams_for(account)}
        return [c for c in self.categories if c.category_id in used]

    def guide_channel(self, epg_id: str) -> GuideChannel:
        found = self._guide_by_id.get(epg_id)
        return found if found is not None else GuideChannel(epg_id, epg_id)

    def profiles_used(self) -> set[str]:
        return {s.profile for s in self.streams}

    def with_account(self, account: Account) -> Catalog:
        """A copy with ``account`` replacing the account of the same username."""
        accounts = tuple(account if a.username == account.username else a for a in self.accounts)
        return Catalog(accounts, self.categories, self.streams, self.guide_channels, self.timezone)

    # -- constructors -------------------------------------------------------------
    @classmethod
    def demo(cls) -> Catalog:
        """Two accounts, a handful of channels, shared guide ids across accounts.

        ``bbcone.uk`` is carried by stream 101 (alpha, fhd), 102 (alpha, hd) and
        201 (beta, sd): a primary with two backups across two accounts. ``espn.us`` is
        on 104 (alpha) and 202 (beta); ``daserste.de`` on 105 (alpha) and 203 (beta).
        Stream 106 uses the 8 Mbit/s ``high`` profile.
        """
        cats = (
            Category(1, "UK | Entertainment"),
            Category(2, "US | Sports"),
            Category(3, "DE | Vollprogramm"),
            Category(4, "UK | 4K"),
        )
        streams = (
            Stream(101, "UK: BBC One FHD", 1, "bbcone.uk", profile="fhd", num=1),
            Stream(102, "UK: BBC One HD", 1, "bbcone.uk", profile="hd", num=2),
            Stream(103, "UK: BBC Two HD", 1, "bbctwo.uk", profile="hd", num=3),
            Stream(104, "|US| ESPN HD", 2, "espn.us", profile="hd", num=4),
            Stream(105, "DE: Das Erste HEVC", 3, "daserste.de", profile="fhd", num=5),
            Stream(106, "UK: BBC One 4K", 4, "bbcone.uk", profile="high", num=6),
            Stream(201, "|UK| BBC ONE SD", 1, "bbcone.uk", profile="sd", num=1),
            Stream(202, "|US| ESPN 2 HD", 2, "espn.us", profile="sd", num=2),
            Stream(203, "|DE| DAS ERSTE", 3, "daserste.de", profile="sd", num=3),
        )
        far_future = 4_102_444_800  # 2100-01-01
        accounts = (
            Account(
                "alpha",
                "alpha-secret",
                exp_date=far_future,
                max_connections=2,
                stream_ids=frozenset({101, 102, 103, 104, 105, 106}),
            ),
            Account(
                "beta",
                "beta-secret",
                exp_date=far_future,
                max_connections=1,
                stream_ids=frozenset({201, 202, 203}),
            ),
            Account(
                "expired",
                "expired-secret",
                exp_date=_ADDED_BASE,
                max_connections=1,
                stream_ids=frozenset({101}),
            ),
        )
        guide = (
            GuideChannel("bbcone.uk", "BBC One"),
            GuideChannel("bbctwo.uk", "BBC Two"),
            GuideChannel("espn.us", "ESPN"),
            GuideChannel("daserste.de", "Das Erste"),
        )
        return cls(accounts, cats, streams, guide)

    @classmethod
    def synthetic(
        cls,
        n_streams: int = 60_000,
        *,
        seed: int = 1,
        accounts: Sequence[Account] | None = None,
        first_stream_id: int = 1,
    ) -> Catalog:
        """A large reproducible catalogue of realistic names (see :func:`_synthetic`)."""
        return _synthetic(n_streams, seed, accounts, first_stream_id)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Catalog:
        """Build from a config mapping (JSON/TOML).

        Either ``{"demo": true}``, ``{"synthetic": {"n_streams": 60000, "seed": 1}}``
        (optionally with ``accounts``), or explicit ``accounts``, ``categories`` and
        ``streams`` lists whose keys are the dataclass field names; ``guide_channels``
        optional. ``stream_ids`` on an account is a list of ids (absent = all).
        """
        try:
            accounts = tuple(_account_from(a) for a in data.get("accounts", ()))
            if data.get("demo"):
                demo = cls.demo()
                return (
                    demo
                    if not accounts
                    else Catalog(accounts, demo.categories, demo.streams, demo.guide_channels)
                )
            synth = data.get("synthetic")
            if synth is not None:
                return cls.synthetic(
                    int(synth.get("n_streams", 60_000)),
                    seed=int(synth.get("seed", 1)),
                    accounts=accounts or None,
                    first_stream_id=int(synth.get("first_stream_id", 1)),
                )
            categories = tuple(Category(**c) for c in data.get("categories", ()))
            streams = tuple(Stream(**s) for s in data.get("streams", ()))
            guide = tuple(GuideChannel(**g) for g in data.get("guide_channels", ()))
            return cls(accounts, categories, streams, guide, str(data.get("timezone", "UTC")))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"mock provider catalog: {exc}") from exc


def _account_from(data: Mapping[str, Any]) -> Account:
    values = dict(data)
    if "status" in values:
        values["status"] = AccountStatus(values["status"])
    if "allowed_output_formats" in values:
        values["allowed_output_formats"] = tuple(values["allowed_output_formats"])
    if values.get("stream_ids") is not None:
        values["stream_ids"] = frozenset(int(i) for i in values["stream_ids"])
    return Account(**values)


# --------------------------------------------------------------------------- synthetic

_COUNTRIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "UK": (
            "BBC One",
            "BBC Two",
            "ITV 1",
            "Channel 4",
            "Channel 5",
            "Sky Sports Main Event",
            "Sky Sports Premier League",
            "Sky Atlantic",
            "Sky Cinema Premiere",
            "BT Sport 1",
            "Dave",
            "E4",
            "Film4",
            "Gold",
            "Comedy Central UK",
            "Eurosport 1",
        ),
        "US": (
            "ESPN",
            "ESPN 2",
            "CNN",
            "FOX News",
            "HBO",
            "HBO 2",
            "NBC",
            "CBS",
            "ABC",
            "AMC",
            "Discovery",
            "History",
            "TNT",
            "FX",
            "NFL Network",
            "NBA TV",
        ),
        "DE": (
            "Das Erste",
            "ZDF",
            "RTL",
            "SAT.1",
            "ProSieben",
            "VOX",
            "kabel eins",
            "Sky Bundesliga 1",
            "Sport1",
            "n-tv",
            "WELT",
            "3sat",
            "arte",
            "DMAX",
            "Tele 5",
            "ZDFneo",
        ),
        "FR": (
            "TF1",
            "France 2",
            "France 3",
            "Canal+",
            "M6",
            "BFM TV",
            "RMC Sport 1",
            "beIN Sports 1",
            "Arte FR",
            "TMC",
            "W9",
            "C8",
        ),
        "ES": (
            "La 1",
            "La 2",
            "Antena 3",
            "Cuatro",
            "Telecinco",
            "laSexta",
            "Movistar LaLiga",
            "DAZN LaLiga",
            "Movistar Plus+",
            "Teledeporte",
        ),
        "IT": (
            "Rai 1",
            "Rai 2",
            "Rai 3",
            "Canale 5",
            "Italia 1",
            "Rete 4",
            "Sky Sport Uno",
            "DAZN 1",
            "La7",
            "TV8",
        ),
        "NL": ("NPO 1", "NPO 2", "NPO 3", "RTL 4", "RTL 5", "SBS 6", "Ziggo Sport", "ESPN NL 1"),
        "PL": ("TVP 1", "TVP 2", "Polsat", "TVN", "Canal+ Sport", "Eleven Sports 1"),
        "TR": ("TRT 1", "ATV", "Show TV", "Star TV", "beIN Sports TR 1", "Kanal D"),
        "AR": ("MBC 1", "Al Jazeera", "beIN Sports AR 1", "Rotana Cinema", "OSN Movies"),
    }
)
_GENRES = ("Entertainment", "Sports", "News", "Movies", "Documentary", "Kids", "Music", "Regional")
_QUALITIES = (
    ("FHD", "fhd"),
    ("HD", "hd"),
    ("SD", "sd"),
    ("HEVC", "fhd"),
    ("4K", "high"),
    ("HD+", "hd"),
    ("UHD", "high"),
    ("RAW", "hd"),
    ("50FPS", "fhd"),
    ("", "sd"),
)
_PREFIX_STYLES = ("{c}: ", "|{c}| ", "{c} | ", "[{c}] ", "{c} - ", "{c}● ")
_SUFFIXES = ("", "", "", "", " (backup)", " ᴴᴰ", " *", " [Multi-Audio]", " VIP")


def _slug(name: str, country: str) -> str:
    cleaned = "".join(ch for ch in name.lower() if ch.isalnum())
    return f"{cleaned}.{country.lower()}"


def _synthetic(
    n_streams: int, seed: int, accounts: Sequence[Account] | None, first_stream_id: int
) -> Catalog:
    rng = random.Random(seed)
    countries = list(_COUNTRIES)
    categories: list[Category] = []
    cat_of: dict[tuple[str, str], int] = {}
    for country in countries:
        for genre in _GENRES:
            cid = len(categories) + 1
            cat_of[(country, genre)] = cid
            categories.append(Category(cid, f"{country} | {genre}"))
    streams: list[Stream] = []
    guide: dict[str, GuideChannel] = {}
    for i in range(n_streams):
        country = countries[rng.randrange(len(countries))]
        base = rng.choice(_COUNTRIES[country])
        # Numbered spin-offs make the catalogue larger than the base lists.
        variant = rng.randrange(8)
        numbered = variant >= 5 and not base[-1].isdigit()
        name = f"{base} {variant - 3}" if numbered else base
        quality, profile = rng.choice(_QUALITIES)
        style = rng.choice(_PREFIX_STYLES)
        suffix = rng.choice(_SUFFIXES)
        label = name.upper() if rng.random() < 0.15 else name
        full = f"{style.format(c=country)}{label}{(' ' + quality) if quality else ''}{suffix}"
        genre = (
            "Sports" if "Sport" in base or "ESPN" in base or "DAZN" in base else rng.choice(_GENRES)
        )
        slug = _slug(name, country)
        epg: str | None = None if rng.random() < 0.08 else slug
        if epg is not None and epg not in guide:
            guide[epg] = GuideChannel(epg, name)
        stream_id = first_stream_id + i
        streams.append(
            Stream(
                stream_id=stream_id,
                name=full,
                category_id=cat_of[(country, genre)],
                epg_channel_id=epg,
                icon=f"http://logos.invalid/{stream_id}.png" if rng.random() < 0.7 else "",
                profile=profile,
                num=i + 1,
                added=_ADDED_BASE + rng.randrange(0, 30_000_000),
                tv_archive=1 if rng.random() < 0.1 else 0,
                tv_archive_duration=rng.choice((0, 1, 3, 7)),
                custom_sid="" if rng.random() < 0.9 else f":{rng.randrange(1, 9)}:0:1:",
            )
        )
    if accounts is None:
        accounts = (Account("user", "pass", exp_date=4_102_444_800, max_connections=4),)
    return Catalog(tuple(accounts), tuple(categories), tuple(streams), tuple(guide.values()))

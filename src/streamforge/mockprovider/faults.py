"""The mock panel's fault model: stream faults and API (catalogue) quirks.

Theory of operation
-------------------
A :class:`Fault` is set per stream id and describes how the *next* live connections
to that stream misbehave. There are two families:

* **before headers** (``refuse``, ``status``, ``html``, ``empty``, ``redirect``,
  ``slow_headers``) — decided once, when a connection arrives; ``after`` is ignored.
  ``slow_headers`` waits ``delay`` seconds and then serves the stream normally;
  ``redirect`` answers 302 to a tokenised URL valid for ``token_ttl`` seconds and the
  redirected request then streams normally (an expired or unknown token gets 403).
* **during streaming** (``eof``, ``reset``, ``stall``, ``drip``, ``garbage``) — the
  connection streams healthily, then the fault fires ``after`` seconds after the later
  of (connection start, fault set). These also hit connections that were already
  streaming when the fault was set, which is how tests kill "the playing stream".

``times`` gives "fail N times" semantics: the fault is consumed each time it is
applied to a connection (when a before-headers fault answers, or when a
during-streaming fault fires) and removed after the N-th use; ``None`` keeps it until
:meth:`FaultBoard.recover`. Recovering only affects connections that have not been hit
yet: a stalled connection stays stalled until its client leaves, like a real one.

An :class:`ApiQuirk` does the same for ``player_api.php`` / ``get.php`` /
``xmltv.php`` answers (optionally per account and per target).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from streamforge.errors import ConfigError


class FaultKind(StrEnum):
    REFUSE = "refuse"
    STATUS = "status"
    HTML = "html"
    EMPTY = "empty"
    REDIRECT = "redirect"
    SLOW_HEADERS = "slow_headers"
    EOF = "eof"
    RESET = "reset"
    STALL = "stall"
    DRIP = "drip"
    GARBAGE = "garbage"

    @property
    def before_headers(self) -> bool:
        return self in _BEFORE_HEADERS


_BEFORE_HEADERS = frozenset(
    {
        FaultKind.REFUSE,
        FaultKind.STATUS,
        FaultKind.HTML,
        FaultKind.EMPTY,
        FaultKind.REDIRECT,
        FaultKind.SLOW_HEADERS,
    }
)


def _check_times(times: int | None, what: str) -> None:
    if times is not None and times < 1:
        raise ConfigError(f"{what}: times must be >= 1 or absent")


@dataclass(frozen=True)
class Fault:
    """How the next connections to one stream misbehave (see the module docstring)."""

    kind: FaultKind
    after: float = 0.0
    status: int = 503
    delay: float = 5.0
    rate: int = 16
    token_ttl: float = 3.0
    times: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.after < 0 or self.delay < 0 or self.token_ttl <= 0 or self.rate < 1:
            raise ConfigError(f"fault {self.kind.value}: after/delay must be >= 0, rate >= 1")
        if not 100 <= self.status <= 599:
            raise ConfigError(f"fault {self.kind.value}: {self.status} is not an HTTP status")
        _check_times(self.times, f"fault {self.kind.value}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        try:
            return cls(**{k: v for k, v in data.items() if k != "stream_id"})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"fault: {exc}") from exc


class QuirkKind(StrEnum):
    HTML = "html"
    EMPTY = "empty"
    MALFORMED_JSON = "malformed_json"
    SLOW_HEADERS = "slow_headers"
    REDIRECT = "redirect"
    STATUS = "status"
    STRINGLY = "stringly"
    NULLS = "nulls"
    MISSING_FIELDS = "missing_fields"

    @property
    def reshapes(self) -> bool:
        """True for quirks that change the JSON's shape rather than the HTTP answer."""
        return self in (QuirkKind.STRINGLY, QuirkKind.NULLS, QuirkKind.MISSING_FIELDS)


#: Names of the API calls a quirk can target.
API_TARGETS = frozenset(
    {
        "user_info",
        "get_live_categories",
        "get_live_streams",
        "get_short_epg",
        "get.php",
        "xmltv.php",
    }
)


@dataclass(frozen=True)
class ApiQuirk:
    """A misbehaviour of the catalogue API.

    ``account`` limits it to one username (None: all); ``targets`` to some of
    :data:`API_TARGETS` (empty: all). ``delay`` is for ``slow_headers``, ``status`` for
    ``status``; ``times`` as for :class:`Fault`.
    """

    kind: QuirkKind
    account: str | None = None
    targets: frozenset[str] = field(default_factory=frozenset)
    delay: float = 5.0
    status: int = 503
    times: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", QuirkKind(self.kind))
        object.__setattr__(self, "targets", frozenset(self.targets))
        unknown = self.targets - API_TARGETS
        if unknown:
            raise ConfigError(f"quirk {self.kind.value}: unknown targets {sorted(unknown)}")
        if self.delay < 0 or not 100 <= self.status <= 599:
            raise ConfigError(f"quirk {self.kind.value}: bad delay or status")
        _check_times(self.times, f"quirk {self.kind.value}")

    def applies(self, account: str | None, target: str) -> bool:
        if self.account is not None and self.account != account:
            return False
        return not self.targets or target in self.targets

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["targets"] = sorted(self.targets)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApiQuirk:
        try:
            values = dict(data)
            values["targets"] = frozenset(values.get("targets") or ())
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"quirk: {exc}") from exc


@dataclass
class FaultSlot:
    """A fault as set on a stream: when it was set and how many uses remain."""

    fault: Fault
    set_at: float
    remaining: int | None

    def fire_time(self, connection_start: float) -> float:
        """When a during-streaming fault fires for a connection started at that time."""
        return max(connection_start, self.set_at) + self.fault.after


@dataclass
class _QuirkSlot:
    quirk: ApiQuirk
    remaining: int | None


class FaultBoard:
    """The live set of stream faults and API quirks of one mock provider.

    Times are ``time.monotonic()`` seconds. Only the event loop thread touches it.
    """

    def __init__(self) -> None:
        self._faults: dict[int, FaultSlot] = {}
        self._quirks: list[_QuirkSlot] = []

    # -- stream faults ------------------------------------------------------------
    def set_fault(self, stream_id: int, fault: Fault) -> None:
        self._faults[stream_id] = FaultSlot(fault, time.monotonic(), fault.times)

    def recover(self, stream_id: int | None = None) -> None:
        """Remove the fault of one stream (or of all streams)."""
        if stream_id is None:
            self._faults.clear()
        else:
            self._faults.pop(stream_id, None)

    def slot(self, stream_id: int) -> FaultSlot | None:
        return self._faults.get(stream_id)

    def consume(self, stream_id: int, slot: FaultSlot) -> None:
        """Record one use of ``slot``; drop it when its ``times`` are used up."""
        if slot.remaining is None:
            return
        slot.remaining -= 1
        if slot.remaining <= 0 and self._faults.get(stream_id) is slot:
            del self._faults[stream_id]

    def faults(self) -> dict[int, Fault]:
        return {sid: slot.fault for sid, slot in self._faults.items()}

    # -- API quirks -----------------------------------------------------------------
    def add_quirk(self, quirk: ApiQuirk) -> None:
        self._quirks.append(_QuirkSlot(quirk, quirk.times))

    def clear_quirks(self) -> None:
        self._quirks.clear()

    def quirks(self) -> list[ApiQuirk]:
        return [q.quirk for q in self._quirks]

    def take_quirks(self, account: str | None, target: str) -> list[ApiQuirk]:
        """The quirks that apply to this call, consuming one use of each."""
        taken: list[ApiQuirk] = []
        for slot in list(self._quirks):
            if not slot.quirk.applies(account, target):
                continue
            taken.append(slot.quirk)
            if slot.remaining is not None:
                slot.remaining -= 1
                if slot.remaining <= 0:
                    self._quirks.remove(slot)
        return taken

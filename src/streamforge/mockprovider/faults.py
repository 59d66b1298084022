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

* **media** (``black``, ``frozen``, ``card``, ``silent``, ``no_video``, ``no_audio``)
  — fire like the during-streaming faults, but the connection goes on: at the next
  keyframe the picture turns black, freezes on one frame, becomes a "SERVICE
  TEMPORARILY UNAVAILABLE" slate, or the sound becomes digital silence; or the video
  (audio) PID's packets stop while the PMT still lists it. The replacement content is
  the same profile encoded differently (:class:`~.profiles.ClipVariant`), spliced in on
  the same PIDs with continuous continuity counters and PCR/PTS/DTS: a decoder sees
  one unbroken program whose picture or sound breaks.
* **delivery** (``slow``, ``bursty``) — also fire and go on: ``slow`` delivers at
  ``factor`` times real time from then on (falling further behind live every second);
  ``bursty`` is *healthy*: every ``period`` seconds it sends the next ``period``
  seconds of stream at once, so the average rate is real time and the client is
  ahead of live right after each burst, as panels that restream HLS segments are.
  ``drip`` (above) is the broken extreme: ``rate`` bytes per second, in pieces every
  0.25 s, so the socket is never silent for long yet almost nothing arrives.

``times`` gives "fail N times" semantics: the fault is consumed each time it is
applied to a connection (when a before-headers fault answers, or when a
during-streaming fault fires) and removed after the N-th use; ``None`` keeps it until
:meth:`FaultBoard.recover`. Recovering (or setting another fault on the stream)
heals the next connections; a connection already hit by a media or delivery fault is
healed too (at its next keyframe it returns to the normal picture, sound and PIDs; a
slow one returns to real-time delivery from where it is, still behind live; a bursty
one waits for live to catch up and then streams normally). A connection hit by
``eof``/``reset``/``stall``/``drip``/``garbage`` stays broken until its client leaves,
like a real one. A fault used up by ``times`` is not a recovery: the connections it
hit stay faulty until the stream is recovered.

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
from streamforge.mockprovider.profiles import ClipVariant


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
    BLACK = "black"
    FROZEN = "frozen"
    CARD = "card"
    SILENT = "silent"
    NO_VIDEO = "no_video"
    NO_AUDIO = "no_audio"
    SLOW = "slow"
    BURSTY = "bursty"

    @property
    def before_headers(self) -> bool:
        return self in _BEFORE_HEADERS

    @property
    def ongoing(self) -> bool:
        """True for media and delivery faults: the connection goes on (and can heal)."""
        return self in _ONGOING

    @property
    def variant(self) -> ClipVariant | None:
        """The replacement content of a media fault that swaps the picture or the sound."""
        return _VARIANTS.get(self)


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


_VARIANTS = {
    FaultKind.BLACK: ClipVariant.BLACK,
    FaultKind.FROZEN: ClipVariant.FROZEN,
    FaultKind.CARD: ClipVariant.CARD,
    FaultKind.SILENT: ClipVariant.SILENT,
}
_ONGOING = frozenset(
    {*_VARIANTS, FaultKind.NO_VIDEO, FaultKind.NO_AUDIO, FaultKind.SLOW, FaultKind.BURSTY}
)
#: Bounds of ``period`` (seconds between bursts) for ``bursty``.
BURST_PERIOD_RANGE = (0.5, 60.0)


def _check_times(times: int | None, what: str) -> None:
    if times is not None and times < 1:
        raise ConfigError(f"{what}: times must be >= 1 or absent")


@dataclass(frozen=True)
class Fault:
    """How the next connections to one stream misbehave (see the module docstring).

    ``status`` is for ``status``, ``delay`` for ``slow_headers``, ``rate`` (bytes per
    second) for ``drip``, ``token_ttl`` for ``redirect``, ``factor`` (0 < factor <= 1,
    the delivered fraction of real time) for ``slow``, ``period`` (seconds) for
    ``bursty``; the other kinds ignore them.
    """

    kind: FaultKind
    after: float = 0.0
    status: int = 503
    delay: float = 5.0
    rate: int = 16
    token_ttl: float = 3.0
    times: int | None = None
    factor: float = 0.6
    period: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.after < 0 or self.delay < 0 or self.token_ttl <= 0 or self.rate < 1:
            raise ConfigError(f"fault {self.kind.value}: after/delay must be >= 0, rate >= 1")
        if not 0 < self.factor <= 1:
            raise ConfigError(f"fault {self.kind.value}: factor must be > 0 and <= 1")
        low, high = BURST_PERIOD_RANGE
        if not low <= self.period <= high:
            raise ConfigError(f"fault {self.kind.value}: period must be {low}..{high} seconds")
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
    """A fault as set on a stream: when it was set and how many uses remain.

    ``healed`` is set when the fault is recovered or replaced by another one; the
    connections an ongoing fault has hit watch it to return to normal.
    """

    fault: Fault
    set_at: float
    remaining: int | None
    healed: bool = False

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
        # Ongoing faults used up by ``times``: gone from the board, still on connections.
        self._spent: dict[int, list[FaultSlot]] = {}
        self._quirks: list[_QuirkSlot] = []

    # -- stream faults ------------------------------------------------------------
    def set_fault(self, stream_id: int, fault: Fault) -> None:
        old = self._faults.get(stream_id)
        for slot in [*([] if old is None else [old]), *self._spent.pop(stream_id, [])]:
            slot.healed = True
        self._faults[stream_id] = FaultSlot(fault, time.monotonic(), fault.times)

    def recover(self, stream_id: int | None = None) -> None:
        """Remove the fault of one stream (or of all streams) and heal what it hit."""
        if stream_id is None:
            removed = [*self._faults.values(), *(s for v in self._spent.values() for s in v)]
            self._faults.clear()
            self._spent.clear()
        else:
            slot = self._faults.pop(stream_id, None)
            removed = [*([] if slot is None else [slot]), *self._spent.pop(stream_id, [])]
        for slot in removed:
            slot.healed = True

    def slot(self, stream_id: int) -> FaultSlot | None:
        return self._faults.get(stream_id)

    def consume(self, stream_id: int, slot: FaultSlot) -> None:
        """Record one use of ``slot``; drop it when its ``times`` are used up."""
        if slot.remaining is None:
            return
        slot.remaining -= 1
        if slot.remaining <= 0 and self._faults.get(stream_id) is slot:
            del self._faults[stream_id]
            if slot.fault.kind.ongoing:
                self._spent.setdefault(stream_id, []).append(slot)

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

"""The vocabulary between a channel session's driver and its failover policy.

:class:`~streamforge.streaming.policy.FailoverPolicy` decides and
:class:`~streamforge.streaming.session.ChannelSession` carries out; this
module is everything the two say to each other, with no behaviour of either:

* the **events** the driver feeds in (:class:`Start`, :class:`UpstreamOpened`,
  :class:`UpstreamData`, :class:`MediaHealthy`, :class:`UpstreamFailed`,
  :class:`Tick`, :class:`ClientsGone`), each stamped with ``now`` (monotonic seconds);
* the **commands** the policy answers with (:class:`OpenUpstream`,
  :class:`CloseUpstream`, :class:`SwitchTo`, :class:`LogEvent`,
  :class:`EndSession`, :class:`RequestWakeup`, and for the outage hold
  :class:`HoldSlate`);
* their enums (:class:`SessionState`, :class:`Purpose`, :class:`SwitchMode`,
  :class:`LogKind`, :class:`EndReason`) and the policy's timing,
  :class:`PolicyConfig`;
* the **transition table** as data (:data:`TRANSITIONS`): which event each
  state accepts, what may follow and which commands come out. The policy
  checks every event against it (:func:`accepts`; anything else raises
  :class:`FailoverProtocolError`), and the table drawn in the policy's
  docstring is :func:`render_transitions` of it, verbatim.

Reports about an attempt that the policy already closed are accepted in every
state but IDLE and ignored: a driver may have them in flight when it carries
out the close.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from streamforge.errors import ConfigError, StreamingError
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.reasons import FailureReason
from streamforge.streaming.slots import SlotLease

if TYPE_CHECKING:
    from streamforge.settings import Settings


class FailoverProtocolError(StreamingError):
    """The driver fed the policy an event that is illegal in its current state."""


class SessionState(StrEnum):
    """Where the session is (see the policy's module docstring)."""

    IDLE = "idle"
    CONNECTING = "connecting"
    PLAYING = "playing"
    PROBING = "probing"
    ENDED = "ended"


class Purpose(StrEnum):
    """Why an upstream is opened."""

    PLAY = "play"
    """A failover-round attempt: forwarded from once it delivers valid TS."""
    PROBE = "probe"
    """An upgrade probe opened while the current stream keeps playing."""


class SwitchMode(StrEnum):
    """How the driver cuts the client output over at a :class:`SwitchTo`."""

    BREAK_BEFORE_MAKE = "break_before_make"
    """Nothing else is forwarded (tune, or the playing stream failed): the
    attempt's bytes resume the output at its first keyframe."""
    MAKE_BEFORE_BREAK = "make_before_break"
    """The attempt was opened as a probe alongside the playing stream, so the
    driver has been preparing it as a splice candidate: cut over at the
    candidate's keyframe (an upgrade; also a probe that became the failover
    attempt when the playing stream failed under it)."""


class LogKind(StrEnum):
    """The ``kind`` of a :class:`LogEvent` (stable identifiers)."""

    FAILOVER = "failover"
    EXHAUSTED = "exhausted"
    UPGRADE = "upgrade"
    UPGRADE_FAILED = "upgrade_failed"
    BREAKER_OPEN = "breaker_open"
    BREAKER_CLOSE = "breaker_close"
    UPGRADE_WAITING = "upgrade_waiting"
    HOLD = "hold"
    """Every stream failed: the viewer is held on the slate while they are retried."""
    MANUAL = "manual"
    TUNE = "tune"
    """A tune that played a later stream because earlier ones were skipped
    (account full, breaker open): a tune detail, not a failover."""


class EndReason(StrEnum):
    """Why a session ended."""

    EXHAUSTED = "exhausted"
    CLIENTS_GONE = "clients_gone"


# ---------------------------------------------------------------- events in


@dataclass(frozen=True, slots=True)
class Start:
    """The first client arrived: start tuning."""

    now: float


@dataclass(frozen=True, slots=True)
class UpstreamOpened:
    """The attempt's response headers arrived and were acceptable (2xx, after redirects)."""

    attempt_id: int
    now: float


@dataclass(frozen=True, slots=True)
class UpstreamData:
    """The attempt delivered ``nbytes`` of MPEG-TS.

    Only valid data is reported: a reader that finds anything else reports
    :class:`UpstreamFailed` with reason ``invalid_content`` instead.
    """

    attempt_id: int
    nbytes: int
    now: float


@dataclass(frozen=True, slots=True)
class MediaHealthy:
    """The attempt (an upgrade probe) has delivered ``probe_healthy_seconds`` of healthy
    media: moving picture, sound, not behind live (the driver judges; see
    :mod:`streamforge.streaming.health.judge`). Sent at most once per attempt."""

    attempt_id: int
    now: float


@dataclass(frozen=True, slots=True)
class UpstreamFailed:
    """The attempt failed. ``detail`` must not contain credentials (it is redacted anyway)."""

    attempt_id: int
    reason: FailureReason
    detail: str
    now: float
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """A wakeup requested with :class:`RequestWakeup` fired (or any timer: harmless)."""

    now: float


@dataclass(frozen=True, slots=True)
class ClientsGone:
    """The last client left: close everything and end."""

    now: float


@dataclass(frozen=True, slots=True)
class ManualSwitch:
    """The user asked for ``stream_index`` (an index into the policy's streams), or
    for the next stream after the playing one when it is None; the stream reached
    is pinned until :class:`Unpin`."""

    now: float
    stream_index: int | None = None


@dataclass(frozen=True, slots=True)
class Unpin:
    """The user released a pinned stream: upgrades apply again."""

    now: float


Event = (
    Start
    | UpstreamOpened
    | UpstreamData
    | MediaHealthy
    | UpstreamFailed
    | Tick
    | ClientsGone
    | ManualSwitch
    | Unpin
)
EventType = (
    type[Start]
    | type[UpstreamOpened]
    | type[UpstreamData]
    | type[MediaHealthy]
    | type[UpstreamFailed]
    | type[Tick]
    | type[ClientsGone]
    | type[ManualSwitch]
    | type[Unpin]
)
EVENT_TYPES: tuple[EventType, ...] = (
    Start,
    UpstreamOpened,
    UpstreamData,
    MediaHealthy,
    UpstreamFailed,
    Tick,
    ClientsGone,
    ManualSwitch,
    Unpin,
)


# ------------------------------------------------------------- commands out


@dataclass(frozen=True, slots=True)
class OpenUpstream:
    """Open ``stream`` as attempt ``attempt_id``; report its events with that id.

    ``lease`` is the account slot the policy took for it: in a cluster the
    driver confirms it cluster-wide before it connects."""

    attempt_id: int
    stream: ProviderStream
    purpose: Purpose
    lease: SlotLease | None = field(default=None, compare=False)
    """The account slot the attempt holds: the driver waits for its socket's turn
    with it (:meth:`~streamforge.streaming.slots.AccountSlots.connect`) and
    reports the socket's real close (:meth:`~streamforge.streaming.slots.AccountSlots.closed`)."""


@dataclass(frozen=True, slots=True)
class CloseUpstream:
    """Close attempt ``attempt_id`` (also sent for attempts that already failed)."""

    attempt_id: int


@dataclass(frozen=True, slots=True)
class SwitchTo:
    """Cut the client output over to attempt ``attempt_id`` and forward from it, as ``mode``."""

    attempt_id: int
    mode: SwitchMode


@dataclass(frozen=True, slots=True)
class LogEvent:
    """An event for the event log (category ``stream``); never contains a credential."""

    level: str
    kind: LogKind
    message: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EndSession:
    """End the client response(s); no further command follows."""

    reason: EndReason


@dataclass(frozen=True, slots=True)
class RequestWakeup:
    """Deliver a :class:`Tick` at monotonic time ``at`` (replaces earlier requests)."""

    at: float


@dataclass(frozen=True, slots=True)
class HoldSlate:
    """Outage hold: nothing playable is forwarded, so keep the response open with
    the generated "temporarily unavailable" slate on the session's PIDs.

    The driver stops forwarding from any attempt and plays the slate until the
    next :class:`SwitchTo` (which cuts back to that attempt, break-before-make)
    or :class:`EndSession`. It holds no account slot; repeating it while
    holding is harmless."""

    reason: str = ""


Command = (
    OpenUpstream | CloseUpstream | SwitchTo | LogEvent | EndSession | RequestWakeup | HoldSlate
)


# ------------------------------------------------------------ configuration

_DEFAULT_TUNE_BUDGET = 8.0


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Timing of failover and recovery. Defaults are those of the settings."""

    failover_budget: float = 2.0
    """Seconds a failover should take: the target each failover event is judged
    against (``within_budget``). It no longer ends a round: see ``outage_limit``."""
    tune_budget: float = _DEFAULT_TUNE_BUDGET
    """Seconds the initial tune (the round started by Start) may take."""
    outage_limit: float = 10.0
    """Seconds a failover round may leave the viewer waiting before the session is
    exhausted (while untried candidates remain, the round goes on until then)."""
    hedge_delay: float = 0.4
    """Seconds an attempt may go without delivering valid TS before the next
    candidate is opened alongside it (a hedge)."""
    hedge_max: int = 3
    """At most this many attempts of one round in flight at once."""
    outage_hold: float = 0.0
    """Seconds to hold the viewer on the slate (:class:`HoldSlate`) while every
    stream has failed, retrying them with backoff; 0 ends the response at once."""
    recovery_period: float = 60.0
    """Seconds on a lower-priority stream before probing a better one."""
    probe_timeout: float = 5.0
    """Seconds a probe has to deliver ``probe_min_bytes`` of valid TS."""
    probe_min_bytes: int = 188 * 512
    """Valid bytes a probe must deliver before the session switches to it."""
    probe_healthy_seconds: float = 0.0
    """Seconds of healthy media a probe must show (:class:`MediaHealthy`) before the
    switch, on top of ``probe_min_bytes``; the probe's deadline is extended by as
    much. 0: bytes alone suffice."""

    def __post_init__(self) -> None:
        for name in (
            "failover_budget",
            "tune_budget",
            "outage_limit",
            "hedge_delay",
            "recovery_period",
            "probe_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.probe_healthy_seconds < 0:
            raise ConfigError(
                f"probe_healthy_seconds must be >= 0, got {self.probe_healthy_seconds}"
            )
        if self.probe_min_bytes < 1:
            raise ConfigError(f"probe_min_bytes must be at least 1, got {self.probe_min_bytes}")
        if self.outage_hold < 0:
            raise ConfigError(f"outage_hold must be 0 or more, got {self.outage_hold}")
        if self.hedge_max < 1:
            raise ConfigError(f"hedge_max must be at least 1, got {self.hedge_max}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyConfig:
        """The policy configuration of the running settings."""
        return cls(
            failover_budget=settings.failover_budget,
            tune_budget=max(_DEFAULT_TUNE_BUDGET, settings.failover_budget),
            outage_limit=settings.outage_limit,
            hedge_delay=settings.hedge_delay,
            outage_hold=settings.outage_hold,
            recovery_period=settings.recovery_period,
            probe_timeout=settings.probe_timeout,
            probe_healthy_seconds=settings.probe_healthy_seconds,
        )


# ------------------------------------------------------- transition table


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the transition table: in ``state``, ``event`` ``when`` → ``next``."""

    state: SessionState
    event: EventType
    when: str
    next: SessionState
    commands: str


_I, _C, _PL, _PR, _E = (
    SessionState.IDLE,
    SessionState.CONNECTING,
    SessionState.PLAYING,
    SessionState.PROBING,
    SessionState.ENDED,
)
_CLOSED = "(a closed attempt)"
_NOTHING = "nothing"
_IGNORED = "nothing (ignored)"
_NEXT = "close it, open the next one"
_EXHAUST = "close, exhausted, EndSession"
_END_ALL = "close all, EndSession"

TRANSITIONS: tuple[Transition, ...] = (
    Transition(_I, Start, "a stream is eligible", _C, "OpenUpstream, RequestWakeup"),
    Transition(_I, Start, "no stream is eligible", _E, "exhausted, EndSession"),
    Transition(_I, ClientsGone, "", _E, "EndSession"),
    Transition(_C, UpstreamOpened, "headers of the attempt", _C, _NOTHING),
    Transition(_C, UpstreamOpened, _CLOSED, _C, _IGNORED),
    Transition(_C, UpstreamData, "data from the attempt", _PL, "SwitchTo [+ failover etc.]"),
    Transition(_C, UpstreamData, "... others in flight", _PL, "SwitchTo, close the others"),
    Transition(_C, UpstreamData, "no bytes / closed attempt", _C, _IGNORED),
    Transition(_C, MediaHealthy, "any attempt", _C, _IGNORED),
    Transition(_C, UpstreamFailed, "the attempt failed", _C, _NEXT),
    Transition(_C, UpstreamFailed, "... others in flight", _C, "close it, wait or hedge"),
    Transition(_C, UpstreamFailed, "... none left / no time", _E, _EXHAUST),
    Transition(_C, UpstreamFailed, "... none left, hold on", _C, "HoldSlate, retry later"),
    Transition(_C, UpstreamFailed, _CLOSED, _C, _IGNORED),
    Transition(_C, Tick, "at the round's time limit", _E, _EXHAUST),
    Transition(_C, Tick, "... hold on", _C, "HoldSlate, retry later"),
    Transition(_C, Tick, "at the hedge delay", _C, "open the next one alongside"),
    Transition(_C, Tick, "a swap attempt's budget", _C, "close it (hung), open next"),
    Transition(_C, Tick, "before either", _C, _NOTHING),
    Transition(_C, Unpin, "", _C, "unpin"),
    Transition(_C, ClientsGone, "", _E, _END_ALL),
    Transition(_PL, UpstreamOpened, _CLOSED, _PL, _IGNORED),
    Transition(_PL, UpstreamData, "data of the playing stream", _PL, _NOTHING),
    Transition(_PL, UpstreamData, _CLOSED, _PL, _IGNORED),
    Transition(_PL, MediaHealthy, "any attempt", _PL, _IGNORED),
    Transition(_PL, UpstreamFailed, "the playing stream failed", _C, _NEXT),
    Transition(_PL, UpstreamFailed, "... none left", _E, _EXHAUST),
    Transition(_PL, UpstreamFailed, "... none left, hold on", _C, "HoldSlate, retry later"),
    Transition(_PL, UpstreamFailed, _CLOSED, _PL, _IGNORED),
    Transition(_PL, Tick, "at the recovery period", _PR, "open a probe (PROBE)"),
    Transition(_PL, Tick, "... account full, ours", _C, "close it, swap round"),
    Transition(_PL, Tick, "... account held elsewhere", _PL, "upgrade_waiting once, retry"),
    Transition(_PL, Tick, "... none eligible", _PL, "wait another period"),
    Transition(_PL, Tick, "before it / on top stream", _PL, _NOTHING),
    Transition(_PL, ManualSwitch, "another stream", _C, "close it, manual round"),
    Transition(_PL, ManualSwitch, "the playing stream", _PL, "pin it"),
    Transition(_PL, Unpin, "", _PL, "unpin, recovery period"),
    Transition(_PL, ClientsGone, "", _E, _END_ALL),
    Transition(_PR, UpstreamOpened, "headers of the probe", _PR, _NOTHING),
    Transition(_PR, UpstreamOpened, _CLOSED, _PR, _IGNORED),
    Transition(_PR, UpstreamData, "probe has probe_min_bytes", _PL, "SwitchTo, close old, upgrade"),
    Transition(_PR, UpstreamData, "... and must be healthy", _PR, "nothing (waits for health)"),
    Transition(_PR, UpstreamData, "less / playing / closed", _PR, _NOTHING),
    Transition(_PR, MediaHealthy, "the probe, has min bytes", _PL, "SwitchTo, close old, upgrade"),
    Transition(_PR, MediaHealthy, "less / playing / closed", _PR, _NOTHING),
    Transition(_PR, UpstreamFailed, "the probe failed", _PL, "close probe, upgrade_failed"),
    Transition(_PR, UpstreamFailed, "the playing stream failed", _C, "close it; probe is attempt"),
    Transition(_PR, UpstreamFailed, "... the probe had data", _PL, "close, SwitchTo, failover"),
    Transition(_PR, UpstreamFailed, "... none left", _E, _EXHAUST),
    Transition(_PR, UpstreamFailed, _CLOSED, _PR, _IGNORED),
    Transition(_PR, Tick, "at the probe timeout", _PL, "close probe, upgrade_failed"),
    Transition(_PR, Tick, "before the probe timeout", _PR, _NOTHING),
    Transition(_PR, ManualSwitch, "another stream", _C, "close probe and it, manual"),
    Transition(_PR, ManualSwitch, "the playing stream", _PL, "close probe, pin it"),
    Transition(_PR, Unpin, "", _PR, "unpin"),
    Transition(_PR, ClientsGone, "", _E, _END_ALL),
    Transition(_E, UpstreamOpened, "", _E, _IGNORED),
    Transition(_E, UpstreamData, "", _E, _IGNORED),
    Transition(_E, MediaHealthy, "", _E, _IGNORED),
    Transition(_E, UpstreamFailed, "", _E, _IGNORED),
    Transition(_E, Tick, "", _E, _IGNORED),
    Transition(_E, ClientsGone, "", _E, _IGNORED),
    Transition(_E, ManualSwitch, "", _E, _IGNORED),
    Transition(_E, Unpin, "", _E, _IGNORED),
)
"""The whole transition table, one row per outcome.

``when`` starting with ``...`` narrows the row above it; in ``commands``,
"close" is :class:`CloseUpstream`, and "exhausted", "failover", "upgrade" and
"upgrade_failed" are :class:`LogEvent` kinds. Any answer may also carry
breaker events and end with a :class:`RequestWakeup` when the next deadline
changed."""

_ACCEPTED: frozenset[tuple[SessionState, type]] = frozenset(
    (row.state, row.event) for row in TRANSITIONS
)


def accepts(state: SessionState, event_type: type) -> bool:
    """Whether ``state`` accepts events of ``event_type`` at all (a row of the table has it)."""
    return (state, event_type) in _ACCEPTED


def render_transitions() -> str:
    """:data:`TRANSITIONS` as the plain-text table drawn in the policy's docstring."""
    rule = "-" * 10, "-" * 14, "-" * 26, "-" * 10, "-" * 28
    rows = [("state", "event", "when", "next", "commands"), rule]
    rows += [
        (row.state.name, row.event.__name__, row.when, row.next.name, row.commands)
        for row in TRANSITIONS
    ]
    return "\n".join(
        f"{state:<10}  {event:<14}  {when:<26}  {next_:<10}  {commands}".rstrip()
        for state, event, when, next_, commands in rows
    )

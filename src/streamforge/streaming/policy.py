"""The failover policy of one channel session: a sans-IO state machine.

Theory of operation
-------------------

A channel session plays one provider stream at a time and, when it dies,
moves to the next one inside the same client response. *Deciding* what to do
is this module; *doing* it (sockets, timers, splicing) is the driver's. The
policy owns no socket, never sleeps and never reads a clock: the driver feeds
it events stamped with ``now`` (monotonic seconds) through
:meth:`FailoverPolicy.handle`, which returns the commands to carry out, in
order. Tests drive it with a fake clock, as a transcript.

Events in: :class:`Start`, :class:`UpstreamOpened` (headers OK),
:class:`UpstreamData` (bytes read, and whether they were valid MPEG-TS),
:class:`UpstreamFailed`, :class:`Tick` (a wakeup fired), :class:`ClientsGone`.

Commands out: :class:`OpenUpstream`, :class:`CloseUpstream`,
:class:`SwitchTo` (cut the client over to this attempt and forward from it),
:class:`LogEvent`, :class:`EndSession`, :class:`RequestWakeup`.

States and transitions (:class:`SessionState`), the whole table::

    state       event                              next        commands
    ----------  ---------------------------------  ----------  ------------------------------------
    IDLE        Start                              CONNECTING  open the first eligible stream
    CONNECTING  valid data from the attempt        PLAYING     SwitchTo [+ failover event]
    CONNECTING  the attempt failed                 CONNECTING  close it, open the next candidate
                                  (none left)      ENDED       close, exhausted event, EndSession
    CONNECTING  Tick at the round's budget         ENDED       close, exhausted event, EndSession
    PLAYING     the playing stream failed          CONNECTING  close it, open the next candidate
    PLAYING     Tick at the recovery period        PROBING     open a probe (PROBE purpose)
                                  (none eligible)  PLAYING     wait another period
    PROBING     probe delivered probe_min_bytes    PLAYING     SwitchTo probe, close old, upgrade
    PROBING     probe failed / Tick at its timeout PLAYING     close probe, upgrade_failed event
    PROBING     the playing stream failed          CONNECTING  close it; the probe is the attempt
    any         ClientsGone                        ENDED       close every attempt, EndSession
    ENDED       anything but Start                 ENDED       nothing (ignored)

* **Failover round** (state CONNECTING). Started by :class:`Start` (the
  *tune* phase) or by the failure of the playing stream (the *failover*
  phase). Candidates are walked once, in priority order, one attempt at a
  time, with a cursor that only moves forward: a stream is skipped when its
  account failed account-level in this round or has no free connection
  (:class:`~streamforge.streaming.slots.AccountSlots`), or when its circuit
  breaker is open. The stream whose failure started the round is not retried
  in the round, except as the very last candidate when its failure was
  transient (EOF, stall, reset — reconnecting may be all it takes). The first
  attempt that delivers valid MPEG-TS wins: :class:`SwitchTo`, and a
  ``failover`` event with the gap in ms from the failure to that data. The
  round has a time budget (``failover_budget``, or ``tune_budget`` for the
  tune phase); when it runs out, or no candidate is left, the session is
  **exhausted**: an ``exhausted`` error event and :class:`EndSession`.
* **Recovery** (PLAYING → PROBING). Playing anything but the top stream, the
  session waits ``recovery_period`` and then opens a probe of the best
  eligible stream above the current one (breaker admitting, a free slot on
  its account) *while the current one keeps playing* — the only time two
  upstreams are open. It switches (:class:`SwitchTo`, then closes the old
  one) once the probe has delivered ``probe_min_bytes`` of valid TS. A probe
  that fails or times out is closed and the session waits another period.
  With nothing to probe it simply waits another period. If the playing
  stream fails during a probe, the probe becomes the round's first attempt.

Bookkeeping that the driver cannot get wrong: every :class:`OpenUpstream` is
followed, sooner or later, by exactly one :class:`CloseUpstream` for the same
attempt — also for attempts that failed (the driver's close must be
idempotent). The policy takes the account slot when it emits the open and
releases it when it emits the close; breaker verdicts are recorded at the
same two points. After :class:`EndSession` no attempt is open and no slot is
held.

Strictness: an event the state does not accept raises
:class:`FailoverProtocolError` (a bug in the driver), as does an event about
an attempt id that was never issued, data before headers or headers twice.
Events about attempts that were already closed are *ignored* — a driver may
have reports in flight when it receives the close. Once ENDED, every event
except :class:`Start` is ignored and produces no command, so nothing is ever
forwarded after exhaustion. Time never goes backwards: an event stamped
earlier than one already seen is treated as happening at the latest ``now``.

Wakeups: after each event the policy emits :class:`RequestWakeup` when its
next deadline (round budget, probe timeout or recovery period) changed. The
latest request replaces earlier ones; a :class:`Tick` before a deadline is
harmless.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from streamforge.errors import ConfigError, StreamForgeError
from streamforge.streaming.breaker import Admission, BreakerChange, BreakerState, CircuitBreakers
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.reasons import (
    FailureReason,
    counts_against_stream,
    is_account_level,
    is_transient,
    safe_detail,
)
from streamforge.streaming.slots import AccountSlots, SlotLease

if TYPE_CHECKING:
    from streamforge.settings import Settings


class FailoverProtocolError(StreamForgeError):
    """The driver fed the policy an event that is illegal in its current state."""


class SessionState(StrEnum):
    """Where the session is (see the module docstring)."""

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


class LogKind(StrEnum):
    """The ``kind`` of a :class:`LogEvent` (stable identifiers)."""

    FAILOVER = "failover"
    EXHAUSTED = "exhausted"
    UPGRADE = "upgrade"
    UPGRADE_FAILED = "upgrade_failed"
    BREAKER_OPEN = "breaker_open"
    BREAKER_CLOSE = "breaker_close"


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
    """The attempt delivered ``nbytes``; ``valid_ts`` is the reader's MPEG-TS verdict.

    Invalid data is a failure with reason ``invalid_content``.
    """

    attempt_id: int
    nbytes: int
    valid_ts: bool
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


Event = Start | UpstreamOpened | UpstreamData | UpstreamFailed | Tick | ClientsGone


# ------------------------------------------------------------- commands out


@dataclass(frozen=True, slots=True)
class OpenUpstream:
    """Open ``stream`` as attempt ``attempt_id``; report its events with that id."""

    attempt_id: int
    stream: ProviderStream
    purpose: Purpose


@dataclass(frozen=True, slots=True)
class CloseUpstream:
    """Close attempt ``attempt_id`` (also sent for attempts that already failed)."""

    attempt_id: int


@dataclass(frozen=True, slots=True)
class SwitchTo:
    """Cut the client output over to attempt ``attempt_id`` and forward from it."""

    attempt_id: int


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


Command = OpenUpstream | CloseUpstream | SwitchTo | LogEvent | EndSession | RequestWakeup

_UPSTREAM_EVENTS = frozenset({UpstreamOpened, UpstreamData, UpstreamFailed, Tick, ClientsGone})
_ACCEPTS: Mapping[SessionState, frozenset[type]] = MappingProxyType(
    {
        SessionState.IDLE: frozenset({Start, ClientsGone}),
        SessionState.CONNECTING: _UPSTREAM_EVENTS,
        SessionState.PLAYING: _UPSTREAM_EVENTS,
        SessionState.PROBING: _UPSTREAM_EVENTS,
        SessionState.ENDED: _UPSTREAM_EVENTS,
    }
)
"""Which events each state accepts; anything else raises :class:`FailoverProtocolError`.

In ENDED the accepted events are ignored (no commands)."""


_DEFAULT_TUNE_BUDGET = 8.0


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Timing of failover and recovery. Defaults are those of the settings."""

    failover_budget: float = 2.0
    """Seconds a mid-stream failover round may take before the session is exhausted."""
    tune_budget: float = _DEFAULT_TUNE_BUDGET
    """Seconds the initial tune (the round started by Start) may take."""
    recovery_period: float = 60.0
    """Seconds on a lower-priority stream before probing a better one."""
    probe_timeout: float = 5.0
    """Seconds a probe has to deliver ``probe_min_bytes`` of valid TS."""
    probe_min_bytes: int = 188 * 512
    """Valid bytes a probe must deliver before the session switches to it."""

    def __post_init__(self) -> None:
        for name in ("failover_budget", "tune_budget", "recovery_period", "probe_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.probe_min_bytes < 1:
            raise ConfigError(f"probe_min_bytes must be at least 1, got {self.probe_min_bytes}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyConfig:
        """The policy configuration of the running settings."""
        return cls(
            failover_budget=settings.failover_budget,
            tune_budget=max(_DEFAULT_TUNE_BUDGET, settings.failover_budget),
            recovery_period=settings.recovery_period,
            probe_timeout=settings.probe_timeout,
        )


@dataclass(slots=True)
class _Attempt:
    attempt_id: int
    index: int
    stream: ProviderStream
    purpose: Purpose
    lease: SlotLease
    trial: bool
    opened_at: float
    headers: bool = False
    valid_bytes: int = 0
    verdict: bool = False


@dataclass(slots=True)
class _Round:
    phase: str
    started: float
    deadline: float
    origin: ProviderStream | None
    reason: FailureReason | None
    detail: str
    order: deque[int]
    attempt: _Attempt | None = None
    skipped_accounts: dict[int, FailureReason] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    first_failed: ProviderStream | None = None
    first_reason: FailureReason | str | None = None

    def failed(self, stream: ProviderStream, reason: FailureReason, detail: str) -> None:
        """Record an attempt of this round that failed."""
        self.failures.append(_attempt_record(stream, reason, detail))
        self._first(stream, reason)

    def skip(self, stream: ProviderStream, reason: FailureReason | str, detail: str = "") -> None:
        """Record a candidate passed over (account skipped or full, breaker open)."""
        self.skipped.append(_attempt_record(stream, reason, detail))
        self._first(stream, reason)

    def _first(self, stream: ProviderStream, reason: FailureReason | str) -> None:
        if self.first_failed is None:
            self.first_failed = stream
            self.first_reason = reason


def _attempt_record(
    stream: ProviderStream, reason: FailureReason | str, detail: str = ""
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "stream": stream.name,
        "xtream_channel_id": stream.xtream_channel_id,
        "account": stream.account_name,
        "reason": str(reason),
    }
    if detail:
        record["detail"] = detail
    return record


class FailoverPolicy:
    """Failover decisions for one channel session (see the module docstring).

    ``streams`` are the channel's provider streams already in failover order
    (:func:`~streamforge.streaming.candidates.order_streams`); ``slots`` and
    ``breakers`` are the process-wide registries; ``channel`` names the guide
    channel in events; ``holder`` tags this session's slot leases so that
    :meth:`AccountSlots.leases` shows who holds a connection.

    Public read-only state for the API: :attr:`state`, :attr:`playing`,
    :attr:`open_attempts`, :attr:`next_deadline`, :attr:`failovers`,
    :attr:`upgrades` and :meth:`status`.
    """

    def __init__(
        self,
        streams: Sequence[ProviderStream],
        *,
        slots: AccountSlots,
        breakers: CircuitBreakers,
        config: PolicyConfig | None = None,
        channel: str = "",
        holder: Hashable = None,
    ) -> None:
        self.streams: tuple[ProviderStream, ...] = tuple(streams)
        self.config = config if config is not None else PolicyConfig()
        self.channel = channel
        self._slots = slots
        self._breakers = breakers
        self._holder = holder
        self._state = SessionState.IDLE
        self._now = float("-inf")
        self._ids = itertools.count(1)
        self._last_id = 0
        self._attempts: dict[int, _Attempt] = {}
        self._round: _Round | None = None
        self._playing: _Attempt | None = None
        self._playing_since = 0.0
        self._probe: _Attempt | None = None
        self._probe_deadline = 0.0
        self._recovery_due: float | None = None
        self._last_wakeup: float | None = None
        self.failovers = 0
        self.upgrades = 0

    # ------------------------------------------------------------ public API

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def playing(self) -> ProviderStream | None:
        """The stream being forwarded, if any."""
        return self._playing.stream if self._playing is not None else None

    @property
    def open_attempts(self) -> tuple[int, ...]:
        """Ids of the attempts opened and not yet closed."""
        return tuple(self._attempts)

    @property
    def next_deadline(self) -> float | None:
        """The monotonic time of the policy's next deadline, if it has one."""
        if self._state is SessionState.CONNECTING and self._round is not None:
            return self._round.deadline
        if self._state is SessionState.PROBING:
            return self._probe_deadline
        if self._state is SessionState.PLAYING:
            return self._recovery_due
        return None

    def status(self) -> dict[str, Any]:
        """The session's failover state for the API."""
        return {
            "channel": self.channel,
            "state": self._state.value,
            "playing": self._playing.stream.describe() if self._playing else None,
            "probing": self._probe.stream.describe() if self._probe else None,
            "failovers": self.failovers,
            "upgrades": self.upgrades,
            "next_deadline": self.next_deadline,
        }

    def handle(self, event: Event) -> list[Command]:
        """Feed one event; return the commands to carry out, in order."""
        playing = self._playing
        if (
            type(event) is UpstreamData
            and playing is not None
            and event.attempt_id == playing.attempt_id
            and event.valid_ts
            and event.nbytes >= 0
        ):
            # The hot path, once per chunk forwarded: nothing to decide.
            self._now = max(event.now, self._now)
            playing.valid_bytes += event.nbytes
            return []
        now = max(event.now, self._now)
        self._now = now
        if type(event) not in _ACCEPTS[self._state]:
            raise FailoverProtocolError(
                f"{type(event).__name__} is not allowed in state {self._state.value}"
            )
        if self._state is SessionState.ENDED:
            if isinstance(event, UpstreamOpened | UpstreamData | UpstreamFailed):
                self._known_attempt(event.attempt_id)
            return []
        out: list[Command] = []
        match event:
            case Start():
                self._begin_round("tune", now, None, None, "", None, out)
            case UpstreamOpened():
                attempt = self._known_attempt(event.attempt_id)
                if attempt is not None:
                    if attempt.headers:
                        raise FailoverProtocolError(
                            f"attempt {attempt.attempt_id} reported headers twice"
                        )
                    attempt.headers = True
            case UpstreamData():
                attempt = self._known_attempt(event.attempt_id)
                if attempt is not None:
                    self._on_data(attempt, event, now, out)
            case UpstreamFailed():
                attempt = self._known_attempt(event.attempt_id)
                if attempt is not None:
                    self._on_failure(
                        attempt, event.reason, event.detail, event.http_status, now, out
                    )
            case Tick():
                self._on_tick(now, out)
            case ClientsGone():
                self._end(EndReason.CLIENTS_GONE, out)
        self._request_wakeup(out)
        return out

    # -------------------------------------------------------------- events

    def _known_attempt(self, attempt_id: int) -> _Attempt | None:
        if not 0 < attempt_id <= self._last_id:
            raise FailoverProtocolError(f"attempt {attempt_id} was never opened")
        return self._attempts.get(attempt_id)

    def _on_data(
        self, attempt: _Attempt, event: UpstreamData, now: float, out: list[Command]
    ) -> None:
        if event.nbytes < 0:
            raise FailoverProtocolError(f"negative byte count {event.nbytes}")
        if not attempt.headers:
            raise FailoverProtocolError(
                f"attempt {attempt.attempt_id} reported data before its headers"
            )
        if not event.valid_ts:
            self._on_failure(
                attempt, FailureReason.INVALID_CONTENT, "data is not MPEG-TS", None, now, out
            )
            return
        if event.nbytes == 0:
            return
        attempt.valid_bytes += event.nbytes
        if attempt is self._playing:
            return
        if self._round is not None and attempt is self._round.attempt:
            self._round_won(attempt, now, out)
        elif attempt is self._probe and attempt.valid_bytes >= self.config.probe_min_bytes:
            self._upgrade(attempt, now, out)

    def _on_failure(
        self,
        attempt: _Attempt,
        reason: FailureReason,
        detail: str,
        http_status: int | None,
        now: float,
        out: list[Command],
    ) -> None:
        detail = safe_detail(detail)
        if http_status is not None and "HTTP" not in detail:
            detail = f"HTTP {http_status} {detail}".strip()
        self._close(attempt, reason, now, out)
        account_level = is_account_level(reason, http_status)
        if attempt is self._playing:
            self._playing = None
            self._begin_round("failover", now, attempt, reason, detail, http_status, out)
        elif self._round is not None and attempt is self._round.attempt:
            self._round.attempt = None
            self._round.failed(attempt.stream, reason, detail)
            if account_level:
                self._round.skipped_accounts[attempt.stream.account_id] = reason
            self._advance(now, out)
        elif attempt is self._probe:
            self._probe_failed(attempt, reason, detail, now, out)

    def _on_tick(self, now: float, out: list[Command]) -> None:
        if self._state is SessionState.CONNECTING and self._round is not None:
            if now >= self._round.deadline:
                self._budget_exceeded(now, out)
        elif self._state is SessionState.PROBING and self._probe is not None:
            if now >= self._probe_deadline:
                probe = self._probe
                self._close(probe, FailureReason.PROBE_TIMEOUT, now, out)
                self._probe_failed(
                    probe,
                    FailureReason.PROBE_TIMEOUT,
                    f"{probe.valid_bytes} valid bytes in {self.config.probe_timeout:g} s",
                    now,
                    out,
                )
        elif (
            self._state is SessionState.PLAYING
            and self._recovery_due is not None
            and now >= self._recovery_due
        ):
            self._start_probe(now, out)

    # ------------------------------------------------------- failover round

    def _begin_round(
        self,
        phase: str,
        now: float,
        origin: _Attempt | None,
        reason: FailureReason | None,
        detail: str,
        http_status: int | None,
        out: list[Command],
    ) -> None:
        budget = self.config.tune_budget if phase == "tune" else self.config.failover_budget
        order = list(range(len(self.streams)))
        round_ = _Round(phase, now, now + budget, None, reason, detail, deque())
        if origin is not None and reason is not None:
            round_.origin = origin.stream
            order.remove(origin.index)
            if is_account_level(reason, http_status):
                round_.skipped_accounts[origin.stream.account_id] = reason
            elif is_transient(reason):
                order.append(origin.index)
        probe = self._probe
        self._probe = None
        if probe is not None and probe.stream.account_id in round_.skipped_accounts:
            self._close(probe, None, now, out)
            probe = None
        if probe is not None:
            round_.attempt = probe
            order = [i for i in order if i > probe.index]
        round_.order.extend(order)
        self._round = round_
        self._state = SessionState.CONNECTING
        self._recovery_due = None
        if probe is None:
            self._advance(now, out)
        elif probe.valid_bytes > 0:
            self._round_won(probe, now, out)

    def _advance(self, now: float, out: list[Command]) -> None:
        """Open the round's next eligible candidate, or exhaust the session."""
        round_ = self._round
        assert round_ is not None
        if now >= round_.deadline:
            self._exhaust(now, True, out)
            return
        while round_.order:
            index = round_.order.popleft()
            stream = self.streams[index]
            skipped_for = round_.skipped_accounts.get(stream.account_id)
            if skipped_for is not None:
                round_.skip(stream, skipped_for, "account skipped")
                continue
            attempt = self._try_open(index, Purpose.PLAY, now, out)
            if attempt is None:
                continue
            round_.attempt = attempt
            return
        self._exhaust(now, False, out)

    def _try_open(
        self, index: int, purpose: Purpose, now: float, out: list[Command]
    ) -> _Attempt | None:
        """Open ``streams[index]`` if its account has a slot and its breaker admits it."""
        stream = self.streams[index]
        round_ = self._round if purpose is Purpose.PLAY else None
        if self._slots.available(stream.account_id, stream.max_connections) == 0:
            if round_ is not None:
                round_.skipped_accounts[stream.account_id] = FailureReason.ACCOUNT_LIMIT
                round_.skip(stream, FailureReason.ACCOUNT_LIMIT)
            return None
        admission = self._breakers.admit(stream.xtream_channel_id, now)
        if not admission.admitted:
            if round_ is not None:
                round_.skip(stream, "breaker_open")
            return None
        lease = self._slots.try_acquire(stream.account_id, stream.max_connections, self._holder)
        if lease is None:  # unreachable while single-threaded; keep the breaker honest
            if admission is Admission.TRIAL:
                self._breakers.abandon(stream.xtream_channel_id)
            return None
        attempt_id = next(self._ids)
        self._last_id = attempt_id
        attempt = _Attempt(
            attempt_id, index, stream, purpose, lease, admission is Admission.TRIAL, now
        )
        self._attempts[attempt_id] = attempt
        out.append(OpenUpstream(attempt_id, stream, purpose))
        return attempt

    def _round_won(self, attempt: _Attempt, now: float, out: list[Command]) -> None:
        round_ = self._round
        assert round_ is not None
        self._round = None
        out.append(SwitchTo(attempt.attempt_id))
        self._record_success(attempt, now, out)
        self._playing = attempt
        self._playing_since = now
        self._state = SessionState.PLAYING
        self._recovery_due = now + self.config.recovery_period if attempt.index > 0 else None
        if round_.phase == "tune" and round_.first_failed is None:
            return
        self.failovers += 1
        from_stream = round_.origin if round_.origin is not None else round_.first_failed
        reason = round_.reason if round_.reason is not None else round_.first_reason
        assert from_stream is not None  # a failover round has an origin, a tune one a failure
        gap_ms = round((now - round_.started) * 1000)
        to = attempt.stream
        out.append(
            LogEvent(
                "warning",
                LogKind.FAILOVER,
                f"{self._label()}failover from {from_stream.name} ({from_stream.account_name}) "
                f"to {to.name} ({to.account_name}) after {reason}, gap {gap_ms} ms",
                {
                    "channel": self.channel,
                    "phase": round_.phase,
                    "from_stream": from_stream.name,
                    "from_stream_id": from_stream.xtream_channel_id,
                    "from_account": from_stream.account_name,
                    "to_stream": to.name,
                    "to_stream_id": to.xtream_channel_id,
                    "to_account": to.account_name,
                    "reason": str(reason),
                    "detail": round_.detail,
                    "gap_ms": gap_ms,
                    "failures": list(round_.failures),
                    "skipped": list(round_.skipped),
                },
            )
        )

    def _budget_exceeded(self, now: float, out: list[Command]) -> None:
        round_ = self._round
        assert round_ is not None
        if round_.attempt is not None:
            attempt = round_.attempt
            round_.attempt = None
            self._close(attempt, FailureReason.BUDGET_EXCEEDED, now, out)
            round_.failed(attempt.stream, FailureReason.BUDGET_EXCEEDED, "still pending")
        self._exhaust(now, True, out)

    def _exhaust(self, now: float, budget_exceeded: bool, out: list[Command]) -> None:
        round_ = self._round
        assert round_ is not None
        origin = round_.origin
        last = (round_.failures or round_.skipped or [{}])[-1]
        reason = str(round_.reason) if round_.reason is not None else last.get("reason")
        elapsed_ms = round((now - round_.started) * 1000)
        why = "failover budget exceeded" if budget_exceeded else "no stream left"
        out.append(
            LogEvent(
                "error",
                LogKind.EXHAUSTED,
                f"{self._label()}all streams failed ({why}, {len(round_.failures)} tried, "
                f"{len(round_.skipped)} skipped)",
                {
                    "channel": self.channel,
                    "phase": round_.phase,
                    "from_stream": origin.name if origin else None,
                    "from_account": origin.account_name if origin else None,
                    "to_stream": None,
                    "reason": reason,
                    "detail": round_.detail,
                    "budget_exceeded": budget_exceeded,
                    "elapsed_ms": elapsed_ms,
                    "failures": list(round_.failures),
                    "skipped": list(round_.skipped),
                },
            )
        )
        self._end(EndReason.EXHAUSTED, out)

    # ------------------------------------------------------------- recovery

    def _start_probe(self, now: float, out: list[Command]) -> None:
        playing = self._playing
        assert playing is not None
        for index in range(playing.index):
            probe = self._try_open(index, Purpose.PROBE, now, out)
            if probe is not None:
                self._probe = probe
                self._probe_deadline = now + self.config.probe_timeout
                self._state = SessionState.PROBING
                self._recovery_due = None
                return
        self._recovery_due = now + self.config.recovery_period

    def _probe_failed(
        self, probe: _Attempt, reason: FailureReason, detail: str, now: float, out: list[Command]
    ) -> None:
        self._probe = None
        self._state = SessionState.PLAYING
        self._recovery_due = now + self.config.recovery_period
        current = self._playing
        assert current is not None
        out.append(
            LogEvent(
                "info",
                LogKind.UPGRADE_FAILED,
                f"{self._label()}probe of {probe.stream.name} ({probe.stream.account_name}) "
                f"failed ({reason}); staying on {current.stream.name}",
                {
                    "channel": self.channel,
                    "from_stream": current.stream.name,
                    "from_account": current.stream.account_name,
                    "to_stream": probe.stream.name,
                    "to_stream_id": probe.stream.xtream_channel_id,
                    "to_account": probe.stream.account_name,
                    "reason": str(reason),
                    "detail": detail,
                    "retry_in_s": self.config.recovery_period,
                },
            )
        )

    def _upgrade(self, probe: _Attempt, now: float, out: list[Command]) -> None:
        old = self._playing
        assert old is not None
        out.append(SwitchTo(probe.attempt_id))
        self._close(old, None, now, out)
        self._record_success(probe, now, out)
        self.upgrades += 1
        out.append(
            LogEvent(
                "info",
                LogKind.UPGRADE,
                f"{self._label()}upgraded from {old.stream.name} ({old.stream.account_name}) "
                f"to {probe.stream.name} ({probe.stream.account_name})",
                {
                    "channel": self.channel,
                    "from_stream": old.stream.name,
                    "from_stream_id": old.stream.xtream_channel_id,
                    "from_account": old.stream.account_name,
                    "to_stream": probe.stream.name,
                    "to_stream_id": probe.stream.xtream_channel_id,
                    "to_account": probe.stream.account_name,
                    "reason": "recovery",
                    "gap_ms": 0,
                    "probe_ms": round((now - probe.opened_at) * 1000),
                    "played_backup_s": round(now - self._playing_since, 3),
                },
            )
        )
        self._playing = probe
        self._probe = None
        self._playing_since = now
        self._state = SessionState.PLAYING
        self._recovery_due = now + self.config.recovery_period if probe.index > 0 else None

    # ---------------------------------------------------------- bookkeeping

    def _close(
        self, attempt: _Attempt, failure: FailureReason | None, now: float, out: list[Command]
    ) -> None:
        """Emit the attempt's close, release its slot and record the breaker verdict."""
        del self._attempts[attempt.attempt_id]
        out.append(CloseUpstream(attempt.attempt_id))
        self._slots.release(attempt.lease)
        key = attempt.stream.xtream_channel_id
        if failure is not None and counts_against_stream(failure):
            attempt.verdict = True
            self._log_breaker(self._breakers.record_failure(key, now), out)
        elif attempt.trial and not attempt.verdict:
            self._breakers.abandon(key)

    def _record_success(self, attempt: _Attempt, now: float, out: list[Command]) -> None:
        attempt.verdict = True
        self._log_breaker(self._breakers.record_success(attempt.stream.xtream_channel_id, now), out)

    def _log_breaker(self, change: BreakerChange | None, out: list[Command]) -> None:
        if change is None:
            return
        stream = self.streams[self._index_of(change.key)]
        details: dict[str, Any] = {
            "channel": self.channel,
            "stream": stream.name,
            "xtream_channel_id": stream.xtream_channel_id,
            "account": stream.account_name,
            "consecutive_failures": change.consecutive_failures,
        }
        if change.state is BreakerState.OPEN:
            details["cooldown_s"] = change.cooldown
            out.append(
                LogEvent(
                    "warning",
                    LogKind.BREAKER_OPEN,
                    f"{self._label()}{stream.name} ({stream.account_name}) failed "
                    f"{change.consecutive_failures} times; skipped for {change.cooldown:g} s",
                    details,
                )
            )
        else:
            out.append(
                LogEvent(
                    "info",
                    LogKind.BREAKER_CLOSE,
                    f"{self._label()}{stream.name} ({stream.account_name}) works again",
                    details,
                )
            )

    def _end(self, reason: EndReason, out: list[Command]) -> None:
        for attempt in list(self._attempts.values()):
            self._close(attempt, None, self._now, out)
        self._round = None
        self._playing = None
        self._probe = None
        self._recovery_due = None
        self._state = SessionState.ENDED
        out.append(EndSession(reason))

    def _request_wakeup(self, out: list[Command]) -> None:
        deadline = self.next_deadline
        if deadline is not None and deadline != self._last_wakeup:
            out.append(RequestWakeup(deadline))
        self._last_wakeup = deadline

    def _index_of(self, xtream_channel_id: int) -> int:
        for index, stream in enumerate(self.streams):
            if stream.xtream_channel_id == xtream_channel_id:
                return index
        raise LookupError(xtream_channel_id)

    def _label(self) -> str:
        return f"{self.channel}: " if self.channel else ""

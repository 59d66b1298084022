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

The vocabulary — events in, commands out, the enums and
:class:`PolicyConfig` — lives in :mod:`streamforge.streaming.protocol` (and is
re-exported here).

Events in: :class:`Start`, :class:`UpstreamOpened` (headers OK),
:class:`UpstreamData` (valid MPEG-TS bytes read), :class:`MediaHealthy`
(a probe showed a few seconds of healthy media), :class:`UpstreamFailed`
(also for content that is not MPEG-TS: reason ``invalid_content``),
:class:`Tick` (a wakeup fired), :class:`ClientsGone`.

Commands out: :class:`OpenUpstream`, :class:`CloseUpstream`,
:class:`SwitchTo` (cut the client over to this attempt and forward from it;
its :class:`SwitchMode` is break-before-make after a tune or failure, and
make-before-break for an attempt opened as a probe, i.e. an upgrade),
:class:`LogEvent`, :class:`EndSession`, :class:`RequestWakeup`.

States and transitions (:class:`SessionState`), the whole table — it is
:data:`~streamforge.streaming.protocol.TRANSITIONS`, which :meth:`FailoverPolicy.handle`
checks every event against; a (state, event) pair without a row raises::

    state       event           when                        next        commands
    ----------  --------------  --------------------------  ----------  ----------------------------
    IDLE        Start           a stream is eligible        CONNECTING  OpenUpstream, RequestWakeup
    IDLE        Start           no stream is eligible       ENDED       exhausted, EndSession
    IDLE        ClientsGone                                 ENDED       EndSession
    CONNECTING  UpstreamOpened  headers of the attempt      CONNECTING  nothing
    CONNECTING  UpstreamOpened  (a closed attempt)          CONNECTING  nothing (ignored)
    CONNECTING  UpstreamData    data from the attempt       PLAYING     SwitchTo [+ failover etc.]
    CONNECTING  UpstreamData    ... others in flight        PLAYING     SwitchTo, close the others
    CONNECTING  UpstreamData    no bytes / closed attempt   CONNECTING  nothing (ignored)
    CONNECTING  MediaHealthy    any attempt                 CONNECTING  nothing (ignored)
    CONNECTING  UpstreamFailed  the attempt failed          CONNECTING  close it, open the next one
    CONNECTING  UpstreamFailed  ... others in flight        CONNECTING  close it, wait or hedge
    CONNECTING  UpstreamFailed  ... none left / no time     ENDED       close, exhausted, EndSession
    CONNECTING  UpstreamFailed  ... none left, hold on      CONNECTING  HoldSlate, retry later
    CONNECTING  UpstreamFailed  (a closed attempt)          CONNECTING  nothing (ignored)
    CONNECTING  Tick            at the round's time limit   ENDED       close, exhausted, EndSession
    CONNECTING  Tick            ... hold on                 CONNECTING  HoldSlate, retry later
    CONNECTING  Tick            at the hedge delay          CONNECTING  open the next one alongside
    CONNECTING  Tick            a swap attempt's budget     CONNECTING  close it (hung), open next
    CONNECTING  Tick            before either               CONNECTING  nothing
    CONNECTING  Unpin                                       CONNECTING  unpin
    CONNECTING  ClientsGone                                 ENDED       close all, EndSession
    PLAYING     UpstreamOpened  (a closed attempt)          PLAYING     nothing (ignored)
    PLAYING     UpstreamData    data of the playing stream  PLAYING     nothing
    PLAYING     UpstreamData    (a closed attempt)          PLAYING     nothing (ignored)
    PLAYING     MediaHealthy    any attempt                 PLAYING     nothing (ignored)
    PLAYING     UpstreamFailed  the playing stream failed   CONNECTING  close it, open the next one
    PLAYING     UpstreamFailed  ... none left               ENDED       close, exhausted, EndSession
    PLAYING     UpstreamFailed  ... none left, hold on      CONNECTING  HoldSlate, retry later
    PLAYING     UpstreamFailed  (a closed attempt)          PLAYING     nothing (ignored)
    PLAYING     Tick            at the recovery period      PROBING     open a probe (PROBE)
    PLAYING     Tick            ... account full, ours      CONNECTING  close it, swap round
    PLAYING     Tick            ... account held elsewhere  PLAYING     upgrade_waiting once, retry
    PLAYING     Tick            ... none eligible           PLAYING     wait another period
    PLAYING     Tick            before it / on top stream   PLAYING     nothing
    PLAYING     ManualSwitch    another stream              CONNECTING  close it, manual round
    PLAYING     ManualSwitch    the playing stream          PLAYING     pin it
    PLAYING     Unpin                                       PLAYING     unpin, recovery period
    PLAYING     ClientsGone                                 ENDED       close all, EndSession
    PROBING     UpstreamOpened  headers of the probe        PROBING     nothing
    PROBING     UpstreamOpened  (a closed attempt)          PROBING     nothing (ignored)
    PROBING     UpstreamData    probe has probe_min_bytes   PLAYING     SwitchTo, close old, upgrade
    PROBING     UpstreamData    ... and must be healthy     PROBING     nothing (waits for health)
    PROBING     UpstreamData    less / playing / closed     PROBING     nothing
    PROBING     MediaHealthy    the probe, has min bytes    PLAYING     SwitchTo, close old, upgrade
    PROBING     MediaHealthy    less / playing / closed     PROBING     nothing
    PROBING     UpstreamFailed  the probe failed            PLAYING     close probe, upgrade_failed
    PROBING     UpstreamFailed  the playing stream failed   CONNECTING  close it; probe is attempt
    PROBING     UpstreamFailed  ... the probe had data      PLAYING     close, SwitchTo, failover
    PROBING     UpstreamFailed  ... none left               ENDED       close, exhausted, EndSession
    PROBING     UpstreamFailed  (a closed attempt)          PROBING     nothing (ignored)
    PROBING     Tick            at the probe timeout        PLAYING     close probe, upgrade_failed
    PROBING     Tick            before the probe timeout    PROBING     nothing
    PROBING     ManualSwitch    another stream              CONNECTING  close probe and it, manual
    PROBING     ManualSwitch    the playing stream          PLAYING     close probe, pin it
    PROBING     Unpin                                       PROBING     unpin
    PROBING     ClientsGone                                 ENDED       close all, EndSession
    ENDED       UpstreamOpened                              ENDED       nothing (ignored)
    ENDED       UpstreamData                                ENDED       nothing (ignored)
    ENDED       MediaHealthy                                ENDED       nothing (ignored)
    ENDED       UpstreamFailed                              ENDED       nothing (ignored)
    ENDED       Tick                                        ENDED       nothing (ignored)
    ENDED       ClientsGone                                 ENDED       nothing (ignored)
    ENDED       ManualSwitch                                ENDED       nothing (ignored)
    ENDED       Unpin                                       ENDED       nothing (ignored)

"close" is :class:`CloseUpstream`; "exhausted", "failover", "upgrade" and
"upgrade_failed" are :class:`LogEvent` kinds; a row whose condition starts
with "..." narrows the row above it. Any answer may also carry breaker events
and end with a :class:`RequestWakeup` when the next deadline changed.

* **Failover round** (state CONNECTING). Started by :class:`Start` (the
  *tune* phase) or by the failure of the playing stream (the *failover*
  phase). Candidates are walked in priority order with a cursor that only
  moves forward: a stream is skipped when its account failed account-level in
  this round or has no free connection
  (:class:`~streamforge.streaming.slots.AccountSlots`), or when its circuit
  breaker is open; one whose account connection is held by this very session
  waits in the order until that connection is released. The stream whose
  failure started the round is not retried in the round, except as the very
  last candidate when its failure was transient (EOF, stall, reset —
  reconnecting may be all it takes).
* **Hedged attempts.** The round opens one candidate; when the newest attempt
  in flight has gone ``hedge_delay`` without delivering valid MPEG-TS, the
  next candidate is opened *alongside* it (at most ``hedge_max`` in flight,
  each on a free connection of its account, so the account limits hold at
  every instant). The first attempt to deliver valid TS wins —
  :class:`SwitchTo`, the others are closed at once, and a ``failover`` event
  carries the gap in ms from the failure to that data, whether it was within
  ``failover_budget`` (the target) and how many hedges were opened. Priority
  is kept by the stagger: a better candidate always had ``hedge_delay`` more
  than a worse one. A loser that had its hedge delay without delivering has
  *hung* (``hung``): that counts against its breaker like any failure.
* **End of a round.** A round ends only when nothing is in flight and no
  candidate is left, or when its time limit runs out (``outage_limit`` for a
  failover, ``tune_budget`` for the tune): then the session is **exhausted**
  — an ``exhausted`` error event and :class:`EndSession`.
* **Outage hold** (opt-in, ``outage_hold`` > 0, after something has played).
  Instead of ending, an exhausted round emits :class:`HoldSlate` (the driver
  plays the "temporarily unavailable" slate on the session's PIDs) and a
  ``hold`` event, and retries every stream in new rounds after a backoff
  (0.5 s doubling to 4 s; breakers and account limits apply, the retries'
  own failures do not count against breakers). The first stream to deliver
  is cut back to with a ``failover`` event whose gap is the whole outage;
  when the hold time runs out the session is exhausted as above.
* **Recovery** (PLAYING → PROBING). Playing anything but the top stream, the
  session waits ``recovery_period`` and then opens a probe of the best
  eligible stream above the current one (breaker admitting, a free slot on
  its account) *while the current one keeps playing* — the only time two
  upstreams are open. It switches (:class:`SwitchTo`, then closes the old
  one) once the probe has delivered ``probe_min_bytes`` of valid TS and, when
  ``probe_healthy_seconds`` is set, the driver reported it
  :class:`MediaHealthy` (the driver judges the media; a probe showing a
  black, frozen or silent picture or falling behind live is failed by the
  driver instead, with that reason); its deadline is ``probe_timeout`` plus
  ``probe_healthy_seconds``. A probe
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

Strictness: an event the state does not accept (no row in the table: any
upstream report or :class:`Tick` in IDLE, :class:`Start` anywhere but IDLE)
raises :class:`FailoverProtocolError` (a bug in the driver), as does an event
about an attempt id that was never issued, data before headers, headers twice
or a negative byte count. Events about attempts that were already closed are
*ignored* — a driver may have reports in flight when it receives the close.
Once ENDED, every event except :class:`Start` is ignored and produces no
command, so nothing is ever forwarded after exhaustion. Time never goes backwards: an event stamped
earlier than one already seen is treated as happening at the latest ``now``.

Wakeups: after each event the policy emits :class:`RequestWakeup` when its
next deadline (hedge delay, round time limit, probe timeout or recovery
period) changed. The
latest request replaces earlier ones; a :class:`Tick` before a deadline is
harmless.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamforge.streaming.breaker import Admission, BreakerChange, BreakerState, CircuitBreakers
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.protocol import (
    ClientsGone,
    CloseUpstream,
    Command,
    EndReason,
    EndSession,
    Event,
    FailoverProtocolError,
    HoldSlate,
    LogEvent,
    LogKind,
    ManualSwitch,
    MediaHealthy,
    OpenUpstream,
    PolicyConfig,
    Purpose,
    RequestWakeup,
    SessionState,
    Start,
    SwitchMode,
    SwitchTo,
    Tick,
    Unpin,
    UpstreamData,
    UpstreamFailed,
    UpstreamOpened,
    accepts,
)
from streamforge.streaming.reasons import (
    FailureReason,
    counts_against_stream,
    is_account_level,
    is_transient,
    safe_detail,
)
from streamforge.streaming.slots import AccountSlots, SlotLease

_HOLD_RETRY_MAX = 4.0
"""Longest backoff between two retry rounds while holding on the slate."""

_WAIT_RETRY = 2.0
"""Seconds between looks at an account whose connections other channels hold,
while an upgrade waits for one."""

__all__ = [
    "ClientsGone",
    "CloseUpstream",
    "Command",
    "EndReason",
    "EndSession",
    "Event",
    "FailoverPolicy",
    "FailoverProtocolError",
    "LogEvent",
    "LogKind",
    "ManualSwitch",
    "MediaHealthy",
    "OpenUpstream",
    "PolicyConfig",
    "Purpose",
    "RequestWakeup",
    "SessionState",
    "Start",
    "SwitchMode",
    "SwitchTo",
    "Tick",
    "Unpin",
    "UpstreamData",
    "UpstreamFailed",
    "UpstreamOpened",
]


@dataclass(slots=True, eq=False)
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
    judged: bool = True
    """Whether a failure counts against the stream's breaker (not for the
    backoff retries of an outage hold: the whole provider is down, and the
    backoff already keeps the retries rare)."""
    healthy: bool = False


@dataclass(slots=True)
class _Round:
    phase: str
    started: float
    deadline: float
    origin: ProviderStream | None
    reason: FailureReason | None
    detail: str
    order: deque[int]
    attempts: list[_Attempt] = field(default_factory=list)
    """The round's attempts in flight, oldest (best) first."""
    hedge_at: float | None = None
    """When the round opens its next candidate alongside those in flight."""
    hedges: int = 0
    """Attempts opened while another was still in flight."""
    attempt_limit: float | None = None
    """Seconds one attempt may go without data before it is given up (swap and
    manual rounds: the viewer already left a working stream for it)."""
    target: int | None = None
    """The stream a swap or manual round is for (tried first)."""
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


def _switch_mode(attempt: _Attempt) -> SwitchMode:
    """A probe has been prepared as a splice candidate; anything else resumes the output."""
    if attempt.purpose is Purpose.PROBE:
        return SwitchMode.MAKE_BEFORE_BREAK
    return SwitchMode.BREAK_BEFORE_MAKE


def _attempt_record(
    stream: ProviderStream, reason: FailureReason | str, detail: str = ""
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "stream": stream.ref,
        "stream_name": stream.name,
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
        self._pinned: int | None = None
        self._hold_since: float | None = None
        self._hold_retries = 0
        self._waiting_for: ProviderStream | None = None
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
            round_ = self._round
            due = [round_.deadline]
            if round_.hedge_at is not None:
                due.append(round_.hedge_at)
            if round_.attempt_limit is not None:
                due += [a.opened_at + round_.attempt_limit for a in round_.attempts]
            if self._hold_due(round_):
                due.append(round_.started + self.config.failover_budget)
            return min(due)
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
            "pinned": self.streams[self._pinned].describe() if self._pinned is not None else None,
            "upgrade_waiting": self._waiting_for.describe() if self._waiting_for else None,
        }

    @property
    def pinned(self) -> ProviderStream | None:
        """The stream the user pinned with a manual switch, if any."""
        return self.streams[self._pinned] if self._pinned is not None else None

    def handle(self, event: Event) -> list[Command]:
        """Feed one event; return the commands to carry out, in order."""
        playing = self._playing
        if (
            type(event) is UpstreamData
            and playing is not None
            and event.attempt_id == playing.attempt_id
            and event.nbytes >= 0
        ):
            # The hot path, once per chunk forwarded: nothing to decide.
            self._now = max(event.now, self._now)
            playing.valid_bytes += event.nbytes
            return []
        now = max(event.now, self._now)
        self._now = now
        if not accepts(self._state, type(event)):
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
            case MediaHealthy():
                attempt = self._known_attempt(event.attempt_id)
                if attempt is not None:
                    attempt.healthy = True
                    if attempt is self._probe and self._probe_ready(attempt):
                        self._upgrade(attempt, now, out)
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
            case ManualSwitch():
                self._manual_switch(event.stream_index, now, out)
            case Unpin():
                self._unpin(now)
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
        if event.nbytes == 0:
            return
        attempt.valid_bytes += event.nbytes
        if attempt is self._playing:
            return
        if self._round is not None and attempt in self._round.attempts:
            self._round_won(attempt, now, out)
        elif attempt is self._probe and self._probe_ready(attempt):
            self._upgrade(attempt, now, out)

    def _probe_timeout_detail(self, probe: _Attempt, now: float) -> str:
        cfg = self.config
        if cfg.probe_healthy_seconds <= 0:
            return f"{probe.valid_bytes} valid bytes in {cfg.probe_timeout:g} s"
        waited = cfg.probe_timeout + cfg.probe_healthy_seconds
        health = "healthy" if probe.healthy else "never healthy"
        return f"{probe.valid_bytes} valid bytes in {waited:g} s, {health}"

    def _probe_ready(self, probe: _Attempt) -> bool:
        """Enough valid bytes and, when the config asks for it, reported healthy."""
        if probe.valid_bytes < self.config.probe_min_bytes:
            return False
        return probe.healthy or self.config.probe_healthy_seconds <= 0

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
            self._pinned = None
            self._begin_round("failover", now, attempt, reason, detail, http_status, out)
        elif self._round is not None and attempt in self._round.attempts:
            self._round.attempts.remove(attempt)
            self._round.failed(attempt.stream, reason, detail)
            if account_level:
                self._round.skipped_accounts[attempt.stream.account_id] = reason
            self._advance(now, out)
        elif attempt is self._probe:
            self._probe_failed(attempt, reason, detail, now, out)

    def _on_tick(self, now: float, out: list[Command]) -> None:
        if self._state is SessionState.CONNECTING and self._round is not None:
            round_ = self._round
            if now >= round_.deadline:
                self._limit_reached(now, out)
                return
            if self._hold_due(round_) and now >= round_.started + self.config.failover_budget:
                self._start_hold(round_, now, out)
            limit = round_.attempt_limit
            expired = [
                a for a in round_.attempts if limit is not None and now >= a.opened_at + limit
            ]
            for attempt in expired:
                round_.attempts.remove(attempt)
                waited_ms = round((now - attempt.opened_at) * 1000)
                self._close(attempt, FailureReason.HUNG, now, out)
                round_.failed(attempt.stream, FailureReason.HUNG, f"no video after {waited_ms} ms")
            if expired or (round_.hedge_at is not None and now >= round_.hedge_at):
                self._advance(now, out)
        elif self._state is SessionState.PROBING and self._probe is not None:
            if now >= self._probe_deadline:
                probe = self._probe
                self._close(probe, FailureReason.PROBE_TIMEOUT, now, out)
                self._probe_failed(
                    probe,
                    FailureReason.PROBE_TIMEOUT,
                    self._probe_timeout_detail(probe, now),
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
        budget = self.config.tune_budget if phase == "tune" else self.config.outage_limit
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
            round_.attempts.append(probe)
            order = [i for i in order if i > probe.index]
        round_.order.extend(order)
        self._round = round_
        self._state = SessionState.CONNECTING
        self._recovery_due = None
        if probe is not None and probe.valid_bytes > 0:
            self._round_won(probe, now, out)
        else:
            self._advance(now, out)

    def _advance(self, now: float, out: list[Command]) -> None:
        """Open the round's next candidate when it is due, or exhaust the session.

        A candidate is due when nothing is in flight, or when the newest
        attempt in flight has had ``hedge_delay`` without delivering: then the
        next candidate is opened *alongside* it (a hedge), as long as fewer
        than ``hedge_max`` attempts are in flight. The round is exhausted only
        when nothing is in flight and no candidate can be opened.
        """
        round_ = self._round
        assert round_ is not None
        if now >= round_.deadline:
            self._limit_reached(now, out)
            return
        round_.hedge_at = None
        newest = round_.attempts[-1] if round_.attempts else None
        if newest is not None and now < newest.opened_at + self.config.hedge_delay:
            if round_.order:
                round_.hedge_at = newest.opened_at + self.config.hedge_delay
            return
        if len(round_.attempts) >= self.config.hedge_max:
            return
        attempt, deferred = self._open_next(now, out)
        if attempt is not None:
            if round_.attempts:
                round_.hedges += 1
            round_.attempts.append(attempt)
            if round_.order:
                round_.hedge_at = now + self.config.hedge_delay
            return
        if round_.attempts:
            return  # wait for the attempts in flight; a failure comes back here
        if deferred:
            # Only candidates whose account connection this session is still
            # releasing are left: look again shortly instead of giving up.
            round_.hedge_at = now + self.config.hedge_delay
            return
        self._exhaust(now, False, out)

    def _open_next(self, now: float, out: list[Command]) -> tuple[_Attempt | None, bool]:
        """Open the best openable candidate of the round's order.

        Returns the attempt (or None) and whether a candidate was passed over
        only because this session itself holds its account's connections
        (it stays in the order: it may be opened once that connection closes).
        """
        round_ = self._round
        assert round_ is not None
        deferred = False
        for index in list(round_.order):
            stream = self.streams[index]
            skipped_for = round_.skipped_accounts.get(stream.account_id)
            if skipped_for is not None:
                round_.order.remove(index)
                round_.skip(stream, skipped_for, "account skipped")
                continue
            if self._slots.available(
                stream.account_id, stream.max_connections
            ) == 0 and self._holds_connection_of(stream.account_id):
                deferred = True
                continue
            round_.order.remove(index)
            attempt = self._try_open(index, Purpose.PLAY, now, out)
            if attempt is not None:
                return attempt, deferred
        return None, deferred

    def _holds_connection_of(self, account_id: int) -> bool:
        """Whether this session uses a connection of ``account_id`` (an open attempt, or a
        lease of its own the registry still counts, e.g. one being released)."""
        if any(a.stream.account_id == account_id for a in self._attempts.values()):
            return True
        return self._holder is not None and any(
            lease.holder == self._holder for lease in self._slots.leases(account_id)
        )

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
        attempt.judged = round_ is None or round_.phase != "hold"
        self._attempts[attempt_id] = attempt
        out.append(OpenUpstream(attempt_id, stream, purpose, lease))
        return attempt

    def _round_won(self, attempt: _Attempt, now: float, out: list[Command]) -> None:
        round_ = self._round
        assert round_ is not None
        self._round = None
        out.append(SwitchTo(attempt.attempt_id, _switch_mode(attempt)))
        for other in round_.attempts:
            if other is not attempt:
                self._close_pending(round_, other, now, out, lost=True)
        round_.attempts.clear()
        self._record_success(attempt, now, out)
        self._playing = attempt
        self._playing_since = now
        self._state = SessionState.PLAYING
        self._waiting_for = None
        held = self._hold_since
        self._hold_since = None
        self._hold_retries = 0
        if round_.phase in ("swap", "manual"):
            self._user_round_won(round_, attempt, now, out)
            return
        self._recovery_due = now + self.config.recovery_period if attempt.index > 0 else None
        if round_.phase == "tune" and round_.first_failed is None:
            return
        if round_.phase == "tune" and not round_.failures:
            # Only skips (account full, breaker open): a tune detail, not a failover.
            to = attempt.stream
            out.append(
                LogEvent(
                    "info",
                    LogKind.TUNE,
                    f"{self._label()}tuned {to.name} ({to.account_name}); "
                    f"{len(round_.skipped)} stream(s) before it skipped",
                    {
                        "channel": self.channel,
                        "phase": round_.phase,
                        "to_stream": to.ref,
                        "to_stream_name": to.name,
                        "to_stream_id": to.stream_id,
                        "to_account": to.account_name,
                        "skipped": list(round_.skipped),
                    },
                )
            )
            return
        self.failovers += 1
        from_stream = round_.origin if round_.origin is not None else round_.first_failed
        reason = round_.reason if round_.reason is not None else round_.first_reason
        assert from_stream is not None  # a failover round has an origin, a tune one a failure
        gap_ms = round((now - round_.started) * 1000)
        within_budget = gap_ms <= self.config.failover_budget * 1000
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
                    "from_stream": from_stream.ref,
                    "from_stream_name": from_stream.name,
                    "from_stream_id": from_stream.stream_id,
                    "from_account": from_stream.account_name,
                    "to_stream": to.ref,
                    "to_stream_name": to.name,
                    "to_stream_id": to.stream_id,
                    "to_account": to.account_name,
                    "reason": str(reason),
                    "detail": round_.detail,
                    "gap_ms": gap_ms,
                    "held_s": round(now - held, 3) if held is not None else 0.0,
                    "within_budget": within_budget,
                    "hedges": round_.hedges,
                    "failures": list(round_.failures),
                    "skipped": list(round_.skipped),
                },
            )
        )

    def _close_pending(
        self, round_: _Round, attempt: _Attempt, now: float, out: list[Command], *, lost: bool
    ) -> None:
        """Close an attempt of the round that has not delivered.

        ``lost``: another attempt won the race; otherwise the round's time is
        up. One that had its hedge delay and more without delivering has
        *hung*: that counts against its stream like any failure. A younger one
        that lost is simply abandoned (no verdict); a younger one still pending
        when time is up is recorded as such.
        """
        waited = now - attempt.opened_at
        if waited >= self.config.hedge_delay:
            self._close(attempt, FailureReason.HUNG, now, out)
            round_.failed(
                attempt.stream, FailureReason.HUNG, f"no video after {round(waited * 1000)} ms"
            )
        elif lost:
            self._close(attempt, None, now, out)
        else:
            self._close(attempt, FailureReason.BUDGET_EXCEEDED, now, out)
            round_.failed(attempt.stream, FailureReason.BUDGET_EXCEEDED, "still pending")

    def _limit_reached(self, now: float, out: list[Command]) -> None:
        """The round's time limit (tune budget or outage limit) ran out."""
        round_ = self._round
        assert round_ is not None
        for attempt in round_.attempts:
            self._close_pending(round_, attempt, now, out, lost=False)
        round_.attempts.clear()
        self._exhaust(now, True, out)

    def _exhaust(self, now: float, budget_exceeded: bool, out: list[Command]) -> None:
        round_ = self._round
        assert round_ is not None
        if self._may_hold(round_, now):
            self._hold(round_, now, out)
            return
        origin = round_.origin
        last = (round_.failures or round_.skipped or [{}])[-1]
        reason = str(round_.reason) if round_.reason is not None else last.get("reason")
        elapsed_ms = round((now - round_.started) * 1000)
        if not budget_exceeded:
            why = "no stream left"
        elif round_.phase == "tune":
            why = "tune budget exceeded"
        else:
            why = "outage limit reached"
        out.append(
            LogEvent(
                "error",
                LogKind.EXHAUSTED,
                f"{self._label()}all streams failed ({why}, {len(round_.failures)} tried, "
                f"{len(round_.skipped)} skipped)",
                {
                    "channel": self.channel,
                    "phase": round_.phase,
                    "from_stream": origin.ref if origin else None,
                    "from_stream_name": origin.name if origin else None,
                    "from_stream_id": origin.stream_id if origin else None,
                    "from_account": origin.account_name if origin else None,
                    "to_stream": None,
                    "reason": reason,
                    "detail": round_.detail,
                    "budget_exceeded": budget_exceeded,
                    "elapsed_ms": elapsed_ms,
                    "held_s": (
                        round(now - self._hold_since, 3) if self._hold_since is not None else 0.0
                    ),
                    "failures": list(round_.failures),
                    "skipped": list(round_.skipped),
                },
            )
        )
        self._end(EndReason.EXHAUSTED, out)

    # ---------------------------------------------------------- outage hold

    def _hold_due(self, round_: _Round) -> bool:
        """Whether this round puts viewers on the slate once it misses the failover budget."""
        return self.config.outage_hold > 0 and round_.phase != "tune" and self._hold_since is None

    def _may_hold(self, round_: _Round, now: float) -> bool:
        """Whether an exhausted round holds the viewer on the slate instead of ending.

        Only once something has played (a tune that never got a picture answers
        the tuner's error as before), and only until ``outage_hold`` has passed
        since the hold began."""
        if self.config.outage_hold <= 0 or round_.phase == "tune":
            return False
        return self._hold_since is None or now < self._hold_since + self.config.outage_hold

    def _start_hold(self, round_: _Round, now: float, out: list[Command]) -> None:
        """Put the viewers on the slate (once per outage) and give the round until the hold ends."""
        if self._hold_since is not None:
            return
        self._hold_since = now
        round_.deadline = now + self.config.outage_hold  # the hold replaces the outage limit
        out.append(HoldSlate(str(round_.reason or round_.first_reason or "")))
        out.append(
            LogEvent(
                "warning",
                LogKind.HOLD,
                f"{self._label()}no stream delivered within the failover budget; holding "
                f"viewers on the slate for up to {self.config.outage_hold:g} s while retrying",
                {
                    "channel": self.channel,
                    "phase": round_.phase,
                    "from_stream": round_.origin.name if round_.origin else None,
                    "reason": str(round_.reason or round_.first_reason or ""),
                    "hold_s": self.config.outage_hold,
                    "failures": list(round_.failures),
                    "skipped": list(round_.skipped),
                },
            )
        )

    def _hold(self, round_: _Round, now: float, out: list[Command]) -> None:
        """Every stream failed: keep the response open on the slate, retry with backoff.

        The retry is a new round over every stream (breakers and account
        limits apply as always), opened after a backoff of 0.5 s doubling to at
        most ``_HOLD_RETRY_MAX``; it may run until the hold ends. The first
        stream to deliver is cut back to (break-before-make), with a failover
        event whose gap is the whole outage.
        """
        self._start_hold(round_, now, out)
        delay = min(_HOLD_RETRY_MAX, 0.5 * 2**self._hold_retries)
        self._hold_retries += 1
        assert self._hold_since is not None
        hold_end = self._hold_since + self.config.outage_hold
        retry = _Round(
            "hold",
            round_.started,
            hold_end,
            round_.origin,
            round_.reason,
            round_.detail,
            deque(range(len(self.streams))),
        )
        retry.first_failed = round_.first_failed
        retry.first_reason = round_.first_reason
        retry.hedge_at = min(now + delay, hold_end)
        self._round = retry
        self._state = SessionState.CONNECTING

    # ------------------------------------------------------------- recovery

    def _start_probe(self, now: float, out: list[Command]) -> None:
        """At the recovery period: probe, swap or wait for the best stream above this one.

        * a better stream whose account has a free connection is probed
          alongside the playing one (make-before-break);
        * one whose account is full but holds the playing stream's own
          connection is *swapped to*: the playing stream is closed first and a
          round tries the better one, falling back down the list as a failover
          would (break-before-make; the provider never sees one too many);
        * one whose account connections are all held by other channels is
          waited for: an ``upgrade_waiting`` event once per wait, and a look
          again every ``_WAIT_RETRY`` seconds until a connection frees.
        """
        playing = self._playing
        assert playing is not None
        waiting_for: ProviderStream | None = None
        for index in range(playing.index):
            stream = self.streams[index]
            if self._breakers.state(stream.xtream_channel_id, now) is BreakerState.OPEN:
                continue
            if self._slots.available(stream.account_id, stream.max_connections) == 0:
                if stream.account_id == playing.stream.account_id:
                    self._begin_user_round("swap", index, now, out)
                    return
                waiting_for = waiting_for or stream
                continue
            probe = self._try_open(index, Purpose.PROBE, now, out)
            if probe is not None:
                self._probe = probe
                self._probe_deadline = (
                    now + self.config.probe_timeout + self.config.probe_healthy_seconds
                )
                self._state = SessionState.PROBING
                self._recovery_due = None
                self._waiting_for = None
                return
        if waiting_for is None:
            self._waiting_for = None
            self._recovery_due = now + self.config.recovery_period
            return
        if (
            self._waiting_for is None
            or self._waiting_for.xtream_channel_id != waiting_for.xtream_channel_id
        ):
            out.append(
                LogEvent(
                    "info",
                    LogKind.UPGRADE_WAITING,
                    f"{self._label()}{waiting_for.name} ({waiting_for.account_name}) is better "
                    f"than {playing.stream.name}, but every connection of "
                    f"{waiting_for.account_name} is in use by other channels; waiting",
                    {
                        "channel": self.channel,
                        "from_stream": playing.stream.ref,
                        "from_stream_name": playing.stream.name,
                        "from_stream_id": playing.stream.stream_id,
                        "from_account": playing.stream.account_name,
                        "to_stream": waiting_for.ref,
                        "to_stream_name": waiting_for.name,
                        "to_stream_id": waiting_for.stream_id,
                        "to_account": waiting_for.account_name,
                        "reason": "account_limit",
                    },
                )
            )
        self._waiting_for = waiting_for
        self._recovery_due = now + min(self.config.recovery_period, _WAIT_RETRY)

    # --------------------------------------------------- swap and manual rounds

    def _begin_user_round(self, phase: str, target: int, now: float, out: list[Command]) -> None:
        """Leave the playing stream for ``target`` (break-before-make), then fall back.

        The round tries ``target`` first, then every other stream in priority
        order — the one just left included — exactly as a failover would, each
        attempt given ``failover_budget`` to deliver before it is given up.
        """
        old = self._playing
        assert old is not None
        if self._probe is not None:
            self._close(self._probe, None, now, out)
            self._probe = None
        self._playing = None
        self._close(old, None, now, out)
        order = [target] + [i for i in range(len(self.streams)) if i != target]
        round_ = _Round(
            phase, now, now + self.config.outage_limit, old.stream, None, "", deque(order)
        )
        round_.attempt_limit = self.config.failover_budget
        round_.target = target
        self._round = round_
        self._state = SessionState.CONNECTING
        self._recovery_due = None
        self._waiting_for = None
        self._advance(now, out)

    def _user_round_won(
        self, round_: _Round, attempt: _Attempt, now: float, out: list[Command]
    ) -> None:
        origin = round_.origin
        assert origin is not None
        reached = attempt.index == round_.target
        if round_.phase == "manual":
            self._pinned = attempt.index if reached else None
        on_top = attempt.index == 0 or self._pinned is not None
        self._recovery_due = None if on_top else now + self.config.recovery_period
        gap_ms = round((now - round_.started) * 1000)
        target = self.streams[round_.target] if round_.target is not None else attempt.stream
        details: dict[str, Any] = {
            "channel": self.channel,
            "mode": round_.phase,
            "from_stream": origin.ref,
            "from_stream_name": origin.name,
            "from_stream_id": origin.stream_id,
            "from_account": origin.account_name,
            "to_stream": attempt.stream.ref,
            "to_stream_name": attempt.stream.name,
            "to_stream_id": attempt.stream.stream_id,
            "to_account": attempt.stream.account_name,
            "requested_stream": target.ref,
            "requested_stream_name": target.name,
            "reached": reached,
            "gap_ms": gap_ms,
            "failures": list(round_.failures),
            "skipped": list(round_.skipped),
        }
        if round_.phase == "manual":
            details["reason"] = "manual"
            details["pinned"] = reached
            kind, level = LogKind.MANUAL, "info"
            message = f"switched by hand from {origin.name} to {attempt.stream.name}"
            if not reached:
                message += f" ({target.name} did not play)"
        elif reached:
            self.upgrades += 1
            details["reason"] = "recovery"
            kind, level = LogKind.UPGRADE, "info"
            message = (
                f"upgraded from {origin.name} ({origin.account_name}) to {target.name} "
                f"({target.account_name}) by swapping the account's connection, gap {gap_ms} ms"
            )
        else:
            first = round_.failures[0]["reason"] if round_.failures else "unknown"
            details["reason"] = first
            details["retry_in_s"] = self.config.recovery_period
            kind, level = LogKind.UPGRADE_FAILED, "info"
            message = (
                f"swap to {target.name} ({target.account_name}) failed ({first}); "
                f"back on {attempt.stream.name}"
            )
        out.append(LogEvent(level, kind, f"{self._label()}{message}", details))

    def _manual_switch(self, index: int | None, now: float, out: list[Command]) -> None:
        playing = self._playing
        if playing is None:
            return  # ENDED-like: nothing plays (the table keeps this out of CONNECTING)
        if index is None:
            if len(self.streams) < 2:
                raise FailoverProtocolError("the channel has no other stream to switch to")
            index = (playing.index + 1) % len(self.streams)
        if not 0 <= index < len(self.streams):
            raise FailoverProtocolError(f"no stream {index} behind this channel")
        if index == playing.index:
            if self._probe is not None:
                self._close(self._probe, None, now, out)
                self._probe = None
                self._state = SessionState.PLAYING
            self._pinned = index
            self._recovery_due = None
            return
        self._begin_user_round("manual", index, now, out)

    def _unpin(self, now: float) -> None:
        self._pinned = None
        playing = self._playing
        if (
            self._state is SessionState.PLAYING
            and playing is not None
            and playing.index > 0
            and self._recovery_due is None
        ):
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
                    "from_stream": current.stream.ref,
                    "from_stream_name": current.stream.name,
                    "from_stream_id": current.stream.stream_id,
                    "from_account": current.stream.account_name,
                    "to_stream": probe.stream.ref,
                    "to_stream_name": probe.stream.name,
                    "to_stream_id": probe.stream.stream_id,
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
        out.append(SwitchTo(probe.attempt_id, SwitchMode.MAKE_BEFORE_BREAK))
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
                    "from_stream": old.stream.ref,
                    "from_stream_name": old.stream.name,
                    "from_stream_id": old.stream.stream_id,
                    "from_account": old.stream.account_name,
                    "to_stream": probe.stream.ref,
                    "to_stream_name": probe.stream.name,
                    "to_stream_id": probe.stream.stream_id,
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
        if failure is not None and counts_against_stream(failure) and attempt.judged:
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
            "stream": stream.ref,
            "stream_name": stream.name,
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
            # A deadline that passed while other events were handled is due now.
            out.append(RequestWakeup(max(deadline, self._now)))
        self._last_wakeup = deadline

    def _index_of(self, xtream_channel_id: int) -> int:
        for index, stream in enumerate(self.streams):
            if stream.xtream_channel_id == xtream_channel_id:
                return index
        raise LookupError(xtream_channel_id)

    def _label(self) -> str:
        return f"{self.channel}: " if self.channel else ""

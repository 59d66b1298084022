"""The asyncio driver of one channel session.

A :class:`ChannelSession` carries out what its
:class:`~streamforge.streaming.policy.FailoverPolicy` decides, and nothing
more: it opens and closes upstreams (one task each, reading through
:class:`~streamforge.streaming.upstream.UpstreamReader`), feeds their bytes
through the :class:`~streamforge.ts.splicer.TsSplicer` into the
:class:`~streamforge.streaming.fanout.FanoutBuffer` its clients read from,
records the policy's log events, and delivers the policy's wakeups.

Everything happens on the event loop thread without awaiting in between, so
the policy sees events strictly in order and no lock is needed: upstream
tasks call :meth:`ChannelSession._feed` directly.

Switching, as each :class:`~streamforge.streaming.protocol.SwitchTo` says
(its :class:`~streamforge.streaming.protocol.SwitchMode`):

- break-before-make: the first attempt to deliver valid TS (tune) simply
  starts forwarding; after a failure the splicer is told :meth:`switch` and
  the new attempt's bytes resume the output at its first keyframe;
- make-before-break: an attempt opened as an upgrade probe is fed to the
  splicer as a candidate while the old stream keeps playing; at the switch
  the splicer cuts over at the candidate's keyframe (at once if it already
  has one).

Seams for tests: the upstreams are run by an :data:`UpstreamRunner` (by
default :func:`reader_runner`: an
:class:`~streamforge.streaming.upstream.UpstreamReader` over the shared HTTP
client), and time comes from a :class:`Clock` (by default the event loop).

The client-visible gap of each switch — from the failure to the next byte
published — is measured here and kept in the session's stats and metrics.

**Media judgement** (with a :class:`~streamforge.streaming.health.judge.JudgeConfig`):
every attempt gets an :class:`~streamforge.streaming.health.judge.AttemptJudge`
fed with its bytes. One health timer per session asks the judges when they
say (:meth:`~streamforge.streaming.health.judge.AttemptJudge.next_check`: at
the latest every half second, exactly when the media clock would cross the
live lag limit): a judgement fails the attempt like a reader failure
(``behind_live``, ``black_picture`` …, or ``stall`` for a stream without
timestamps), so the policy fails over seamlessly. An upgrade probe that has
shown ``probe_healthy_seconds`` of healthy media is reported
:class:`~streamforge.streaming.protocol.MediaHealthy`; one showing a black,
unchanged or silent sample by then is failed with that reason. Decoding runs
on the executor the manager owns, never on the loop.

**The viewer's gap.** A ``failover`` or ``upgrade`` event is written to the
event log when the first byte after the switch is published, with
``viewer_gap_ms`` (from the last byte clients got before the failure to that
first byte after) and ``detect_ms`` (from that last byte to the failure being
detected) in its details; the judged duration of a media failure is its
``measured_s``.

Connections: before an attempt connects, it awaits its turn on the shared
:class:`~streamforge.streaming.slots.AccountSlots` with the lease of its
``OpenUpstream`` (at most :data:`CONNECT_WAIT_SECONDS`: fewer than the
account's ``max_connections`` sockets may be open), and the session reports
the socket closed at the failure of the upstream (the reader has left its
response, so the socket's close is already queued ahead of any new
connection's first step) or when the cancelled upstream task has finished.
Until then a released lease's socket is *draining* and still counts, so a new
connection never overlaps the previous one at the provider — a failover or a
tune to the same account simply starts once the old socket is gone.

Outage hold (:class:`~streamforge.streaming.protocol.HoldSlate`): the session
stops forwarding and plays the slate (:mod:`streamforge.streaming.slate`) as a
synthetic upstream through the splicer, on the session's PIDs with continuous
timestamps, until the next ``SwitchTo`` cuts back to a real attempt
(break-before-make: its first keyframe resumes the output) or the session ends.

Manual control: :meth:`ChannelSession.request_switch` and
:meth:`ChannelSession.request_unpin` feed the user's
:class:`~streamforge.streaming.protocol.ManualSwitch` and
:class:`~streamforge.streaming.protocol.Unpin` to the policy; a policy that
does not take them (or refuses the stream) answers :class:`SwitchRejected`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from streamforge.errors import CredentialError, StreamingError
from streamforge.events import EventLog
from streamforge.streaming.breaker import CircuitBreakers
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.fanout import FanoutBuffer, FanoutReader
from streamforge.streaming.health.judge import (
    AttemptJudge,
    ChannelJudgement,
    JudgeConfig,
    Judgement,
)
from streamforge.streaming.metrics import StreamMetrics
from streamforge.streaming.policy import FailoverPolicy
from streamforge.streaming.protocol import (
    ClientsGone,
    CloseUpstream,
    Command,
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
)
from streamforge.streaming.reasons import FailureReason, UpstreamFailure
from streamforge.streaming.relay import is_relay
from streamforge.streaming.slate import SLATE_STREAM
from streamforge.streaming.slots import AccountSlots, SlotLease
from streamforge.streaming.upstream import UpstreamConfig, UpstreamReader
from streamforge.tasks import TaskOwner
from streamforge.ts.splicer import SpliceError, TsSplicer

log = logging.getLogger(__name__)

#: (url, user agent) for a stream. The URL holds credentials: never log it.
UrlFor = Callable[[ProviderStream], tuple[str, str | None]]

#: Runs one upstream of a stream until it fails: calls ``on_open`` once its
#: headers are acceptable, ``on_data`` with each chunk of valid MPEG-TS, and
#: ends by raising :class:`~streamforge.streaming.reasons.UpstreamFailure`
#: (or :class:`~streamforge.ts.splicer.SpliceError` from ``on_data``), unless
#: the session cancels it first.
UpstreamRunner = Callable[
    [ProviderStream, Callable[[], None], Callable[[bytes], None]], Awaitable[None]
]


class SwitchRejected(StreamingError):
    """A manual switch or unpin the session (its policy) cannot carry out now."""


class StreamNotFound(StreamingError):
    """A stream reference names none of the channel's streams."""


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The session's time: monotonic seconds and timers on the same scale."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class _LoopClock:
    """The running event loop as a :class:`Clock`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def time(self) -> float:
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self._loop.call_at(when, callback)


def reader_runner(
    http: aiohttp.ClientSession, url_for: UrlFor, config: UpstreamConfig
) -> UpstreamRunner:
    """The real upstreams: an :class:`UpstreamReader` per attempt, over ``http``."""

    async def run(
        stream: ProviderStream, on_open: Callable[[], None], on_data: Callable[[bytes], None]
    ) -> None:
        try:
            url, user_agent = url_for(stream)
        except CredentialError as exc:
            raise UpstreamFailure(FailureReason.CREDENTIAL_ERROR, str(exc)) from None
        reader = UpstreamReader(http, url, config, user_agent=user_agent)
        await reader.run(on_open, on_data)

    return run


#: How long an attempt waits for the account's previous connection to close.
CONNECT_WAIT_SECONDS = 2.0

_PRE_SWITCH_LIMIT = 4 * 1024 * 1024  # bytes kept from an attempt before it is switched to


@dataclass(frozen=True)
class ChannelRef:
    id: int
    guide_number: str
    name: str


@dataclass
class _Attempt:
    attempt_id: int
    stream: ProviderStream
    purpose: Purpose
    lease: SlotLease | None = None
    task: asyncio.Task[None] | None = None
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    bytes_read: int = 0
    judge: AttemptJudge | None = None
    healthy_sent: bool = False


class ChannelSession:
    """One guide channel being watched: one upstream at a time, many clients."""

    def __init__(
        self,
        channel: ChannelRef,
        streams: tuple[ProviderStream, ...],
        *,
        http: aiohttp.ClientSession | None = None,
        url_for: UrlFor | None = None,
        upstream_config: UpstreamConfig | None = None,
        policy_config: PolicyConfig,
        slots: AccountSlots,
        breakers: CircuitBreakers,
        events: EventLog,
        metrics: StreamMetrics,
        buffer_bytes: int,
        linger: float = 0.0,
        on_end: Callable[[ChannelSession], None] | None = None,
        key: object = None,
        run_upstream: UpstreamRunner | None = None,
        clock: Clock | None = None,
        judge: JudgeConfig | None = None,
        judgement: ChannelJudgement | None = None,
        executor: Executor | None = None,
        run_slate: UpstreamRunner | None = None,
    ) -> None:
        """Upstreams are read with ``http`` and ``url_for`` (and ``upstream_config``)
        unless ``run_upstream`` runs them; ``clock`` defaults to the running loop.

        ``judge`` switches the media judgement on (see the module doc), with the
        channel's ``judgement``; content decoding runs on ``executor``;
        ``run_slate`` plays the outage slate (without it a hold shows nothing)."""
        self.channel = channel
        self.key = key
        if run_upstream is None:
            if http is None or url_for is None:
                raise TypeError("ChannelSession needs http and url_for, or run_upstream")
            run_upstream = reader_runner(http, url_for, upstream_config or UpstreamConfig())
        self._run = run_upstream
        self._slots = slots
        self._run_slate = run_slate
        self._slate_task: asyncio.Task[None] | None = None
        self.holding = False
        self._client_addresses: dict[FanoutReader, str | None] = {}
        self._events = events
        self._metrics = metrics
        self._linger = linger
        self._on_end = on_end
        self._clock: Clock = clock if clock is not None else _LoopClock(asyncio.get_running_loop())
        self.policy = FailoverPolicy(
            streams,
            slots=slots,
            breakers=breakers,
            config=policy_config,
            channel=f"{channel.guide_number} {channel.name}",
            holder=self,
        )
        self.splicer = TsSplicer()
        self.fanout = FanoutBuffer(buffer_bytes, join_backlog_bytes=188 * 700)
        self._tasks = TaskOwner(f"session:{channel.guide_number}")
        self._attempts: dict[int, _Attempt] = {}
        self._forwarding: int | None = None
        self._commit_pending = False
        self._spliced_once = False
        self._wakeup: Timer | None = None
        self._linger_handle: Timer | None = None
        self._readers: set[FanoutReader] = set()
        self._failed_at: float | None = None
        self.started_at = self._clock.time()
        self.first_data = asyncio.Event()
        self.ended = asyncio.Event()
        self.last_gap_ms: float | None = None
        self.last_viewer_gap_ms: float | None = None
        self.timeline: list[dict[str, Any]] = []
        self._judge = judge
        self.judgement = judgement or ChannelJudgement()
        self._executor = executor
        self._health_timer: Timer | None = None
        self._health_at: float | None = None
        self._last_publish: float | None = None
        self._gap_from: float | None = None
        self._detected_at: float | None = None
        self._held_logs: list[tuple[LogEvent, dict[str, Any]]] = []
        self._judged: Judgement | None = None

    # -- lifecycle --------------------------------------------------------
    def start(self) -> None:
        self._metrics.sessions.inc()
        self._feed(Start(self._now()))

    def _now(self) -> float:
        return self._clock.time()

    def join(self, client: str | None = None) -> FanoutReader:
        """A new client (``client`` is its address, for the tune handover)."""
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        reader = self.fanout.reader()
        self._readers.add(reader)
        self._client_addresses[reader] = client
        self._metrics.clients.inc()
        return reader

    def leave(self, reader: FanoutReader) -> None:
        if reader not in self._readers:
            return
        self._readers.discard(reader)
        self._client_addresses.pop(reader, None)
        self._metrics.clients.dec()
        if self._readers or self.ended.is_set():
            return
        if self._linger > 0:
            self._linger_handle = self._clock.call_at(
                self._clock.time() + self._linger, self._linger_over
            )
        else:
            self._feed(ClientsGone(self._now()))

    def _linger_over(self) -> None:
        self._linger_handle = None
        if not self._readers and not self.ended.is_set():
            self._feed(ClientsGone(self._now()))

    async def close(self) -> None:
        """Stop at once (server shutdown)."""
        if not self.ended.is_set():
            self._feed(ClientsGone(self._now()))
        await self._tasks.close()

    @property
    def clients(self) -> int:
        return len(self._readers)

    # -- the policy loop ----------------------------------------------------
    def _feed(self, event: Event) -> None:
        for command in self.policy.handle(event):
            self._execute(command)

    def _execute(self, command: Command) -> None:
        if isinstance(command, OpenUpstream):
            self._open(command)
        elif isinstance(command, CloseUpstream):
            self._close(command.attempt_id)
        elif isinstance(command, SwitchTo):
            self._switch(command.attempt_id, command.mode)
        elif isinstance(command, LogEvent):
            self._log(command)
        elif isinstance(command, RequestWakeup):
            self._schedule(command.at)
        elif isinstance(command, EndSession):
            self._end(str(command.reason))
        elif isinstance(command, HoldSlate):
            self._hold(command)

    def _schedule(self, at: float) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wakeup = self._clock.call_at(at, self._tick)

    def _tick(self) -> None:
        self._wakeup = None
        if not self.ended.is_set():
            self._feed(Tick(self._now()))

    # -- upstreams ------------------------------------------------------------
    def _open(self, command: OpenUpstream) -> None:
        attempt = _Attempt(command.attempt_id, command.stream, command.purpose, command.lease)
        if self._judge is not None:
            attempt.judge = AttemptJudge(
                self._judge, self.judgement, executor=self._executor, now=self._now()
            )
        self._attempts[command.attempt_id] = attempt
        if command.purpose is Purpose.PROBE:
            self.splicer.prepare()
        attempt.task = self._tasks.spawn(
            self._run_upstream(attempt), name=f"upstream:{command.attempt_id}"
        )
        attempt.task.add_done_callback(lambda _task: self._connection_closed(attempt))
        self.timeline.append(
            {
                "t": self._now() - self.started_at,
                "kind": "open",
                "purpose": str(command.purpose),
                "ref": command.stream.ref,
                "stream": command.stream.name,
                "account": command.stream.account_name,
            }
        )

    async def _run_upstream(self, attempt: _Attempt) -> None:
        aid = attempt.attempt_id
        try:
            await self._connect_turn(attempt)
            if not await self._confirm_lease(attempt):
                self._connection_closed(attempt)
                if aid in self._attempts:
                    self._failed(
                        aid,
                        FailureReason.ACCOUNT_LIMIT,
                        "no connection of the account is free across the cluster",
                        None,
                    )
                return
            await self._run(
                attempt.stream,
                lambda: self._feed(UpstreamOpened(aid, self._now())),
                lambda chunk: self._on_data(aid, chunk),
            )
        except UpstreamFailure as failure:
            self._connection_closed(attempt)
            if aid in self._attempts:
                self._failed(aid, failure.reason, failure.detail, failure.status)
        except SpliceError as exc:
            self._connection_closed(attempt)
            if aid in self._attempts:
                self._failed(aid, FailureReason.INVALID_CONTENT, str(exc), None)
        except (aiohttp.ClientError, OSError) as exc:
            self._connection_closed(attempt)
            if aid in self._attempts:
                self._failed(aid, FailureReason.READ_ERROR, type(exc).__name__, None)

    async def _connect_turn(self, attempt: _Attempt) -> None:
        """Wait (bounded) until the account's previous connection has closed."""
        if attempt.lease is None:
            return
        try:
            async with asyncio.timeout(CONNECT_WAIT_SECONDS):
                await self._slots.connect(attempt.lease, attempt.stream.max_connections)
        except TimeoutError:
            raise UpstreamFailure(
                FailureReason.ACCOUNT_LIMIT,
                f"the account's previous connection did not close in {CONNECT_WAIT_SECONDS:g} s",
            ) from None

    def _connection_closed(self, attempt: _Attempt) -> None:
        """The attempt's provider connection is closed: free its draining slot."""
        if attempt.lease is not None:
            self._slots.closed(attempt.lease)

    async def _confirm_lease(self, attempt: _Attempt) -> bool:
        """Confirm the attempt's account slot (cluster-wide in a cluster) once its
        socket's local turn has come, before it connects; refused, the attempt
        fails with ``ACCOUNT_LIMIT``. A relay from another node uses no provider
        connection of this node and needs none."""
        lease = attempt.lease
        if lease is None or is_relay(attempt.stream):
            return True
        return await self._slots.confirm(lease, attempt.stream.max_connections)

    def lease_lost(self, lease: SlotLease) -> None:
        """The cluster took ``lease`` away (over the limit after a coordination
        outage): the attempt holding it fails with ``ACCOUNT_LIMIT``."""
        for aid, attempt in list(self._attempts.items()):
            if attempt.lease == lease:
                self._failed(
                    aid,
                    FailureReason.ACCOUNT_LIMIT,
                    "the account's connection lease was lost to another node",
                    None,
                )

    def _failed(self, aid: int, reason: FailureReason, detail: str, status: int | None) -> None:
        if aid == self._forwarding:
            self._failed_at = self._now()
            self._gap_from = self._last_publish
            self._detected_at = self._failed_at
        self._feed(UpstreamFailed(aid, reason, detail, self._now(), status))

    # -- media judgement -------------------------------------------------------
    def _arm_health(self) -> None:
        """(Re)arm the health timer for the earliest check any judge asks for."""
        if self.ended.is_set():
            return
        now = self._now()
        due = [a.judge.next_check(now) for a in self._attempts.values() if a.judge is not None]
        if not due:
            return
        at = min(due)
        if self._health_timer is not None:
            if self._health_at is not None and self._health_at <= at:
                return
            self._health_timer.cancel()
        self._health_at = at
        self._health_timer = self._clock.call_at(at, self._health_check)

    def _health_check(self) -> None:
        self._health_timer = None
        self._health_at = None
        if self.ended.is_set():
            return
        now = self._now()
        for aid, attempt in list(self._attempts.items()):
            judge = attempt.judge
            if judge is None or self._attempts.get(aid) is not attempt:
                continue
            dropped = judge.dropped_since_last()
            if dropped:
                self._metrics.samples_dropped.inc(dropped)
            judged = judge.check(now)
            if judged is None and attempt.purpose is Purpose.PROBE and aid != self._forwarding:
                judged = self._judge_probe(attempt, judge, now)
            if judged is not None:
                self._judged = judged
                self._metrics.health_failures.labels(reason=str(judged.reason)).inc()
                self._failed(aid, judged.reason, judged.detail, None)
            if self.ended.is_set():
                return
        self._arm_health()

    def _judge_probe(self, attempt: _Attempt, judge: AttemptJudge, now: float) -> Judgement | None:
        """A probe is failed for a suspect sample, or reported healthy, once it has enough media."""
        if attempt.healthy_sent or self._judge is None or self._judge.healthy_seconds <= 0:
            return None
        if judge.media_seconds() < self._judge.healthy_seconds:
            return None
        suspect = judge.suspect()
        if suspect is not None:
            return suspect
        if judge.healthy(now):
            attempt.healthy_sent = True
            self._feed(MediaHealthy(attempt.attempt_id, now))
        return None

    def _on_data(self, aid: int, chunk: bytes) -> None:
        attempt = self._attempts.get(aid)
        if attempt is None or self.ended.is_set():
            return
        attempt.bytes_read += len(chunk)
        self._metrics.upstream_bytes.inc(len(chunk))
        if attempt.judge is not None:
            attempt.judge.feed(chunk, self._now())
            if self._health_timer is None:
                self._arm_health()
        if aid == self._forwarding:
            if self._commit_pending:
                self.splicer.push_candidate(chunk)
                if self.splicer.candidate_ready:
                    self._commit_pending = False
                    self._stop_slate()
                    self._publish(self.splicer.commit())
            else:
                self._publish(self.splicer.push(chunk))
        elif attempt.purpose is Purpose.PROBE:
            self.splicer.push_candidate(chunk)
        else:
            attempt.pending.append(chunk)
            attempt.pending_bytes += len(chunk)
            while attempt.pending_bytes > _PRE_SWITCH_LIMIT and len(attempt.pending) > 1:
                attempt.pending_bytes -= len(attempt.pending.pop(0))
        if aid in self._attempts and not self.ended.is_set():
            self._feed(UpstreamData(aid, len(chunk), self._now()))

    def _publish(self, data: bytes) -> None:
        if not data:
            return
        now = self._now()
        if self._failed_at is not None:
            gap = (now - self._failed_at) * 1000
            self.last_gap_ms = round(gap, 1)
            self._metrics.output_gap.observe(gap / 1000)
            self._failed_at = None
        if self._held_logs:
            self._release_logs(now)
        self._last_publish = now
        if not self.first_data.is_set():
            self.first_data.set()
        self.fanout.publish(data)
        self._metrics.delivered_bytes.inc(len(data) * max(len(self._readers), 1))

    def _switch(self, aid: int, mode: SwitchMode) -> None:
        attempt = self._attempts.get(aid)
        if attempt is None:
            return
        previous = self._forwarding
        if mode is SwitchMode.BREAK_BEFORE_MAKE or self.splicer.candidate_ready:
            self._stop_slate()
        self._forwarding = aid
        self.timeline.append(
            {
                "t": self._now() - self.started_at,
                "kind": "switch",
                "ref": attempt.stream.ref,
                "stream": attempt.stream.name,
                "account": attempt.stream.account_name,
                "purpose": str(attempt.purpose),
            }
        )
        if self._gap_from is None:
            self._gap_from = self._last_publish
        if mode is SwitchMode.MAKE_BEFORE_BREAK:
            if self._failed_at is None and previous is not None:
                self._failed_at = self._now()
            if self.splicer.candidate_ready:
                self._publish(self.splicer.commit())
            else:
                self._commit_pending = True
            return
        if self._spliced_once:
            self.splicer.switch()
        self._spliced_once = True
        pending, attempt.pending, attempt.pending_bytes = attempt.pending, [], 0
        try:
            for chunk in pending:
                self._publish(self.splicer.push(chunk))
        except SpliceError as exc:
            self._failed(aid, FailureReason.INVALID_CONTENT, str(exc), None)

    def _close(self, aid: int) -> None:
        attempt = self._attempts.pop(aid, None)
        if attempt is None:
            return
        if attempt.task is not None and not attempt.task.done():
            attempt.task.cancel()
        if attempt.judge is not None:
            attempt.judge.close()
        if aid == self._forwarding:
            self._forwarding = None
            if self._commit_pending:
                self._commit_pending = False
                self.splicer.cancel()
        elif attempt.purpose is Purpose.PROBE and self._forwarding != aid:
            self.splicer.cancel()

    # -- events and the end ------------------------------------------------------
    def _log(self, command: LogEvent) -> None:
        details = {
            **command.details,
            "kind": str(command.kind),
            "channel_id": self.channel.id,
            "guide_number": self.channel.guide_number,
            "channel_name": self.channel.name,
        }
        judged = self._judged
        if (
            judged is not None
            and command.kind in {LogKind.FAILOVER, LogKind.UPGRADE_FAILED, LogKind.EXHAUSTED}
            and details.get("reason") == str(judged.reason)
        ):
            details["measured_s"] = judged.seconds
            self._judged = None
        if command.kind is LogKind.FAILOVER:
            self._metrics.failovers.labels(reason=str(details.get("reason"))).inc()
            gap = details.get("gap_ms")
            if isinstance(gap, int | float):
                self._metrics.failover_gap.observe(gap / 1000)
        elif command.kind is LogKind.UPGRADE:
            self._metrics.upgrades.inc()
        self.timeline.append(
            {
                "t": self._now() - self.started_at,
                "kind": str(command.kind),
                "reason": details.get("reason"),
                "to": details.get("to_stream_name"),
                "to_ref": details.get("to_stream"),
                "detail": details.get("detail"),
                "measured_s": details.get("measured_s"),
                "from": details.get("from_stream"),
                "gap_ms": details.get("gap_ms"),
            }
        )
        if command.kind in {LogKind.FAILOVER, LogKind.UPGRADE}:
            # Written when the first byte after the switch reaches the clients.
            self._held_logs.append((command, details))
            return
        self._events.record(
            command.level, "stream", command.message, details, channel_id=self.channel.id
        )

    def _release_logs(self, now: float | None) -> None:
        """Write the held switch events, with the viewer's gap when it is known."""
        held, self._held_logs = self._held_logs, []
        gap_from, detected = self._gap_from, self._detected_at
        self._gap_from = self._detected_at = None
        for command, details in held:
            viewer_gap = None
            if now is not None and gap_from is not None:
                viewer_gap = round((now - gap_from) * 1000, 1)
                self.last_viewer_gap_ms = viewer_gap
                self._metrics.viewer_gap.observe(viewer_gap / 1000)
            details["viewer_gap_ms"] = viewer_gap
            if detected is not None and gap_from is not None:
                details["detect_ms"] = round((detected - gap_from) * 1000, 1)
            message = command.message
            if viewer_gap is not None:
                message = f"{message}, viewer gap {round(viewer_gap)} ms"
            self._events.record(
                command.level, "stream", message, details, channel_id=self.channel.id
            )

    def _end(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self._stop_slate()
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        if self._health_timer is not None:
            self._health_timer.cancel()
            self._health_timer = None
        if self._held_logs:
            self._release_logs(None)
        for aid in list(self._attempts):
            self._close(aid)
        self.fanout.close()
        self.ended.set()
        self._metrics.sessions.dec()
        self.timeline.append({"t": self._now() - self.started_at, "kind": "end", "reason": reason})
        if self._on_end is not None:
            self._on_end(self)

    # -- for the API ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        playing = self.policy.playing
        policy_status = self.policy.status()
        uptime = self._now() - self.started_at
        published = self.fanout.published_bytes
        return {
            "channel_id": self.channel.id,
            "guide_number": self.channel.guide_number,
            "channel": self.channel.name,
            "state": self.policy.state.value,
            "stream": playing.name if playing else None,
            "stream_ref": playing.ref if playing else None,
            "account": playing.account_name if playing else None,
            "quality": playing.quality.label if playing else None,
            "clients": self.clients,
            "bytes": published,
            "bitrate_kbps": round(published * 8 / uptime / 1000, 1) if uptime > 0 else 0.0,
            "failovers": self.policy.failovers,
            "upgrades": self.policy.upgrades,
            "holding": self.holding,
            "pinned": policy_status.get("pinned"),
            "upgrade_waiting": policy_status.get("upgrade_waiting"),
            "uptime_s": round(uptime, 1),
            "last_gap_ms": self.last_gap_ms,
            "last_viewer_gap_ms": self.last_viewer_gap_ms,
            "health": self._health_status(),
            "streams": [s.describe() for s in self.policy.streams],
            "timeline": self.timeline[-200:],
        }

    def _health_status(self) -> dict[str, Any] | None:
        """The forwarded attempt's media clock and content samples, for the API."""
        attempt = self._attempts.get(self._forwarding) if self._forwarding is not None else None
        if attempt is None or attempt.judge is None:
            return None
        judge = attempt.judge
        now = self._now()
        out: dict[str, Any] = {
            "lag_s": round(judge.lag(now), 3) if judge.has_clock else None,
            "clock": judge.clock.source or judge.audio_clock.source,
            "judgement": self.judgement.as_dict(),
        }
        sampler = judge.sampler
        if sampler is not None:
            stats = sampler.stats
            out |= {
                "pictures_decoded": stats.pictures_decoded,
                "levels_decoded": stats.levels_decoded,
                "samples_dropped": stats.samples_dropped,
                "suspects": sorted(str(r) for r in sampler.suspects()),
            }
        return out

    @property
    def is_playing(self) -> bool:
        return self.policy.state in {SessionState.PLAYING, SessionState.PROBING}

    # -- the tune handover -----------------------------------------------------
    @property
    def client_addresses(self) -> frozenset[str | None]:
        """The addresses of the clients reading now."""
        return frozenset(self._client_addresses.values())

    def handover(self, to_channel: str) -> None:
        """End now: the connection is handed to the same client's tune of ``to_channel``."""
        if self.ended.is_set():
            return
        self._events.record(
            "info",
            "stream",
            f"{self.channel.guide_number} {self.channel.name}: connection handed over to "
            f"channel {to_channel} (the same client tuned it)",
            {
                "kind": "handover",
                "channel_id": self.channel.id,
                "guide_number": self.channel.guide_number,
                "channel_name": self.channel.name,
                "to_channel": to_channel,
            },
            channel_id=self.channel.id,
        )
        self.timeline.append({"t": self._now() - self.started_at, "kind": "handover"})
        self._feed(ClientsGone(self._now()))

    # -- manual control ----------------------------------------------------------
    def stream_index(self, ref: str) -> int:
        """The index of the stream named by ``ref``: ``account/stream_id`` or a bare id."""
        streams = self.policy.streams
        exact = [i for i, s in enumerate(streams) if s.ref == ref]
        if exact:
            return exact[0]
        bare = [i for i, s in enumerate(streams) if str(s.stream_id) == ref]
        if len(bare) == 1:
            return bare[0]
        known = ", ".join(s.ref for s in streams)
        if bare:
            raise StreamNotFound(f"stream {ref!r} is ambiguous here; use one of {known}")
        raise StreamNotFound(f"channel {self.channel.guide_number} has no stream {ref!r} ({known})")

    def request_switch(self, stream: str | None) -> None:
        """Switch to the stream ``stream`` names (pinned), or to the next one when None."""
        index = self.stream_index(stream) if stream is not None else None
        self._control(ManualSwitch(self._now(), stream_index=index))

    def request_unpin(self) -> None:
        """Let recovery upgrade away from a pinned stream again."""
        self._control(Unpin(self._now()))

    def _control(self, event: ManualSwitch | Unpin) -> None:
        if self.ended.is_set():
            raise SwitchRejected(f"channel {self.channel.guide_number}'s session has ended")
        try:
            self._feed(event)
        except FailoverProtocolError as exc:
            raise SwitchRejected(f"the failover policy refused it: {exc}") from None

    # -- the outage hold -----------------------------------------------------------
    def _hold(self, command: HoldSlate) -> None:
        if self.holding or self.ended.is_set():
            return
        self.holding = True
        if self._forwarding is not None:
            self._forwarding = None
            if self._commit_pending:
                self._commit_pending = False
                self.splicer.cancel()
        if self._failed_at is None:
            self._failed_at = self._now()
        if self._spliced_once:
            self.splicer.switch()
        self._spliced_once = True
        self.timeline.append(
            {"t": self._now() - self.started_at, "kind": "hold", "reason": command.reason}
        )
        if self._run_slate is not None:
            self._slate_task = self._tasks.spawn(self._play_slate(self._run_slate), name="slate")

    async def _play_slate(self, run: UpstreamRunner) -> None:
        try:
            await run(SLATE_STREAM, lambda: None, self._on_slate_data)
        except SpliceError as exc:
            # The output pauses until a stream delivers again; the hold goes on.
            log.warning("channel %s: the outage slate cannot be spliced: %s", self.channel, exc)

    def _on_slate_data(self, chunk: bytes) -> None:
        if self.holding and not self.ended.is_set():
            self._publish(self.splicer.push(chunk))

    def _stop_slate(self) -> None:
        if not self.holding:
            return
        self.holding = False
        task, self._slate_task = self._slate_task, None
        if task is not None and not task.done():
            task.cancel()

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

Switching:

- the first attempt to deliver valid TS (tune) simply starts forwarding;
- after a failure (break-before-make) the splicer is told :meth:`switch`
  and the new attempt's bytes resume the output at its first keyframe;
- an upgrade probe (make-before-break) is fed to the splicer as a candidate
  while the old stream keeps playing; at :class:`SwitchTo` the splicer cuts
  over at the candidate's keyframe (at once if it already has one).

The client-visible gap of each switch — from the failure to the next byte
published — is measured here and kept in the session's stats and metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from streamforge.errors import CredentialError
from streamforge.events import EventLog
from streamforge.streaming.breaker import CircuitBreakers
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.fanout import FanoutBuffer, FanoutReader
from streamforge.streaming.metrics import StreamMetrics
from streamforge.streaming.policy import (
    ClientsGone,
    CloseUpstream,
    Command,
    EndSession,
    Event,
    FailoverPolicy,
    LogEvent,
    LogKind,
    OpenUpstream,
    PolicyConfig,
    Purpose,
    RequestWakeup,
    SessionState,
    Start,
    SwitchTo,
    Tick,
    UpstreamData,
    UpstreamFailed,
    UpstreamOpened,
)
from streamforge.streaming.reasons import FailureReason, UpstreamFailure
from streamforge.streaming.slots import AccountSlots
from streamforge.streaming.upstream import UpstreamConfig, UpstreamReader
from streamforge.tasks import TaskOwner
from streamforge.ts.splicer import SpliceError, TsSplicer

log = logging.getLogger(__name__)

#: (url, user agent) for a stream. The URL holds credentials: never log it.
UrlFor = Callable[[ProviderStream], tuple[str, str | None]]

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
    task: asyncio.Task[None] | None = None
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    bytes_read: int = 0


class ChannelSession:
    """One guide channel being watched: one upstream at a time, many clients."""

    def __init__(
        self,
        channel: ChannelRef,
        streams: tuple[ProviderStream, ...],
        *,
        http: aiohttp.ClientSession,
        url_for: UrlFor,
        upstream_config: UpstreamConfig,
        policy_config: PolicyConfig,
        slots: AccountSlots,
        breakers: CircuitBreakers,
        events: EventLog,
        metrics: StreamMetrics,
        buffer_bytes: int,
        linger: float = 0.0,
        on_end: Callable[[ChannelSession], None] | None = None,
        key: object = None,
    ) -> None:
        self.channel = channel
        self.key = key
        self._http = http
        self._url_for = url_for
        self._upstream_config = upstream_config
        self._events = events
        self._metrics = metrics
        self._linger = linger
        self._on_end = on_end
        self._loop = asyncio.get_running_loop()
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
        self._wakeup: asyncio.TimerHandle | None = None
        self._linger_handle: asyncio.TimerHandle | None = None
        self._readers: set[FanoutReader] = set()
        self._failed_at: float | None = None
        self.started_at = self._loop.time()
        self.first_data = asyncio.Event()
        self.ended = asyncio.Event()
        self.last_gap_ms: float | None = None
        self.timeline: list[dict[str, Any]] = []

    # -- lifecycle --------------------------------------------------------
    def start(self) -> None:
        self._metrics.sessions.inc()
        self._feed(Start(self._now()))

    def _now(self) -> float:
        return self._loop.time()

    def join(self) -> FanoutReader:
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        reader = self.fanout.reader()
        self._readers.add(reader)
        self._metrics.clients.inc()
        return reader

    def leave(self, reader: FanoutReader) -> None:
        if reader not in self._readers:
            return
        self._readers.discard(reader)
        self._metrics.clients.dec()
        if self._readers or self.ended.is_set():
            return
        if self._linger > 0:
            self._linger_handle = self._loop.call_later(self._linger, self._linger_over)
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
            self._switch(command.attempt_id)
        elif isinstance(command, LogEvent):
            self._log(command)
        elif isinstance(command, RequestWakeup):
            self._schedule(command.at)
        elif isinstance(command, EndSession):
            self._end(str(command.reason))

    def _schedule(self, at: float) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wakeup = self._loop.call_at(at, self._tick)

    def _tick(self) -> None:
        self._wakeup = None
        if not self.ended.is_set():
            self._feed(Tick(self._now()))

    # -- upstreams ------------------------------------------------------------
    def _open(self, command: OpenUpstream) -> None:
        attempt = _Attempt(command.attempt_id, command.stream, command.purpose)
        self._attempts[command.attempt_id] = attempt
        if command.purpose is Purpose.PROBE:
            self.splicer.prepare()
        attempt.task = self._tasks.spawn(
            self._run_upstream(attempt), name=f"upstream:{command.attempt_id}"
        )
        self.timeline.append(
            {
                "t": self._now() - self.started_at,
                "kind": "open",
                "purpose": str(command.purpose),
                "stream": command.stream.name,
                "account": command.stream.account_name,
            }
        )

    async def _run_upstream(self, attempt: _Attempt) -> None:
        aid = attempt.attempt_id
        try:
            url, user_agent = self._url_for(attempt.stream)
        except CredentialError as exc:
            self._failed(aid, FailureReason.CREDENTIAL_ERROR, str(exc), None)
            return
        reader = UpstreamReader(self._http, url, self._upstream_config, user_agent=user_agent)
        try:
            await reader.run(
                lambda: self._feed(UpstreamOpened(aid, self._now())),
                lambda chunk: self._on_data(aid, chunk),
            )
        except UpstreamFailure as failure:
            if aid in self._attempts:
                self._failed(aid, failure.reason, failure.detail, failure.status)
        except SpliceError as exc:
            if aid in self._attempts:
                self._failed(aid, FailureReason.INVALID_CONTENT, str(exc), None)
        except (aiohttp.ClientError, OSError) as exc:
            if aid in self._attempts:
                self._failed(aid, FailureReason.READ_ERROR, type(exc).__name__, None)

    def _failed(self, aid: int, reason: FailureReason, detail: str, status: int | None) -> None:
        if aid == self._forwarding:
            self._failed_at = self._now()
        self._feed(UpstreamFailed(aid, reason, detail, self._now(), status))

    def _on_data(self, aid: int, chunk: bytes) -> None:
        attempt = self._attempts.get(aid)
        if attempt is None or self.ended.is_set():
            return
        attempt.bytes_read += len(chunk)
        self._metrics.upstream_bytes.inc(len(chunk))
        if aid == self._forwarding:
            if self._commit_pending:
                self.splicer.push_candidate(chunk)
                if self.splicer.candidate_ready:
                    self._commit_pending = False
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
            self._feed(UpstreamData(aid, len(chunk), True, self._now()))

    def _publish(self, data: bytes) -> None:
        if not data:
            return
        if self._failed_at is not None:
            gap = (self._now() - self._failed_at) * 1000
            self.last_gap_ms = round(gap, 1)
            self._metrics.output_gap.observe(gap / 1000)
            self._failed_at = None
        if not self.first_data.is_set():
            self.first_data.set()
        self.fanout.publish(data)
        self._metrics.delivered_bytes.inc(len(data) * max(len(self._readers), 1))

    def _switch(self, aid: int) -> None:
        attempt = self._attempts.get(aid)
        if attempt is None:
            return
        previous = self._forwarding
        self._forwarding = aid
        self.timeline.append(
            {
                "t": self._now() - self.started_at,
                "kind": "switch",
                "stream": attempt.stream.name,
                "account": attempt.stream.account_name,
                "purpose": str(attempt.purpose),
            }
        )
        if attempt.purpose is Purpose.PROBE:
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
                "to": details.get("to_stream"),
            }
        )
        self._events.record(
            command.level, "stream", command.message, details, channel_id=self.channel.id
        )

    def _end(self, reason: str) -> None:
        if self.ended.is_set():
            return
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
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
        uptime = self._now() - self.started_at
        published = self.fanout.published_bytes
        return {
            "channel_id": self.channel.id,
            "guide_number": self.channel.guide_number,
            "channel": self.channel.name,
            "state": self.policy.state.value,
            "stream": playing.name if playing else None,
            "account": playing.account_name if playing else None,
            "quality": playing.quality.label if playing else None,
            "clients": self.clients,
            "bytes": published,
            "bitrate_kbps": round(published * 8 / uptime / 1000, 1) if uptime > 0 else 0.0,
            "failovers": self.policy.failovers,
            "upgrades": self.policy.upgrades,
            "uptime_s": round(uptime, 1),
            "last_gap_ms": self.last_gap_ms,
            "streams": [s.describe() for s in self.policy.streams],
            "timeline": self.timeline[-200:],
        }

    @property
    def is_playing(self) -> bool:
        return self.policy.state in {SessionState.PLAYING, SessionState.PROBING}

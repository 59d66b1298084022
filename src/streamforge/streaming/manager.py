"""All channel sessions of the process: tuning, sharing, the account slots
and circuit breakers they share, and the HTTP client they read with.

``tune()`` answers a request for ``/auto/v{GuideNumber}``: it joins the
channel's live session, or starts one and waits (bounded) for its first bytes
so that a channel that cannot play gets a quick HDHomeRun-style 503 instead
of an empty 200. Sessions are keyed by channel and quality cap; one upstream
serves every client of a key.

The manager owns what the sessions share: the account slots, the circuit
breakers, the pooled HTTP client and the **decoder workers** of the content
checks - one bounded thread pool sized to the cores, shut down with the
manager (each session keeps at most two decode jobs in flight and drops and
counts the samples beyond). Each session is judged by the settings'
thresholds (:class:`~streamforge.streaming.health.judge.JudgeConfig`) and its
channel's own :class:`~streamforge.streaming.health.judge.ChannelJudgement`
from the :class:`~streamforge.streaming.source.ChannelSource`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from streamforge.errors import CredentialError, StreamingError
from streamforge.events import EventLog
from streamforge.settings import Settings
from streamforge.streaming.breaker import BreakerConfig, BreakerState, CircuitBreakers
from streamforge.streaming.candidates import (
    ProviderStream,
    apply_quality_cap,
    parse_quality_cap,
)
from streamforge.streaming.fanout import FanoutReader
from streamforge.streaming.health.judge import JudgeConfig
from streamforge.streaming.health.verdicts import HealthConfig
from streamforge.streaming.media_clock import DEFAULT_MAX_LEAD
from streamforge.streaming.metrics import StreamMetrics
from streamforge.streaming.protocol import PolicyConfig
from streamforge.streaming.session import ChannelRef, ChannelSession
from streamforge.streaming.slots import AccountSlots
from streamforge.streaming.source import ChannelSource
from streamforge.streaming.upstream import UpstreamConfig
from streamforge.xtream.accounts import AccountService, StreamAccess

log = logging.getLogger(__name__)

#: HDHomeRun error codes sent in ``X-HDHomeRun-Error``.
ALL_TUNERS_IN_USE = "805"
TUNE_FAILED = "806"
NO_VIDEO_DATA = "807"


class TuneError(StreamingError):
    """A tune cannot be served: the HTTP ``status`` and HDHomeRun error ``code`` to answer."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SessionManager:
    def __init__(
        self,
        settings: Settings,
        channels: ChannelSource,
        accounts: AccountService,
        events: EventLog,
        metrics: StreamMetrics,
    ) -> None:
        self._settings = settings
        self._channels = channels
        self._accounts = accounts
        self._events = events
        self.metrics = metrics
        self.slots = AccountSlots()
        self.breakers = CircuitBreakers(BreakerConfig.from_settings(settings))
        self.policy_config = PolicyConfig.from_settings(settings)
        self.upstream_config = UpstreamConfig(
            connect_timeout=settings.connect_timeout,
            header_timeout=settings.header_timeout,
            stall_timeout=settings.stall_timeout,
            user_agent=settings.user_agent,
            # The sessions judge stalls (media clock, or stall_timeout without one);
            # the read timeout is the last backstop behind both.
            read_timeout=settings.stall_timeout + DEFAULT_MAX_LEAD + settings.live_lag_limit,
        )
        self.judge_config = judge_config(settings)
        self._decoders: ThreadPoolExecutor | None = None
        self._sessions: dict[tuple[int, str], ChannelSession] = {}
        self._http: aiohttp.ClientSession | None = None
        self._starting: dict[tuple[int, str], asyncio.Lock] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=0, force_close=True),
                auto_decompress=False,
            )
        return self._http

    def _decoder_pool(self) -> ThreadPoolExecutor:
        if self._decoders is None:
            self._decoders = ThreadPoolExecutor(
                max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="streamforge-health"
            )
        return self._decoders

    @property
    def sessions(self) -> list[ChannelSession]:
        return list(self._sessions.values())

    async def tune(
        self, guide_number: str, quality: str | None = None
    ) -> tuple[ChannelSession, FanoutReader]:
        found = await asyncio.to_thread(self._channels.published, guide_number)
        if found is None:
            raise TuneError(f"no channel {guide_number}", 404)
        channel_id, name = found
        cap = parse_quality_cap(quality)
        key = (channel_id, cap.label if cap is not None else "")
        lock = self._starting.setdefault(key, asyncio.Lock())
        async with lock:
            session = self._sessions.get(key)
            if session is None or session.ended.is_set():
                session = await self._start(ChannelRef(channel_id, guide_number, name), key, cap)
        reader = session.join()
        try:
            await self._await_first_data(session)
        except BaseException:
            # Also on cancellation (the client hung up while tuning): leave, so
            # the upstream closes when nobody watches; then re-raise.
            session.leave(reader)
            raise
        return session, reader

    async def _await_first_data(self, session: ChannelSession) -> None:
        if session.first_data.is_set():
            return
        # Two short-lived waiters owned by this call and cancelled below.
        loop = asyncio.get_running_loop()
        data = loop.create_task(session.first_data.wait(), name="tune:first-data")
        ended = loop.create_task(session.ended.wait(), name="tune:ended")
        try:
            await asyncio.wait(
                {data, ended},
                timeout=self.policy_config.tune_budget + 2,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            data.cancel()
            ended.cancel()
        if not session.first_data.is_set():
            self.metrics.tunes_rejected.labels(code=NO_VIDEO_DATA).inc()
            raise TuneError("no stream of this channel delivered video", 503, NO_VIDEO_DATA)

    async def _start(self, channel: ChannelRef, key: tuple[int, str], cap: Any) -> ChannelSession:
        streams = apply_quality_cap(
            await asyncio.to_thread(self._channels.streams_for_channel, channel.id), cap
        )
        if not streams:
            self.metrics.tunes_rejected.labels(code=TUNE_FAILED).inc()
            raise TuneError(
                f"channel {channel.guide_number} has no usable stream", 503, TUNE_FAILED
            )
        now = asyncio.get_running_loop().time()
        if all(self.breakers.state(s.xtream_channel_id, now) is BreakerState.OPEN for s in streams):
            self.metrics.tunes_rejected.labels(code=TUNE_FAILED).inc()
            raise TuneError(
                f"every stream of channel {channel.guide_number} failed recently; retry later",
                503,
                TUNE_FAILED,
            )
        if all(self.slots.available(s.account_id, s.max_connections) <= 0 for s in streams):
            self.metrics.tunes_rejected.labels(code=ALL_TUNERS_IN_USE).inc()
            raise TuneError("all provider connections are in use", 503, ALL_TUNERS_IN_USE)
        access = await asyncio.to_thread(
            self._accounts.stream_access, {s.account_id for s in streams}
        )
        judgement = await asyncio.to_thread(self._channels.judgement_for_channel, channel.id)

        def url_for(stream: ProviderStream) -> tuple[str, str | None]:
            entry = access.get(stream.account_id)
            if not isinstance(entry, StreamAccess):
                raise CredentialError(entry or f"account {stream.account_name!r} is gone")
            return entry.client.live_url(stream.stream_id), entry.user_agent

        session = ChannelSession(
            channel,
            streams,
            http=self._client(),
            url_for=url_for,
            upstream_config=self.upstream_config,
            policy_config=self.policy_config,
            slots=self.slots,
            breakers=self.breakers,
            events=self._events,
            metrics=self.metrics,
            buffer_bytes=self._settings.client_buffer_bytes,
            linger=self._settings.session_linger,
            on_end=self._ended,
            key=key,
            judge=self.judge_config,
            judgement=judgement,
            executor=self._decoder_pool(),
        )
        self._sessions[key] = session
        session.start()
        return session

    def _ended(self, session: ChannelSession) -> None:
        key = session.key
        if isinstance(key, tuple) and self._sessions.get(key) is session:
            del self._sessions[key]

    def breaker_states(self) -> list[dict[str, Any]]:
        """Every stream's circuit breaker with history (key: xtream channel id)."""
        return self.breaker_states_sync()

    def breaker_states_sync(self) -> list[dict[str, Any]]:
        """The same, callable from a worker thread (breakers run on the loop clock)."""
        now = time.monotonic()
        return [status.as_dict() for status in self.breakers.snapshot(now)]

    def snapshot(self) -> list[dict[str, Any]]:
        return [session.status() for session in self._sessions.values()]

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            await session.close()
        if self._http is not None:
            await self._http.close()
        if self._decoders is not None:
            self._decoders.shutdown(wait=False, cancel_futures=True)
            self._decoders = None


def judge_config(settings: Settings) -> JudgeConfig:
    """The media judgement of the running settings."""
    return JudgeConfig(
        lag_limit=settings.live_lag_limit,
        stall_timeout=settings.stall_timeout,
        health=HealthConfig(
            black_seconds=settings.black_seconds,
            frozen_seconds=settings.frozen_seconds,
            silence_seconds=settings.silence_seconds,
        ),
        healthy_seconds=settings.probe_healthy_seconds,
    )

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

Connection-aware tuning (zapping on accounts with one or two connections):
a connection that is being released (its session ended, its socket still
closing: *draining*, see :class:`~streamforge.streaming.slots.AccountSlots`)
no longer holds a reservation, so the tune goes ahead and its upstream waits
(at most :data:`~streamforge.streaming.session.CONNECT_WAIT_SECONDS`) for the
old socket to close before connecting. When every account behind the channel
is reserved, the tune makes room: lingering sessions (no client left) holding
those accounts are ended at once, and with ``tune_handover`` on, sessions
whose only client is the address now tuning (Plex changing channels) end and
hand their connection over. Only then is the answer 805.

Every refused tune of a known channel is an event (warning, category
``stream``, kind ``tune_refused``, with the reason) and counts in
``streamforge_tunes_refused_total{reason}`` — never in the failover counter.

Manual control (:meth:`SessionManager.switch`, :meth:`SessionManager.unpin`)
goes to every live session of the channel (one per quality cap).

In a cluster (:meth:`SessionManager.use_cluster`) the account slots are the
cluster's (:class:`~streamforge.cluster.slots.ClusterSlots`) and a
:class:`~streamforge.streaming.relay.ChannelCoordinator` keeps one upstream
per channel across the nodes: a channel another node owns is relayed from
it (see :mod:`streamforge.streaming.relay`), and a channel this node plays
from its own upstream is claimed for it.
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
from streamforge.streaming.relay import ChannelCoordinator, is_relay, relay_stream
from streamforge.streaming.session import ChannelRef, ChannelSession
from streamforge.streaming.slate import SlateFormat, SlateLibrary, slate_runner
from streamforge.streaming.slots import AccountSlots, SlotLease
from streamforge.streaming.source import ChannelSource
from streamforge.streaming.upstream import UpstreamConfig
from streamforge.tasks import TaskOwner
from streamforge.xtream.accounts import AccountService, StreamAccess

log = logging.getLogger(__name__)

#: HDHomeRun error codes sent in ``X-HDHomeRun-Error``.
ALL_TUNERS_IN_USE = "805"
TUNE_FAILED = "806"
NO_VIDEO_DATA = "807"

#: ``reason`` of a refused tune (event details and the metric's label).
REFUSED_ALL_IN_USE = "all_connections_in_use"
REFUSED_ALL_FAILED = "every_stream_failed"
REFUSED_NO_VIDEO = "no_video"
REFUSED_NO_STREAM = "no_stream"


class TuneError(StreamingError):
    """A tune cannot be served: the HTTP ``status`` and HDHomeRun error ``code`` to answer."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NoSession(StreamingError):
    """Manual control of a channel that is not playing."""


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
        self.slates = SlateLibrary(settings.data_dir / "cache" / "slate")
        self.slate_format = SlateFormat()
        self.coordinator: ChannelCoordinator | None = None
        self._relay_urls: dict[int, str] = {}
        self._tasks = TaskOwner("streams")

    # -- cluster ------------------------------------------------------------------
    def use_cluster(self, slots: AccountSlots, coordinator: ChannelCoordinator | None) -> None:
        """Count connections with the cluster's ``slots`` and keep one upstream per
        channel with ``coordinator`` (call before the first tune)."""
        self.slots = slots
        self.coordinator = coordinator

    def leases_lost(self, leases: tuple[SlotLease, ...]) -> None:
        """The cluster took these leases away: each owning session fails that attempt."""
        for lease in leases:
            holder = lease.holder
            if isinstance(holder, ChannelSession) and not holder.ended.is_set():
                holder.lease_lost(lease)

    def relay_source(self, channel_id: int) -> ChannelSession | None:
        """This node's session of ``channel_id`` if other nodes may relay it: uncapped,
        alive, and reading its own upstream (a relay of a relay would loop)."""
        session = self._sessions.get((channel_id, ""))
        if session is None or session.ended.is_set():
            return None
        playing = session.policy.playing
        if playing is None or is_relay(playing):
            return None
        return session

    async def keep_ownership(self, period: float) -> None:
        """Claim every channel this node plays from its own upstream and does not
        own yet (e.g. after taking over from a node that went away)."""
        while True:
            await asyncio.sleep(period)
            coordinator = self.coordinator
            if coordinator is None:
                continue
            for (channel_id, cap), session in list(self._sessions.items()):
                playing = session.policy.playing
                if cap or playing is None or is_relay(playing) or session.ended.is_set():
                    continue
                if not coordinator.owns(channel_id):
                    await coordinator.claim(channel_id)

    async def _cluster_full(self, streams: tuple[ProviderStream, ...]) -> bool:
        """Whether every account of ``streams`` is at its limit across the cluster."""
        if self.coordinator is None:
            return False
        for stream in streams:
            if is_relay(stream):
                return False
            free = await self.coordinator.free_connections(
                stream.account_id, stream.max_connections
            )
            if free > 0:
                return False
        return True

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
        self, guide_number: str, quality: str | None = None, client: str | None = None
    ) -> tuple[ChannelSession, FanoutReader]:
        """Join or start the channel's session; ``client`` is the tuner's address."""
        began = asyncio.get_running_loop().time()
        found = await asyncio.to_thread(self._channels.published, guide_number)
        if found is None:
            raise TuneError(f"no channel {guide_number}", 404)
        channel_id, name = found
        cap = parse_quality_cap(quality)
        key = (channel_id, cap.label if cap is not None else "")
        channel = ChannelRef(channel_id, guide_number, name)
        lock = self._starting.setdefault(key, asyncio.Lock())
        async with lock:
            session = self._sessions.get(key)
            if session is None or session.ended.is_set():
                session = await self._start(channel, key, cap, client)
        reader = session.join(client)
        try:
            await self._await_first_data(session)
        except TuneError as exc:
            session.leave(reader)
            self._refused(channel, exc, REFUSED_NO_VIDEO)
            raise
        except BaseException:
            # Also on cancellation (the client hung up while tuning): leave, so
            # the upstream closes when nobody watches; then re-raise.
            session.leave(reader)
            raise
        self.metrics.tune_seconds.observe(asyncio.get_running_loop().time() - began)
        return session, reader

    def _refused(self, channel: ChannelRef, error: TuneError, reason: str) -> None:
        """A refused tune: its event and metric (never a failover)."""
        self.metrics.tunes_refused.labels(reason=reason).inc()
        self._events.record(
            "warning",
            "stream",
            f"{channel.guide_number} {channel.name}: tune refused ({error})",
            {
                "kind": "tune_refused",
                "reason": reason,
                "code": error.code,
                "status": error.status,
                "channel_id": channel.id,
                "guide_number": channel.guide_number,
                "channel_name": channel.name,
            },
            channel_id=channel.id,
        )

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
            if await self._cluster_full(tuple(session.policy.streams)):
                raise self._refuse(
                    session.channel,
                    TuneError("all provider connections are in use", 503, ALL_TUNERS_IN_USE),
                    REFUSED_ALL_IN_USE,
                )
            self.metrics.tunes_rejected.labels(code=NO_VIDEO_DATA).inc()
            raise TuneError("no stream of this channel delivered video", 503, NO_VIDEO_DATA)

    def _refuse(self, channel: ChannelRef, error: TuneError, reason: str) -> TuneError:
        self.metrics.tunes_rejected.labels(code=error.code).inc()
        self._refused(channel, error, reason)
        return error

    async def _start(
        self, channel: ChannelRef, key: tuple[int, str], cap: Any, client: str | None = None
    ) -> ChannelSession:
        streams = apply_quality_cap(
            await asyncio.to_thread(self._channels.streams_for_channel, channel.id), cap
        )
        if not streams:
            raise self._refuse(
                channel,
                TuneError(f"channel {channel.guide_number} has no usable stream", 503, TUNE_FAILED),
                REFUSED_NO_STREAM,
            )
        now = asyncio.get_running_loop().time()
        if all(self.breakers.state(s.xtream_channel_id, now) is BreakerState.OPEN for s in streams):
            raise self._refuse(
                channel,
                TuneError(
                    f"every stream of channel {channel.guide_number} failed recently; retry later",
                    503,
                    TUNE_FAILED,
                ),
                REFUSED_ALL_FAILED,
            )
        # A channel another node plays is relayed from it: no connection of ours needed.
        relay = await self._relay_for(channel, cap, streams)
        if relay is None and (
            not self._make_room(channel, streams, key, client) or await self._cluster_full(streams)
        ):
            if self.coordinator is not None and self.coordinator.owns(channel.id):
                await self.coordinator.release(channel.id)  # claimed, but nothing plays
            raise self._refuse(
                channel,
                TuneError("all provider connections are in use", 503, ALL_TUNERS_IN_USE),
                REFUSED_ALL_IN_USE,
            )
        if relay is not None:
            streams = (relay, *streams)
        access = await asyncio.to_thread(
            self._accounts.stream_access, {s.account_id for s in streams if not is_relay(s)}
        )
        judgement = await asyncio.to_thread(self._channels.judgement_for_channel, channel.id)

        def url_for(stream: ProviderStream) -> tuple[str, str | None]:
            if is_relay(stream) and self.coordinator is not None:
                # signed afresh for each attempt: a signature is valid for a minute
                return self.coordinator.relay_url(self._relay_urls[channel.id], channel.id), None
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
            run_slate=slate_runner(self.slates, self.slate_format),
        )
        if self._settings.outage_hold > 0:
            self.slates.prefetch(self.slate_format)
        self._sessions[key] = session
        session.start()
        return session

    # -- connection-aware tuning -------------------------------------------------
    def _has_room(self, streams: tuple[ProviderStream, ...]) -> bool:
        return any(self.slots.available(s.account_id, s.max_connections) > 0 for s in streams)

    def _make_room(
        self,
        channel: ChannelRef,
        streams: tuple[ProviderStream, ...],
        key: tuple[int, str],
        client: str | None,
    ) -> bool:
        """True once an account behind ``streams`` has a free connection (see module doc)."""
        now = asyncio.get_running_loop().time()
        playable = (
            tuple(
                s
                for s in streams
                if self.breakers.state(s.xtream_channel_id, now) is not BreakerState.OPEN
            )
            or streams
        )
        if self._has_room(playable):
            return True
        accounts = {s.account_id for s in playable}
        label = f"{channel.guide_number} {channel.name}"
        self._end_lingering(accounts, key, label)
        if self._settings.tune_handover and client is not None and not self._has_room(playable):
            self._handover(playable, key, client, channel)
        return self._has_room(playable)

    def _holders(self, account_id: int) -> list[ChannelSession] | None:
        """The sessions holding ``account_id``'s connections (None: a holder is no session)."""
        holders: list[ChannelSession] = []
        for lease in self.slots.leases(account_id):
            holder = lease.holder
            if not isinstance(holder, ChannelSession) or holder.ended.is_set():
                return None
            if holder not in holders:
                holders.append(holder)
        return holders

    def _end_lingering(self, accounts: set[int], key: tuple[int, str], label: str) -> None:
        """End sessions without clients (lingering) that hold a connection we need."""
        for account in accounts:
            for session in self._holders(account) or []:
                if session.key != key and session.clients == 0:
                    session.handover(label)

    def _handover(
        self,
        streams: tuple[ProviderStream, ...],
        key: tuple[int, str],
        client: str,
        channel: ChannelRef,
    ) -> bool:
        """End the sessions of the first stream whose account is held only by ``client``."""
        for stream in streams:
            holders = self._holders(stream.account_id)
            if not holders:
                continue
            if all(s.key != key and s.client_addresses <= {client} for s in holders):
                for session in holders:
                    session.handover(f"{channel.guide_number} {channel.name}")
                return True
        return False

    # -- manual control ------------------------------------------------------------
    def _live(self, guide_number: str) -> list[ChannelSession]:
        found = [
            s
            for s in self._sessions.values()
            if s.channel.guide_number == guide_number and not s.ended.is_set()
        ]
        if not found:
            raise NoSession(f"channel {guide_number} is not playing")
        return found

    def switch(self, guide_number: str, stream: str | None) -> list[dict[str, Any]]:
        """Switch the channel's live session(s) to ``stream`` (pinned), or to the next one.

        Raises :class:`NoSession`, :class:`~.session.StreamNotFound` or
        :class:`~.session.SwitchRejected`.
        """
        sessions = self._live(guide_number)
        if stream is not None:
            for session in sessions:
                session.stream_index(stream)  # every session knows it, or nothing happens
        for session in sessions:
            session.request_switch(stream)
        return [session.status() for session in sessions]

    def unpin(self, guide_number: str) -> list[dict[str, Any]]:
        """Let the channel's live session(s) upgrade away from a pinned stream again."""
        sessions = self._live(guide_number)
        for session in sessions:
            session.request_unpin()
        return [session.status() for session in sessions]

    async def _relay_for(
        self, channel: ChannelRef, cap: Any, streams: tuple[ProviderStream, ...]
    ) -> ProviderStream | None:
        """The relay stream from the channel's owner node, or None when this node
        reads the provider itself (it owns the channel now, or there is no cluster)."""
        if self.coordinator is None or cap is not None:
            return None
        claimed = await self.coordinator.claim(channel.id)
        if claimed is None:
            return None
        url, owner = claimed
        self._relay_urls[channel.id] = url
        return relay_stream(channel.id, owner, streams)

    def _ended(self, session: ChannelSession) -> None:
        key = session.key
        if isinstance(key, tuple) and self._sessions.get(key) is session:
            del self._sessions[key]
            coordinator = self.coordinator
            if coordinator is not None and coordinator.owns(session.channel.id) and not key[1]:
                self._tasks.spawn(
                    coordinator.release(session.channel.id), f"release:{session.channel.id}"
                )

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
        await self.slates.close()
        await self._tasks.close()
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

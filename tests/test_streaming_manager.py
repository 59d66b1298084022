"""``SessionManager`` on its own: an in-memory :class:`ChannelSource` instead of
the catalogue, the real account service for credentials, and the mock
provider over real sockets for the streams.

Tuning shares one session (one upstream) between clients, answers 404 for an
unknown channel, 503 805 when the account has no free connection, 503 806
when every stream failed, and ends the session (releasing the account's
slot) when the last client leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from streamforge.mockprovider import MockProvider
from streamforge.mockprovider.faults import Fault, FaultKind
from streamforge.runtime import Runtime
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.fanout import FanoutReader
from streamforge.streaming.health.judge import ChannelJudgement
from streamforge.streaming.manager import (
    ALL_TUNERS_IN_USE,
    NO_VIDEO_DATA,
    TUNE_FAILED,
    SessionManager,
    TuneError,
)
from streamforge.streaming.metrics import StreamMetrics
from streamforge.streaming.source import ChannelSource
from tests.streamharness import wait_until


@dataclass
class MemorySource:
    """Channels by GuideNumber, each with its streams in failover order."""

    channels: dict[str, tuple[int, str]] = field(default_factory=dict)
    streams: dict[int, tuple[ProviderStream, ...]] = field(default_factory=dict)

    def add(self, number: str, name: str, *streams: ProviderStream) -> None:
        channel_id = len(self.channels) + 1
        self.channels[number] = (channel_id, name)
        self.streams[channel_id] = streams

    def published(self, guide_number: str) -> tuple[int, str] | None:
        return self.channels.get(guide_number)

    def streams_for_channel(self, channel_id: int) -> tuple[ProviderStream, ...]:
        return self.streams.get(channel_id, ())

    def judgement_for_channel(self, channel_id: int) -> ChannelJudgement:
        return ChannelJudgement()


@dataclass
class World:
    manager: SessionManager
    source: MemorySource
    provider: MockProvider
    account_ids: dict[str, int]

    def stream(self, account: str, stream_id: int, max_connections: int) -> ProviderStream:
        """A provider stream of the demo catalogue (xtream id = provider stream id here)."""
        return ProviderStream(
            mapping_id=stream_id,
            xtream_channel_id=stream_id,
            stream_id=stream_id,
            name=f"{account} {stream_id}",
            account_id=self.account_ids[account],
            account_name=account,
            max_connections=max_connections,
        )


@pytest.fixture
async def world(runtime: Runtime, mock_provider: MockProvider) -> AsyncIterator[World]:
    for name, secret in (("alpha", "alpha-secret"), ("beta", "beta-secret")):
        result = await runtime.accounts.add(
            name, server_url=mock_provider.base_url, username=name, password=secret
        )
        assert result.ok, result.message
    ids = {view.name: view.id for view in runtime.accounts.all()}
    source = MemorySource()
    settings = runtime.settings.model_copy(update={"breaker_threshold": 1, "session_linger": 0.0})
    checked: ChannelSource = source  # the fake satisfies the protocol
    manager = SessionManager(settings, checked, runtime.accounts, runtime.events, StreamMetrics())
    try:
        yield World(manager, source, mock_provider, ids)
    finally:
        await manager.close()


async def read_bytes(reader: FanoutReader, count: int, within: float = 15.0) -> int:
    """Read from a client's reader until ``count`` bytes arrived; how many did."""
    got = 0
    async with asyncio.timeout(within):
        async for chunk in reader:
            got += len(chunk)
            if got >= count:
                break
    return got


async def test_two_clients_share_one_session_and_one_upstream(world: World) -> None:
    world.source.add("1", "BBC One", world.stream("alpha", 101, 2))
    first, first_reader = await world.manager.tune("1")
    second, second_reader = await world.manager.tune("1")
    assert second is first
    assert first.clients == 2
    assert world.manager.sessions == [first]
    assert await read_bytes(first_reader, 188 * 100) >= 188 * 100
    assert await read_bytes(second_reader, 188 * 100) >= 188 * 100
    assert world.provider.stats().open_connections(stream_id=101) == 1
    assert world.manager.slots.in_use(world.account_ids["alpha"]) == 1
    first.leave(first_reader)
    first.leave(second_reader)


async def test_unknown_channel_is_404(world: World) -> None:
    with pytest.raises(TuneError) as caught:
        await world.manager.tune("999")
    assert caught.value.status == 404
    assert caught.value.code is None
    assert world.manager.sessions == []


async def test_full_account_is_503_805(world: World) -> None:
    world.source.add("1", "BBC One SD", world.stream("beta", 201, 1))
    world.source.add("2", "ESPN 2", world.stream("beta", 202, 1))
    session, reader = await world.manager.tune("1")
    assert world.manager.slots.in_use(world.account_ids["beta"]) == 1
    with pytest.raises(TuneError) as caught:
        await world.manager.tune("2")
    assert caught.value.status == 503
    assert caught.value.code == ALL_TUNERS_IN_USE
    assert world.manager.sessions == [session]
    session.leave(reader)


async def test_every_stream_failing_is_503_806(world: World) -> None:
    world.source.add("1", "BBC One", world.stream("alpha", 101, 2), world.stream("beta", 201, 1))
    world.source.add("2", "Nothing behind it")
    for stream_id in (101, 201):
        world.provider.set_fault(stream_id, Fault(FaultKind.STATUS, status=503))
    with pytest.raises(TuneError) as first:
        await world.manager.tune("1")
    assert first.value.status == 503
    assert first.value.code == NO_VIDEO_DATA  # the session tried both, neither played
    # Both streams failed, so both breakers are open: the next tune is refused at once.
    with pytest.raises(TuneError) as again:
        await world.manager.tune("1")
    assert again.value.status == 503
    assert again.value.code == TUNE_FAILED
    assert "failed recently" in str(again.value)
    with pytest.raises(TuneError) as empty:
        await world.manager.tune("2")
    assert empty.value.status == 503
    assert empty.value.code == TUNE_FAILED
    assert world.manager.slots.snapshot() == {}


async def test_last_client_leaving_ends_the_session_and_frees_the_slot(world: World) -> None:
    world.source.add("1", "BBC One", world.stream("alpha", 101, 2))
    alpha = world.account_ids["alpha"]
    session, first = await world.manager.tune("1")
    _same, second = await world.manager.tune("1")
    assert await read_bytes(first, 188 * 50) >= 188 * 50
    session.leave(first)
    assert not session.ended.is_set()
    assert world.manager.slots.in_use(alpha) == 1
    session.leave(second)
    async with asyncio.timeout(10):
        await session.ended.wait()
    await wait_until(lambda: world.manager.slots.in_use(alpha) == 0)
    assert world.manager.sessions == []
    await world.provider.wait_for(lambda st: not st.open, timeout=5)
    again, reader = await world.manager.tune("1")
    assert again is not session
    again.leave(reader)

"""Media-aware stream health through ``/auto/v{n}`` against the mock provider.

A provider that keeps sending valid MPEG-TS but a black, frozen or silent
picture, a mux without its video or audio, or delivery that falls behind
live is failed over seamlessly; a bursty provider that stays ahead of live
and a radio channel without video are not; an upgrade probe of a primary
that is still black does not switch back. Every channel of a test plays at
once (one session each), so the suite pays for the slowest fault, not the sum.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from streamforge.mockprovider import (
    Account,
    Catalog,
    Category,
    Fault,
    FaultKind,
    MediaLibrary,
    MockProvider,
    Stream,
)
from streamforge.mockprovider.catalog import GuideChannel
from streamforge.runtime import Runtime
from streamforge.streaming.health.sound import rms_dbfs
from tests import mockfixtures
from tests.mockfixtures import MockProviderFactory, cc_errors
from tests.streamharness import Stack, StreamClient, stack, wait_until, whole_packets

ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:test-admin-password").decode()}
PRIMARY_SIZE, BACKUP_SIZE = (320, 240), (480, 270)  # the "sd" and "hd" profiles
FAR_FUTURE = 4_102_444_800

# Not (yet) imported by conftest.py.
mock_fault_media = mockfixtures.mock_fault_media

#: fault name -> (the fault, the reason the failover must give)
FAULTS: dict[str, tuple[Fault, str]] = {
    "black": (Fault(FaultKind.BLACK), "black_picture"),
    "frozen": (Fault(FaultKind.FROZEN), "frozen_picture"),
    "card": (Fault(FaultKind.CARD), "frozen_picture"),
    "silent": (Fault(FaultKind.SILENT), "silent_audio"),
    "no_video": (Fault(FaultKind.NO_VIDEO), "no_video"),
    "no_audio": (Fault(FaultKind.NO_AUDIO), "no_audio"),
    "slow": (Fault(FaultKind.SLOW, factor=0.6), "behind_live"),
    "drip": (Fault(FaultKind.DRIP), "behind_live"),
    "stall": (Fault(FaultKind.STALL), "behind_live"),
}


def _catalog(names: list[str]) -> Catalog:
    """One channel per name: an ``sd`` primary (300+i) and an ``hd`` backup (400+i)."""
    streams = []
    for i, name in enumerate(names):
        epg = f"{name}.test"
        streams.append(Stream(300 + i, f"{name} FHD", 1, epg, profile="sd", num=i + 1))
        streams.append(Stream(400 + i, f"{name} HD", 1, epg, profile="hd", num=i + 100))
    accounts = tuple(
        Account(user, f"{user}-secret", exp_date=FAR_FUTURE, max_connections=60)
        for user in ("alpha", "beta")
    )
    guide = tuple(GuideChannel(f"{name}.test", name) for name in names)
    return Catalog(accounts, (Category(1, "Test"),), tuple(streams), guide)


@pytest.fixture
def provider_for(
    make_mock_provider: MockProviderFactory, mock_fault_media: MediaLibrary
) -> Callable[[list[str]], Awaitable[MockProvider]]:
    async def make(names: list[str]) -> MockProvider:
        return await make_mock_provider(_catalog(names))

    return make


def _events(runtime: Runtime) -> list[dict[str, Any]]:
    assert runtime.events.flush()
    return [e.details | {"message": e.message} for e in runtime.events.query(category="stream")]


def _of(runtime: Runtime, name: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in _events(runtime) if e.get("kind") == kind and e.get("channel_name") == name]


def _channel(s: Stack, i: int, name: str) -> str:
    return s.order(f"{name}.test", [("alpha", 300 + i), ("alpha", 400 + i)])


def _decode(data: bytes) -> tuple[set[tuple[int, int]], list[float]]:
    """Picture sizes and audio levels (dBFS per frame) of a piece of the capture."""
    sizes: set[tuple[int, int]] = set()
    levels: list[float] = []
    container = av.open(io.BytesIO(data), mode="r", format="mpegts")
    try:
        for packet in container.demux():
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                if isinstance(frame, av.VideoFrame):
                    sizes.add((frame.width, frame.height))
                elif isinstance(frame, av.AudioFrame):
                    levels.append(rms_dbfs(np.asarray(frame.to_ndarray())))
    finally:
        container.close()
    return sizes, levels


async def _watch(
    s: Stack, http: aiohttp.ClientSession, i: int, name: str, fault: Fault, reason: str
) -> None:
    """Tune, break the primary, wait for the failover, check what the client got after it."""
    number = _channel(s, i, name)
    client = StreamClient(http, f"{s.base_url}/auto/v{number}")
    client.start()
    try:
        await client.wait_bytes(188 * 2000, within=20)
        s.provider.set_fault(300 + i, fault)
        await wait_until(lambda: _of(s.runtime, name, "failover"), within=30, interval=0.1)
        switched = len(client.data)
        try:
            await client.wait_bytes(switched + 188 * 1500, within=30)
        except TimeoutError:
            raise AssertionError(
                f"{name}: {len(client.data) - switched} bytes after the switch; "
                f"{[e['message'] for e in _events(s.runtime) if e.get('channel_name') == name]}"
            ) from None
        assert not client.ended.is_set(), f"{name}: the response ended"
    finally:
        await client.stop()
    (event,) = _of(s.runtime, name, "failover")
    assert event["reason"] == reason, (name, event)
    assert event["to_stream_name"] == f"{name} HD"
    assert isinstance(event["viewer_gap_ms"], float), event
    assert isinstance(event["detect_ms"], float), event
    assert event["measured_s"] > 0, event
    if reason == "behind_live":
        assert "behind live" in event["detail"]
    else:
        assert event["measured_s"] >= 2.0, event
    data = bytes(client.data[: len(client.data) // 188 * 188])
    assert whole_packets(data)
    assert cc_errors(data) == 0
    after = data[switched // 188 * 188 :]
    sizes, levels = _decode(after)
    assert BACKUP_SIZE in sizes, f"{name}: no backup picture after the switch ({sizes})"
    assert levels, f"{name}: no backup sound after the switch"
    assert max(levels) > -40.0, f"{name}: the backup's sound is silent"


async def test_each_media_and_delivery_fault_fails_over_to_the_backup(
    tmp_path: Path, provider_for: Any
) -> None:
    names = list(FAULTS)
    provider = await provider_for(names)
    async with (
        stack(
            tmp_path,
            provider,
            black_seconds=2.0,
            frozen_seconds=2.0,
            silence_seconds=2.0,
            live_lag_limit=1.0,
        ) as s,
        aiohttp.ClientSession() as http,
    ):
        await asyncio.gather(
            *(_watch(s, http, i, name, *FAULTS[name]) for i, name in enumerate(names))
        )
        async with http.get(f"{s.base_url}/metrics", headers=ADMIN) as response:
            metrics = await response.text()
        for reason in {r for _, r in FAULTS.values()}:
            assert f'streamforge_failovers_total{{reason="{reason}"}}' in metrics
        assert "streamforge_health_samples_dropped_total" in metrics
        assert "streamforge_viewer_gap_seconds_count" in metrics


@pytest.mark.slow
async def test_bursty_providers_and_a_radio_channel_play_a_minute_without_a_switch(
    tmp_path: Path, provider_for: Any
) -> None:
    names = ["burst4", "burst8", "radio"]
    provider = await provider_for(names)
    async with stack(tmp_path, provider) as s, aiohttp.ClientSession() as http:
        numbers = [_channel(s, i, name) for i, name in enumerate(names)]
        judgement = s.runtime.channels.set_health("radio.test", audio_only=True)
        assert judgement.audio_only
        provider.set_fault(300, Fault(FaultKind.BURSTY, period=4.0))
        provider.set_fault(301, Fault(FaultKind.BURSTY, period=8.0))
        clients = [StreamClient(http, f"{s.base_url}/auto/v{n}") for n in numbers]
        for client in clients:
            client.start()
        await asyncio.gather(*(c.wait_bytes(188 * 1000, within=20) for c in clients))
        provider.set_fault(302, Fault(FaultKind.NO_VIDEO))
        loop = asyncio.get_running_loop()
        until = loop.time() + 60.0
        await wait_until(lambda: loop.time() >= until, within=70, interval=0.5)
        # each kept receiving to the end, from the primary, without a failover
        marks = [len(c.data) for c in clients]
        await asyncio.gather(
            *(c.wait_bytes(m + 188 * 500, within=12) for c, m in zip(clients, marks, strict=True))
        )
        for client in clients:
            assert not client.ended.is_set()
        for client in clients:
            await client.stop()
    switches = [e for e in _events(s.runtime) if e.get("kind") in {"failover", "exhausted"}]
    assert switches == []
    assert provider.stats().open_connections(stream_id=302) == 0  # all closed at the end


async def test_a_probe_of_a_black_primary_does_not_switch_back(
    tmp_path: Path, provider_for: Any
) -> None:
    provider = await provider_for(["probe"])
    async with (
        stack(
            tmp_path,
            provider,
            black_seconds=2.0,
            recovery_period=3.0,
            probe_healthy_seconds=2.0,
        ) as s,
        aiohttp.ClientSession() as http,
    ):
        number = _channel(s, 0, "probe")
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 1000, within=20)
        provider.set_fault(300, Fault(FaultKind.BLACK))
        await wait_until(lambda: _of(s.runtime, "probe", "failover"), within=20, interval=0.1)
        await wait_until(lambda: _of(s.runtime, "probe", "upgrade_failed"), within=20, interval=0.1)
        failed = _of(s.runtime, "probe", "upgrade_failed")[0]
        assert failed["reason"] == "black_picture", failed
        assert _of(s.runtime, "probe", "upgrade") == []
        assert s.runtime.streams.snapshot()[0]["stream"] == "probe HD"
        # the primary heals: the next probe sees healthy media and switches back
        provider.recover(300)
        await wait_until(lambda: _of(s.runtime, "probe", "upgrade"), within=30, interval=0.1)
        (upgrade,) = _of(s.runtime, "probe", "upgrade")
        assert upgrade["probe_ms"] >= 2000
        assert isinstance(upgrade["viewer_gap_ms"], float)
        assert not client.ended.is_set()
        await client.stop()

"""The one-command demo: configuration against the mock provider, fault injection
into the playing stream, and the whole demo served and stopped cleanly."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamforge.demo import DemoControls, configure, demo_settings, run_demo
from streamforge.errors import ConfigError, NotFoundError
from streamforge.mockprovider import FaultKind, MediaLibrary, MockProvider
from streamforge.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD
from tests.netutil import free_port
from tests.streamharness import StreamClient, stack, wait_until


async def test_configure_maps_channels_with_backups_and_is_repeatable(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    first = await configure(runtime, mock_provider)
    assert first["matching"]["channels_with_backups"] >= 3
    again = await configure(runtime, mock_provider)
    assert again["matching"]["channels_with_streams"] == first["matching"]["channels_with_streams"]
    assert sorted(a.name for a in runtime.accounts.all()) == ["alpha", "beta"]
    assert len(runtime.channels.get("bbcone.uk").mappings) >= 3


async def test_fault_hits_the_playing_stream_and_recovers(
    data_dir: Path, mock_provider: MockProvider
) -> None:
    async with stack(data_dir, mock_provider) as s:
        controls = DemoControls(mock_provider, s.runtime)
        number = s.order("bbcone.uk", [("alpha", 101), ("beta", 201)])
        with pytest.raises(NotFoundError):
            controls.playing(number)
        async with aiohttp.ClientSession() as http:
            client = StreamClient(http, f"{s.base_url}/auto/v{number}")
            client.start()
            try:
                await client.wait_bytes(188 * 200)
                assert controls.playing(number)[0] == 101
                with pytest.raises(ConfigError):
                    controls.inject(number, "meteor")
                done = controls.inject(number, "status 503")
                assert done["stream_id"] == 101
                assert done["connections_cut"] == 1
                assert mock_provider.state.board.faults()[101].kind is FaultKind.STATUS
                await wait_until(lambda: playing_id(controls, number) == 201)
                received = len(client.data)
                await client.wait_bytes(received + 188 * 100)
                assert controls.recover() == {"recovered": [101]}
                assert 101 not in mock_provider.state.board.faults()
            finally:
                await client.stop()


def playing_id(controls: DemoControls, number: str) -> int | None:
    """The provider stream playing on ``number``; None while the session is between two
    streams (the backup opened, not yet switched to), when nothing plays for a moment."""
    try:
        return controls.playing(number)[0]
    except NotFoundError:
        return None


async def test_demo_serves_and_stops(tmp_path: Path, mock_media: MediaLibrary) -> None:
    settings = demo_settings(
        tmp_path / "demo",
        host="127.0.0.1",
        port=free_port(),
        recovery_period=20,
        discovery_enabled=False,
        ssdp_enabled=False,
    )
    announced: list[dict[str, Any]] = []
    ready = asyncio.Event()
    stop = asyncio.Event()

    def announce(info: dict[str, Any]) -> None:
        announced.append(info)
        ready.set()

    task = asyncio.get_running_loop().create_task(
        run_demo(settings, announce=announce, media=mock_media, stop=stop), name="demo-under-test"
    )
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        info = announced[0]
        assert info["password"]
        assert info["ui"] == f"http://127.0.0.1:{settings.port}/ui/"
        assert info["watch"] == f"http://127.0.0.1:{settings.port}/auto/v1"
        token = base64.b64encode(f"admin:{info['password']}".encode()).decode()
        async with aiohttp.ClientSession() as http:
            await wait_until_up(http, info["ui"])
            async with http.get(info["urls"]["lineup"]) as answer:
                assert len(await answer.json()) == 4
            headers = {"Authorization": f"Basic {token}"}
            async with http.get(info["urls"]["base"] + "/api/v1/settings", headers=headers) as r:
                assert (await r.json())["values"]["recovery_period"] == 20
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task
    assert ADMIN_PASSWORD not in info["password"]


async def wait_until_up(http: aiohttp.ClientSession, url: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        try:
            async with http.get(url, allow_redirects=False) as answer:
                if answer.status in (200, 303):
                    return
        except aiohttp.ClientConnectionError:
            if loop.time() > deadline:
                raise
        await asyncio.sleep(0.05)

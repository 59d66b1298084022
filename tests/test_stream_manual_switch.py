"""Manual switch and unpin end to end against a running server: the API and
the CLI switch a live channel seamlessly, the pinned stream is not upgraded
away from until it is unpinned."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
from typer.testing import CliRunner, Result

from streamforge.cli.main import app
from streamforge.mockprovider import MockProvider
from tests.mockfixtures import cc_errors
from tests.streamharness import StreamClient, stack, wait_until

ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:test-admin-password").decode()}


async def cli(base_url: str, *args: str) -> Result:
    env = {"STREAMFORGE_ADMIN_PASSWORD": "test-admin-password"}
    return await asyncio.to_thread(
        CliRunner().invoke, app, ["session", *args, "--url", base_url], env=env
    )


def _stream_events(runtime: object) -> list[dict[str, object]]:
    events = runtime.events  # type: ignore[attr-defined]
    assert events.flush()
    return [e.details | {"level": e.level} for e in events.query(category="stream")]


async def test_api_switch_is_seamless_pinned_and_not_upgraded_away_until_unpinned(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with (
        stack(tmp_path, mock_provider, recovery_period=1.0) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [("alpha", 101), ("alpha", 102)])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 600)
        url = f"{s.base_url}/api/v1/sessions/{number}"
        async with http.post(f"{url}/switch", json={"stream": "alpha/102"}, headers=ADMIN) as r:
            assert r.status == 200, await r.text()
        streams = s.runtime.streams
        await wait_until(lambda: streams.snapshot()[0]["stream"] == "UK: BBC One HD", within=10)
        switched_at = len(client.data)
        assert streams.snapshot()[0]["pinned"]
        # Three recovery periods on the pinned backup: no probe, no upgrade.
        await client.wait_bytes(switched_at + 188 * 600, within=15)
        pinned_at = streams.snapshot()[0]["uptime_s"]
        await wait_until(lambda: streams.snapshot()[0]["uptime_s"] >= pinned_at + 3.5, within=6)
        status = streams.snapshot()[0]
        assert (status["stream"], status["upgrades"], status["failovers"]) == (
            "UK: BBC One HD",
            0,
            0,
        )
        assert mock_provider.stats().opens(stream_id=101) == 1, "no probe of the primary"
        async with http.post(f"{url}/unpin", headers=ADMIN) as r:
            assert r.status == 200
        await wait_until(lambda: streams.snapshot()[0]["upgrades"] == 1, within=10)
        assert streams.snapshot()[0]["stream"] == "UK: BBC One FHD"
        await client.wait_bytes(len(client.data) + 188 * 600)
        await client.stop()
    data = bytes(client.data[: len(client.data) // 188 * 188])
    assert cc_errors(data) == 0
    manual = [e for e in _stream_events(s.runtime) if e["kind"] == "manual"]
    assert len(manual) == 1
    assert manual[0]["to_stream_name"] == "UK: BBC One HD"


async def test_cli_switch_next_and_unpin(tmp_path: Path, mock_provider: MockProvider) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [("alpha", 101), ("beta", 201)])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 300)
        result = await cli(s.base_url, "switch", number, "--next")
        assert result.exit_code == 0, result.output
        streams = s.runtime.streams
        await wait_until(lambda: streams.snapshot()[0]["stream"] == "|UK| BBC ONE SD", within=10)
        again = await cli(s.base_url, "switch", number, "--stream", "alpha/101")
        assert again.exit_code == 0, again.output
        await wait_until(lambda: streams.snapshot()[0]["stream"] == "UK: BBC One FHD", within=10)
        unpinned = await cli(s.base_url, "unpin", number)
        assert unpinned.exit_code == 0, unpinned.output
        assert not streams.snapshot()[0]["pinned"]
        await client.stop()

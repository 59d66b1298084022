"""Manual control plumbing: the switch/unpin API and CLI against a running
server — validation and lookups (the switch itself is the policy's)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
from typer.testing import CliRunner, Result

from streamforge.cli.main import app
from streamforge.mockprovider import MockProvider
from streamforge.streaming.candidates import ProviderStream
from tests.streamharness import StreamClient, stack

ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:test-admin-password").decode()}


async def cli(base_url: str, *args: str) -> Result:
    """Run the CLI in a worker thread (it talks to the server on this loop)."""
    env = {"STREAMFORGE_ADMIN_PASSWORD": "test-admin-password"}
    return await asyncio.to_thread(
        CliRunner().invoke, app, ["session", *args, "--url", base_url], env=env
    )


def test_a_stream_is_named_by_account_and_provider_id() -> None:
    stream = ProviderStream(1, 2, 102, "UK: BBC One HD", 3, "alpha")
    assert stream.ref == "alpha/102"
    assert stream.describe()["ref"] == "alpha/102"


async def test_switch_api_validates_and_finds_the_session_and_stream(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [("alpha", 101), ("alpha", 102), ("beta", 201)])
        url = f"{s.base_url}/api/v1/sessions/{number}"
        async with http.post(f"{url}/switch", json={"next": True}) as answer:
            assert answer.status == 401
        async with http.post(f"{url}/switch", json={"next": True}, headers=ADMIN) as answer:
            assert answer.status == 404
            assert "not playing" in (await answer.json())["error"]
        async with http.post(f"{url}/unpin", headers=ADMIN) as answer:
            assert answer.status == 404
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 100)
        for body in ({}, {"stream": "alpha/102", "next": True}):
            async with http.post(f"{url}/switch", json=body, headers=ADMIN) as answer:
                assert answer.status == 400
        async with http.post(f"{url}/switch", json={"stream": "gamma/7"}, headers=ADMIN) as answer:
            assert answer.status == 404
            message = (await answer.json())["error"]
        assert "no stream 'gamma/7'" in message
        assert "alpha/101, alpha/102, beta/201" in message, "the answer lists the choices"
        async with http.get(f"{s.base_url}/api/v1/sessions", headers=ADMIN) as answer:
            (session,) = await answer.json()
        assert [st["ref"] for st in session["streams"]] == ["alpha/101", "alpha/102", "beta/201"]
        assert session["holding"] is False
        await client.stop()


async def test_session_cli_checks_its_arguments_and_reports_the_server_answer(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with stack(tmp_path, mock_provider) as s:
        neither = await cli(s.base_url, "switch", "1")
        assert neither.exit_code == 2
        assert "--stream" in neither.output
        idle = await cli(s.base_url, "switch", "1", "--next")
        assert idle.exit_code == 1
        assert "404: channel 1 is not playing" in idle.output
        unpin = await cli(s.base_url, "unpin", "1")
        assert unpin.exit_code == 1
    gone = await cli(s.base_url, "unpin", "1")
    assert gone.exit_code == 1
    assert "cannot reach StreamForge" in gone.output

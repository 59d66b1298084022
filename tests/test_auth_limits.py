"""Request bodies are capped and authenticated before they are read; Argon2
verifies are limited, rate-limited per client and cached; forwarded headers
are believed only from trusted proxies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from streamforge.errors import ConfigError
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from streamforge.web.app import create_app
from streamforge.web.auth import AuthGate
from streamforge.web.limits import MAX_BODY_BYTES
from tests.conftest import ADMIN_PASSWORD
from tests.netutil import free_port

GOOD = ("admin", ADMIN_PASSWORD)
BAD = ("admin", "wrong-password")


def _client(app: FastAPI, host: str = "192.0.2.10") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(host, 40000)), base_url="http://sf"
    )


def _gate(app: FastAPI) -> AuthGate:
    gate = app.state.auth_gate
    assert isinstance(gate, AuthGate)
    return gate


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


def test_api_basic_is_rate_limited_and_then_the_right_password_waits(app: FastAPI) -> None:
    async def scenario() -> None:
        async with _client(app) as http:
            for _ in range(5):
                assert (await http.get("/api/v1/status", auth=BAD)).status_code == 401
            limited = await http.get("/api/v1/status", auth=BAD)
            assert limited.status_code == 429
            assert 1 <= int(limited.headers["Retry-After"]) <= 61
            assert "too many failed logins" in limited.json()["error"]
            # Brute force does not end with the right guess going through.
            assert (await http.get("/api/v1/status", auth=GOOD)).status_code == 429
        # Another address is not affected.
        async with _client(app, "192.0.2.11") as other:
            assert (await other.get("/api/v1/status", auth=GOOD)).status_code == 200

    asyncio.run(scenario())
    assert _gate(app).verifies == 6


def test_verified_credentials_are_cached(app: FastAPI) -> None:
    async def scenario() -> None:
        async with _client(app) as http:
            for _ in range(10):
                assert (await http.get("/api/v1/status", auth=GOOD)).status_code == 200

    asyncio.run(scenario())
    assert _gate(app).verifies == 1


def test_forty_concurrent_bad_clients_run_five_verifies(app: FastAPI) -> None:
    async def scenario() -> list[int]:
        async with _client(app) as http:
            answers = await asyncio.gather(
                *(http.get("/api/v1/status", auth=BAD) for _ in range(40)),
                http.get("/discover.json"),
            )
        return [a.status_code for a in answers]

    statuses = asyncio.run(scenario())
    assert statuses[-1] == 200
    assert sorted(statuses[:-1]) == [401] * 5 + [429] * 35
    assert _gate(app).verifies == 5


def test_forwarded_for_is_ignored_by_default(app: FastAPI) -> None:
    async def scenario() -> list[int]:
        async with _client(app, "127.0.0.1") as http:
            return [
                (
                    await http.get(
                        "/api/v1/status", auth=BAD, headers={"X-Forwarded-For": f"10.0.0.{i}"}
                    )
                ).status_code
                for i in range(7)
            ]

    assert asyncio.run(scenario()) == [401] * 5 + [429] * 2


def test_forwarded_for_is_believed_from_a_trusted_proxy(runtime: Runtime) -> None:
    settings = load_settings(
        data_dir=runtime.settings.data_dir,
        keyring=False,
        trusted_proxies="127.0.0.0/8, ::1",
    )
    proxied = Runtime.build(settings)
    app = create_app(proxied)

    async def scenario() -> tuple[list[int], int]:
        async with _client(app, "127.0.0.1") as http:
            spread = [
                (
                    await http.get(
                        "/api/v1/status",
                        auth=BAD,
                        headers={"X-Forwarded-For": f"198.51.100.{i}, 127.0.0.5"},
                    )
                ).status_code
                for i in range(7)
            ]
            # A client cannot slip past by adding its own X-Forwarded-For hop:
            # the right-most untrusted address is the one counted.
            same = 0
            for i in range(7):
                answer = await http.get(
                    "/api/v1/status",
                    auth=BAD,
                    headers={"X-Forwarded-For": f"10.9.9.{i}, 203.0.113.7"},
                )
                same += answer.status_code == 429
        return spread, same

    try:
        spread, limited = asyncio.run(scenario())
    finally:
        proxied.close()
    assert spread == [401] * 7
    assert limited == 2


def test_trusted_proxies_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"STREAMFORGE_TRUSTED_PROXIES: .*'not-an-ip'"):
        load_settings(trusted_proxies="10.0.0.0/8, not-an-ip")
    assert load_settings(trusted_proxies=" 10.0.0.1 ,fd00::/8").trusted_proxies == (
        "10.0.0.1,fd00::/8"
    )


@asynccontextmanager
async def _served(app: FastAPI) -> AsyncIterator[int]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.get_running_loop().create_task(server.serve(), name="test-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task


async def _raw(port: int, head: bytes) -> bytes:
    """Send only a request head (no body) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


def test_bodies_are_capped_and_not_read_before_auth(app: FastAPI) -> None:
    async def scenario() -> None:
        async with _served(app) as port:
            # A body announced but never sent: the answer comes without it.
            unauthenticated = await _raw(
                port,
                b"POST /api/v1/accounts HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
            )
            assert unauthenticated.startswith(b"HTTP/1.1 401"), unauthenticated
            huge = await _raw(
                port,
                b"POST /api/v1/accounts HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 209715200\r\n\r\n",
            )
            assert huge.startswith(b"HTTP/1.1 413"), huge

            async def chunks() -> AsyncIterator[bytes]:
                block = b" " * 65536
                for _ in range(MAX_BODY_BYTES // len(block) + 4):
                    yield block

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                streamed = await http.post(
                    "/api/v1/accounts",
                    auth=GOOD,
                    content=chunks(),
                    headers={"Content-Type": "application/json"},
                )
                assert streamed.status_code == 413, streamed.text
                assert "request body larger than 1024 KiB" in streamed.json()["error"]
                small = await http.post("/api/v1/accounts", auth=GOOD, json={"name": "x"})
                assert small.status_code == 422
                assert (await http.get("/healthz")).status_code == 200

    asyncio.run(scenario())


def test_login_form_shares_the_gate(app: FastAPI) -> None:
    async def scenario() -> None:
        async with _client(app) as http:
            page = await http.get("/ui/login")
            csrf = page.cookies["sf_login_csrf"]
            for _ in range(5):
                answer = await http.post(
                    "/ui/login", data={"password": "nope-nope", "csrf": csrf, "next": "/ui/"}
                )
                assert answer.status_code == 401
            assert (await http.get("/api/v1/status", auth=GOOD)).status_code == 429

    asyncio.run(scenario())

"""A whole StreamForge in-process against the mock provider, over real sockets.

``stack()`` builds a runtime on a temporary SQLite file, adds the demo
catalogue's accounts (alpha, beta) pointing at the running mock provider,
syncs them, imports alpha's own guide, runs matching, and serves the real
app with uvicorn on 127.0.0.1. ``order()`` pins a channel's streams to an
explicit failover order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn

from streamforge.mockprovider import MockProvider
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from streamforge.web.app import create_app
from tests.netutil import free_port

PACKET = 188


@dataclass
class Stack:
    runtime: Runtime
    base_url: str
    provider: MockProvider

    def guide_number(self, xmltv_id: str) -> str:
        view = self.runtime.channels.get(xmltv_id)
        assert view.guide_number is not None
        return view.guide_number

    def order(self, xmltv_id: str, streams: list[tuple[str, int]]) -> str:
        """Keep exactly ``streams`` ((account, provider stream_id)) behind the channel, in order."""
        view = self.runtime.channels.get(xmltv_id)
        wanted = []
        for account, stream_id in streams:
            match = [m for m in view.mappings if m.account == account and m.stream_id == stream_id]
            if match:
                wanted.append(match[0].xtream_channel_id)
            else:
                xid = self.xtream_id(account, stream_id)
                view = self.runtime.channels.map_add(xmltv_id, xid)
                wanted.append(xid)
        for mapping in self.runtime.channels.get(xmltv_id).mappings:
            if mapping.xtream_channel_id not in wanted:
                self.runtime.channels.map_remove(xmltv_id, mapping.xtream_channel_id)
        self.runtime.channels.reorder(xmltv_id, wanted)
        return self.guide_number(xmltv_id)

    def xtream_id(self, account: str, stream_id: int) -> int:
        from sqlalchemy import select

        from streamforge.db.models import Account, XtreamChannel

        with self.runtime.db.session() as session:
            found = session.scalar(
                select(XtreamChannel.id)
                .join(Account, Account.id == XtreamChannel.account_id)
                .where(Account.name == account, XtreamChannel.stream_id == stream_id)
            )
        assert found is not None, (account, stream_id)
        return int(found)


@contextlib.asynccontextmanager
async def stack(data_dir: Path, provider: MockProvider, **overrides: Any) -> AsyncIterator[Stack]:
    settings = load_settings(
        data_dir=data_dir,
        keyring=False,
        discovery_enabled=False,
        ssdp_enabled=False,
        host="127.0.0.1",
        port=free_port(),
        **overrides,
    )
    runtime = Runtime.build(settings)
    runtime.auth.set_password("test-admin-password")
    for name, secret in (("alpha", "alpha-secret"), ("beta", "beta-secret")):
        result = await runtime.accounts.add(
            name, server_url=provider.base_url, username=name, password=secret
        )
        assert result.ok, result.message
        await runtime.channel_sync.sync(name)
    runtime.epg.add("alpha-guide", from_account="alpha")
    await runtime.epg.refresh("alpha-guide")
    await asyncio.to_thread(runtime.matching.run)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime),
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve(), name="test-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield Stack(runtime, f"http://127.0.0.1:{settings.port}", provider)
    finally:
        server.should_exit = True
        await runtime.streams.close()
        await task
        runtime.close()


class StreamClient:
    """Reads a tuned channel over HTTP and keeps everything it received."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url
        self.data = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.ended = asyncio.Event()
        self.changed = asyncio.Event()
        self.arrivals: list[float] = []
        """Loop time of every chunk received."""
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._response: aiohttp.ClientResponse | None = None
        self.opened = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="test-client")

    async def _run(self) -> None:
        try:
            async with self._http.get(self._url) as response:
                self._response = response
                self.status = response.status
                self.headers = dict(response.headers)
                self.opened.set()
                loop = asyncio.get_running_loop()
                async for chunk in response.content.iter_any():
                    self.data += chunk
                    self.arrivals.append(loop.time())
                    self.changed.set()
        except aiohttp.ClientError as exc:
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()
            self.changed.set()

    async def wait_bytes(self, count: int, within: float = 15.0) -> None:
        """Wait until at least ``count`` bytes arrived in total."""
        async with asyncio.timeout(within):
            while len(self.data) < count:
                if self.ended.is_set():
                    raise AssertionError(f"stream ended after {len(self.data)} bytes")
                self.changed.clear()
                await self.changed.wait()

    def longest_gap(self, since: float) -> float:
        """The longest wait in seconds between two chunks received after ``since``."""
        times = [t for t in self.arrivals if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def wait_until(predicate: Any, within: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``predicate()`` until true (a condition, not a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def whole_packets(data: bytes) -> bool:
    if len(data) % PACKET:
        return False
    return all(data[i] == 0x47 for i in range(0, len(data), PACKET))

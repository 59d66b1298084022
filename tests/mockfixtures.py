"""Shared fixtures and helpers for tests that need the mock Xtream provider.

``tests/conftest.py`` imports the fixtures, so every test module can use them
(``make_mock_provider`` must be imported there too before other modules use it).

``mock_media`` encodes the test media once per session into a temporary directory
(``STREAMFORGE_MOCK_MEDIA_CACHE`` overrides it, e.g. to reuse encodes across runs).
``mock_provider`` is a running :class:`MockProvider` over ``Catalog.demo()`` on
127.0.0.1; ``mock_provider_thread`` the same for synchronous tests;
``make_mock_provider`` starts further providers (own catalogue, own port).

:class:`RawStream` is a tiny HTTP/1.1 client on a bare socket, for tests that must
see exactly what the wire does (a reset, an EOF, a stall with the socket still open).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from streamforge.mockprovider import Catalog, MediaLibrary, MockProvider, MockProviderThread
from streamforge.mockprovider.media import TS_PACKET, ClipVariant


@pytest.fixture(scope="session")
def mock_media(tmp_path_factory: pytest.TempPathFactory) -> MediaLibrary:
    """Every default media profile, encoded once per test session."""
    env = os.environ.get("STREAMFORGE_MOCK_MEDIA_CACHE")
    # One directory per session, shared even when several modules import this
    # fixture, and by the parallel workers of one run (each worker's base temp
    # is a child of the run's; cache files are renamed into place, so a clip
    # two workers encode at once is simply encoded twice).
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cache = Path(env) if env else base / "mock-media"
    library = MediaLibrary(cache)
    with ThreadPoolExecutor(max_workers=len(library.profiles)) as pool:
        list(pool.map(library.load_sync, library.profiles))
    return library


@pytest.fixture
async def mock_provider(mock_media: MediaLibrary) -> AsyncIterator[MockProvider]:
    """A running mock provider with the demo catalogue on 127.0.0.1."""
    async with MockProvider(Catalog.demo(), host="127.0.0.1", port=0, media=mock_media) as mp:
        yield mp


MockProviderFactory = Callable[..., Awaitable[MockProvider]]


@pytest.fixture
async def make_mock_provider(mock_media: MediaLibrary) -> AsyncIterator[MockProviderFactory]:
    """Start extra providers: ``await make_mock_provider(catalog, limit_mode=...)``.

    Each one listens on its own 127.0.0.1 port (like separate real providers) and
    shares the session's media; all are closed when the test ends.
    """
    started: list[MockProvider] = []

    async def make(catalog: Catalog | None = None, **kwargs: Any) -> MockProvider:
        provider = MockProvider(catalog, host="127.0.0.1", port=0, media=mock_media, **kwargs)
        await provider.start()
        started.append(provider)
        return provider

    try:
        yield make
    finally:
        for provider in reversed(started):
            await provider.close()


@pytest.fixture
def mock_provider_thread(mock_media: MediaLibrary) -> Iterator[MockProviderThread]:
    """The demo mock provider on a background thread, for synchronous tests."""
    with MockProviderThread(Catalog.demo(), host="127.0.0.1", port=0, media=mock_media) as mp:
        yield mp


@dataclass
class RawStream:
    """An HTTP GET on a bare socket: status line and headers parsed, body left raw."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]

    @classmethod
    async def open(cls, url: str, header_wait: float = 10.0) -> RawStream:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        reader, writer = await asyncio.open_connection(host, parts.port or 80)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(header_wait):
            head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        return cls(reader, writer, status, headers)

    async def read_for(self, seconds: float, limit: int = 1 << 30) -> bytes:
        """Read whatever arrives within ``seconds`` (stops early at EOF or ``limit``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        data = bytearray()
        while len(data) < limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    chunk = await self.reader.read(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        return bytes(data)

    async def read_until_closed(self, within: float) -> str:
        """Drain until the server ends the connection: ``"eof"`` or ``"reset"``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("connection still open")
            try:
                async with asyncio.timeout(remaining):
                    chunk = await self.reader.read(65536)
            except ConnectionResetError:
                return "reset"
            if not chunk:
                return "eof"

    async def close(self) -> None:
        self.writer.close()
        # The server may already have reset the connection.
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def dechunk(raw: bytes) -> bytes:
    """Decode an HTTP/1.1 chunked body (complete chunks only)."""
    out = bytearray()
    pos = 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            break
        size = int(raw[pos:end].split(b";")[0] or b"0", 16)
        start = end + 2
        if size == 0 or start + size > len(raw):
            out += raw[start : start + size] if size else b""
            break
        out += raw[start : start + size]
        pos = start + size + 2
    return bytes(out)


def psi(data: bytes) -> tuple[int, int, set[int]]:
    """(program number, PMT PID, elementary PIDs) from the first PAT and PMT in ``data``."""
    program = pmt_pid = -1
    for i in range(0, len(data), TS_PACKET):
        pkt = data[i : i + TS_PACKET]
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        if not pkt[1] & 0x40:
            continue
        start = 4 + (pkt[4] + 1 if pkt[3] & 0x20 else 0)
        section = pkt[start + 1 + pkt[start] :]
        if pid == 0 and program < 0:
            program = (section[8] << 8) | section[9]
            pmt_pid = ((section[10] & 0x1F) << 8) | section[11]
        elif pid == pmt_pid:
            length = ((section[1] & 0x0F) << 8) | section[2]
            info_len = ((section[10] & 0x0F) << 8) | section[11]
            pos = 12 + info_len
            end = 3 + length - 4
            pids = set()
            while pos < end:
                pids.add(((section[pos + 1] & 0x1F) << 8) | section[pos + 2])
                pos += 5 + (((section[pos + 3] & 0x0F) << 8) | section[pos + 4])
            return program, pmt_pid, pids
    raise AssertionError("no PAT/PMT found")


def cc_errors(data: bytes) -> int:
    """Continuity-counter errors over payload-carrying packets (null packets ignored)."""
    last: dict[int, int] = {}
    errors = 0
    for i in range(0, len(data), TS_PACKET):
        pkt = data[i : i + TS_PACKET]
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        if pid == 0x1FFF or not pkt[3] & 0x10:
            continue
        cc = pkt[3] & 0x0F
        if pid in last and cc != (last[pid] + 1) & 0x0F:
            errors += 1
        last[pid] = cc
    return errors


@pytest.fixture(scope="session")
def mock_fault_media(mock_media: MediaLibrary) -> MediaLibrary:
    """``mock_media`` plus the media-fault variants (black, frozen, card, silent) of ``sd``."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda v: mock_media.load_sync("sd", v), list(ClipVariant)))
    return mock_media


def pes_timestamps(data: bytes) -> list[tuple[int, int, int]]:
    """``(packet index, PID, PTS)`` of every PES header carrying a PTS in ``data``."""
    found = []
    for n in range(len(data) // TS_PACKET):
        pkt = data[n * TS_PACKET : (n + 1) * TS_PACKET]
        if not pkt[1] & 0x40 or not pkt[3] & 0x10:
            continue
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        pos = 4 + (pkt[4] + 1 if pkt[3] & 0x20 else 0)
        if pid in (0, 0x1FFF) or pkt[pos : pos + 3] != b"\x00\x00\x01" or pos + 14 > TS_PACKET:
            continue
        if pkt[pos + 7] & 0x80:
            b = pkt[pos + 9 : pos + 14]
            pts = ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
            found.append((n, pid, pts))
    return found


def pcr_seconds(data: bytes) -> list[tuple[int, float]]:
    """``(packet index, PCR in seconds)`` of every PCR in ``data`` (base only, no wrap)."""
    found = []
    for n in range(len(data) // TS_PACKET):
        pkt = data[n * TS_PACKET : (n + 1) * TS_PACKET]
        if pkt[3] & 0x20 and pkt[4] > 0 and pkt[5] & 0x10:
            b = pkt[6:11]
            base = b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7
            found.append((n, base / 90_000))
    return found


def pids_in(data: bytes) -> set[int]:
    """Every PID that occurs in ``data``."""
    return {((data[i + 1] & 0x1F) << 8) | data[i + 2] for i in range(0, len(data), TS_PACKET)}

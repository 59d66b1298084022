"""UpstreamReader: every way a provider stream dies becomes one FailureReason.

Most cases are driven through the provider HTTP seam's in-process handler
(``ProviderHttp(handler=...)``), which goes through exactly the same
timeouts, redirect rule and failure classification as the network. The
timeouts, refusals and teardown are also exercised on real loopback sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from streamforge.streaming.reasons import FailureReason, UpstreamFailure
from streamforge.streaming.upstream import GARBAGE_LIMIT, UpstreamConfig, UpstreamReader
from streamforge.tasks import TaskOwner
from streamforge.xtream.http import HttpReply, HttpRequest, ProviderHttp
from tests.netutil import free_port

FAST = UpstreamConfig(connect_timeout=0.5, header_timeout=0.5, stall_timeout=0.3)
URL = "http://panel.example:8080/live/stream-user/stream-pass/7.ts"


def ts(packets: int, marker: int = 0) -> bytes:
    """``packets`` null packets whose payload starts with ``marker``."""
    return (b"\x47\x1f\xff\x10" + marker.to_bytes(4, "big") + b"\xff" * 180) * packets


@dataclass
class Collector:
    opened: int = 0
    data: bytearray = field(default_factory=bytearray)
    grew: asyncio.Event = field(default_factory=asyncio.Event)

    def on_open(self) -> None:
        self.opened += 1

    def on_data(self, chunk: bytes) -> None:
        self.data += chunk
        self.grew.set()

    async def wait_for(self, size: int) -> None:
        async with asyncio.timeout(10):
            while len(self.data) < size:
                self.grew.clear()
                await self.grew.wait()


async def fail(
    http: ProviderHttp | aiohttp.ClientSession,
    url: str = URL,
    config: UpstreamConfig = FAST,
    collector: Collector | None = None,
    user_agent: str | None = None,
) -> UpstreamFailure:
    """Run a reader to its end and return the failure it ended with."""
    sink = collector or Collector()
    reader = UpstreamReader(http, url, config, user_agent=user_agent)
    with pytest.raises(UpstreamFailure) as info:
        await reader.run(sink.on_open, sink.on_data)
    assert "stream-pass" not in str(info.value)
    assert "stream-user" not in str(info.value)
    return info.value


def answering(reply: HttpReply) -> ProviderHttp:
    return ProviderHttp(handler=lambda _request: reply)


def raising(exc: BaseException) -> ProviderHttp:
    def handler(_request: HttpRequest) -> HttpReply:
        raise exc

    return ProviderHttp(handler=handler)


async def body(*parts: bytes | BaseException | asyncio.Event) -> AsyncIterator[bytes]:
    """A body that yields bytes, raises an exception or waits on an event, in order."""
    for part in parts:
        if isinstance(part, BaseException):
            raise part
        if isinstance(part, asyncio.Event):
            await part.wait()
        else:
            yield part


# -- connecting ------------------------------------------------------------------------


async def test_refused_connection_is_a_connection_error() -> None:
    failure = await fail(raising(ConnectionRefusedError(111, "Connection refused")))
    assert failure.reason is FailureReason.CONNECTION_ERROR
    assert "connection refused" in failure.detail


async def test_refused_on_a_real_socket_is_a_connection_error() -> None:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{free_port()}/live/stream-user/stream-pass/7.ts"
        failure = await fail(http, url)
    assert failure.reason is FailureReason.CONNECTION_ERROR


async def test_connect_timeout_from_the_transport_is_not_a_header_timeout() -> None:
    failure = await fail(raising(aiohttp.ConnectionTimeoutError("connect timed out")))
    assert failure.reason is FailureReason.CONNECT_TIMEOUT


async def test_connect_timeout_on_a_full_listen_backlog() -> None:
    # A listener with backlog 0 whose only queue slot is taken by a connection it
    # never accepts: the kernel drops further SYNs, so a connect can only time out.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.setblocking(False)
        await asyncio.get_running_loop().sock_connect(filler, listener.getsockname())
        port = listener.getsockname()[1]
        url = f"http://127.0.0.1:{port}/live/stream-user/stream-pass/7.ts"
        config = UpstreamConfig(connect_timeout=0.3, header_timeout=5.0, stall_timeout=1.0)
        async with aiohttp.ClientSession() as http:
            failure = await fail(http, url, config)
    assert failure.reason is FailureReason.CONNECT_TIMEOUT


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A loopback server that accepts, reads the request and never answers."""
    asked = asyncio.Event()
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            asked.set()
            await release.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        async with server:
            yield server.sockets[0].getsockname()[1], asked
    finally:
        release.set()


async def test_header_timeout_on_a_server_that_never_answers() -> None:
    async with silent_server() as (port, asked), aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}/live/stream-user/stream-pass/7.ts"
        failure = await fail(http, url)
        assert asked.is_set()
    assert failure.reason is FailureReason.HEADER_TIMEOUT


async def test_header_timeout_through_the_handler() -> None:
    never = asyncio.Event()

    async def handler(_request: HttpRequest) -> HttpReply:
        await never.wait()
        return HttpReply()

    failure = await fail(ProviderHttp(handler=handler))
    assert failure.reason is FailureReason.HEADER_TIMEOUT


# -- status ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, FailureReason.CREDENTIAL_ERROR),
        (403, FailureReason.CREDENTIAL_ERROR),
        (404, FailureReason.HTTP_ERROR),
        (458, FailureReason.HTTP_ERROR),
        (503, FailureReason.HTTP_ERROR),
    ],
)
async def test_error_status(status: int, reason: FailureReason) -> None:
    failure = await fail(answering(HttpReply(status, body=b"nope")))
    assert failure.reason is reason
    assert failure.status == status
    assert f"HTTP {status}" in failure.detail


# -- content ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        pytest.param(
            HttpReply(headers={"Content-Type": "text/html"}, body=b"<html>banned</html>"),
            "text/html",
            id="html-type",
        ),
        pytest.param(
            HttpReply(headers={"Content-Type": "video/mp2t"}, body=b"<!DOCTYPE html><p>x</p>"),
            "document",
            id="html-body",
        ),
        pytest.param(
            HttpReply(headers={"Content-Type": "application/json"}, body=b'{"user_info":{}}'),
            "application/json",
            id="json-type",
        ),
        pytest.param(
            HttpReply(headers={"Content-Type": "video/mp2t"}, body=b'{"error": "limit"}'),
            "document",
            id="json-body",
        ),
        pytest.param(HttpReply(body=b""), "empty", id="empty"),
        pytest.param(HttpReply(body=bytes(range(256)) * 8), "not MPEG-TS", id="not-ts"),
    ],
)
async def test_invalid_content_is_rejected_before_any_byte_is_delivered(
    reply: HttpReply, needle: str
) -> None:
    collector = Collector()
    failure = await fail(answering(reply), collector=collector)
    assert failure.reason is FailureReason.INVALID_CONTENT
    assert needle in failure.detail
    assert collector.opened == 0
    assert collector.data == b""


async def test_garbage_mid_stream_is_invalid_content() -> None:
    good = ts(20)
    junk = b"\x00" * (188 * 10)
    reply = HttpReply(body=body(good, *([junk] * (GARBAGE_LIMIT // len(junk) + 1))))
    collector = Collector()
    failure = await fail(answering(reply), collector=collector)
    assert failure.reason is FailureReason.INVALID_CONTENT
    assert "started sending bytes that are not MPEG-TS" in failure.detail
    assert collector.opened == 1
    assert collector.data.startswith(good)


async def test_short_garbage_bursts_are_tolerated_until_the_stream_ends() -> None:
    reply = HttpReply(body=body(ts(20), b"\x00" * 1000, ts(20, 1)))
    collector = Collector()
    failure = await fail(answering(reply), collector=collector)
    assert failure.reason is FailureReason.END_OF_STREAM
    assert len(collector.data) == 2 * len(ts(20)) + 1000


# -- while streaming ---------------------------------------------------------------------


async def test_end_of_stream() -> None:
    collector = Collector()
    reader = UpstreamReader(answering(HttpReply(body=body(ts(7), ts(50, 1)))), URL, FAST)
    with pytest.raises(UpstreamFailure) as info:
        await reader.run(collector.on_open, collector.on_data)
    assert info.value.reason is FailureReason.END_OF_STREAM
    assert reader.status == 200
    assert reader.bytes_read == len(collector.data) == 57 * 188
    assert collector.opened == 1


async def test_stall() -> None:
    never = asyncio.Event()
    collector = Collector()
    failure = await fail(answering(HttpReply(body=body(ts(30), never))), collector=collector)
    assert failure.reason is FailureReason.STALL
    assert "0.3 s" in failure.detail
    assert len(collector.data) == 30 * 188


async def test_stall_before_the_first_bytes() -> None:
    never = asyncio.Event()
    failure = await fail(answering(HttpReply(body=body(never))))
    assert failure.reason is FailureReason.STALL


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConnectionResetError(104, "Connection reset by peer"), id="reset"),
        pytest.param(aiohttp.ClientPayloadError("transfer broken"), id="payload"),
        pytest.param(aiohttp.ServerDisconnectedError(), id="disconnected"),
    ],
)
async def test_read_error(error: BaseException) -> None:
    collector = Collector()
    failure = await fail(answering(HttpReply(body=body(ts(30), error))), collector=collector)
    assert failure.reason is FailureReason.READ_ERROR
    assert len(collector.data) == 30 * 188


# -- requests and redirects --------------------------------------------------------------


@dataclass
class Panel:
    """A handler that redirects ``/live/...`` to ``/moved/...`` and serves TS there."""

    seen: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    hops: int = 1

    async def __call__(self, request: HttpRequest) -> HttpReply:
        self.seen.append(request.url.path)
        self.agents.append(request.headers.get("User-Agent", ""))
        self.headers.append(dict(request.headers))
        depth = self.seen.count(request.url.path)
        if request.url.path.startswith("/live/"):
            return HttpReply(302, {"Location": "/moved/0/7.ts"})
        hop = int(request.url.path.split("/")[2])
        if hop + 1 < self.hops:
            return HttpReply(307, {"Location": f"../{hop + 1}/7.ts"})
        return HttpReply(headers={"Content-Type": "video/mp2t"}, body=ts(10, depth))


async def test_redirects_are_followed_and_never_cached() -> None:
    panel = Panel(hops=2)
    http = ProviderHttp(handler=panel)
    for _ in range(2):
        failure = await fail(http)
        assert failure.reason is FailureReason.END_OF_STREAM
    start = "/live/stream-user/stream-pass/7.ts"
    assert panel.seen == [start, "/moved/0/7.ts", "/moved/1/7.ts"] * 2


async def test_too_many_redirects_is_an_http_error() -> None:
    panel = Panel(hops=50)
    failure = await fail(ProviderHttp(handler=panel))
    assert failure.reason is FailureReason.HTTP_ERROR
    assert failure.status == 310
    assert len(panel.seen) == 6  # the request and five redirects


async def test_user_agent_and_headers() -> None:
    panel = Panel()
    await fail(ProviderHttp(handler=panel), user_agent="TiviMate/4.7.0")
    await fail(ProviderHttp(handler=panel))
    assert panel.agents == ["TiviMate/4.7.0"] * 2 + [FAST.user_agent] * 2
    assert all(h["Connection"] == "close" and h["Accept"] == "*/*" for h in panel.headers)


# -- HLS hand-off -------------------------------------------------------------------------

PLAYLIST = (
    "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:4\n"
    "#EXTINF:1.0,\nseg/4.ts\n#EXTINF:1.0,\nseg/5.ts\n#EXT-X-ENDLIST\n"
)


def hls_panel(content_type: str, seen: list[str]) -> Callable[[HttpRequest], Awaitable[HttpReply]]:
    async def handler(request: HttpRequest) -> HttpReply:
        path = request.url.path
        seen.append(path)
        if path.startswith("/live/"):
            return HttpReply(302, {"Location": "/hls/index.m3u8"})
        if path == "/hls/index.m3u8":
            return HttpReply(headers={"Content-Type": content_type}, body=PLAYLIST.encode())
        number = int(path.rsplit("/", 1)[1].split(".")[0])
        return HttpReply(headers={"Content-Type": "video/mp2t"}, body=ts(5, number))

    return handler


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/vnd.apple.mpegurl", id="by-type"),
        pytest.param("video/mp2t", id="by-body"),
    ],
)
async def test_a_playlist_answer_is_handed_to_the_hls_reader(content_type: str) -> None:
    seen: list[str] = []
    collector = Collector()
    failure = await fail(ProviderHttp(handler=hls_panel(content_type, seen)), collector=collector)
    assert failure.reason is FailureReason.END_OF_STREAM
    assert "HLS playlist ended" in failure.detail
    # Segment URIs resolve against the final (redirected) playlist URL.
    assert seen[-2:] == ["/hls/seg/4.ts", "/hls/seg/5.ts"]
    assert collector.opened == 1
    assert collector.data == ts(5, 4) + ts(5, 5)


async def test_an_oversized_playlist_is_invalid_content() -> None:
    huge = HttpReply(
        headers={"Content-Type": "application/x-mpegurl"},
        body=body(b"#EXTM3U\n", *([b"#" * 65536] * 17)),
    )
    failure = await fail(answering(huge))
    assert failure.reason is FailureReason.INVALID_CONTENT
    assert "too large" in failure.detail


# -- a real socket, torn down ------------------------------------------------------------


async def test_cancelling_a_reader_closes_its_provider_connection() -> None:
    closed = asyncio.Event()
    connected = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        connected.set()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + ts(100))
        await writer.drain()
        # The client sends nothing more: the next read ends only when it hangs up.
        with contextlib.suppress(ConnectionError):
            await reader.read()
        closed.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    owner = TaskOwner("test-upstream")
    collector = Collector()
    async with server, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}/live/stream-user/stream-pass/7.ts"
        reader = UpstreamReader(http, url, UpstreamConfig(stall_timeout=30.0))
        task = owner.spawn(reader.run(collector.on_open, collector.on_data), "reader")
        await collector.wait_for(188 * 100)
        assert connected.is_set()
        assert not closed.is_set()
        await owner.close()
        assert task.cancelled()
        async with asyncio.timeout(5):
            await closed.wait()
    assert collector.opened == 1


# -- steady-state reads --------------------------------------------------------------------


async def test_steady_reads_coalesce_what_a_pacing_provider_sends() -> None:
    """A provider writing 7 packets every 20 ms: the first ``steady_after`` seconds
    are passed on as they arrive, then one piece per ``coalesce_seconds``."""
    from aiohttp import web

    writes = 60
    done = asyncio.Event()

    async def live(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp2t"})
        await response.prepare(request)
        for n in range(writes):
            await response.write(ts(7, n))
            await asyncio.sleep(0.02)
        await done.wait()
        return response

    app = web.Application()
    app.router.add_get("/live/u/p/1.ts", live)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    arrivals: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()
    collector = Collector()

    def on_data(chunk: bytes) -> None:
        arrivals.append((loop.time(), len(chunk)))
        collector.on_data(chunk)

    config = UpstreamConfig(stall_timeout=5.0, coalesce_seconds=0.1, steady_after=0.3)
    try:
        async with aiohttp.ClientSession() as session:
            reader = UpstreamReader(session, f"http://127.0.0.1:{port}/live/u/p/1.ts", config)
            task = asyncio.create_task(reader.run(collector.on_open, on_data), name="reader")
            await collector.wait_for(writes * 7 * 188)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        done.set()
        await runner.cleanup()
    # every byte, in order
    expected = b"".join(ts(7, n) for n in range(writes))
    assert bytes(collector.data) == expected
    start = arrivals[0][0]
    early = [a for a in arrivals if a[0] - start < 0.25]
    late = [a for a in arrivals if a[0] - start > 0.45]
    assert len(early) >= 8  # as they arrive: about one per write
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(late)]
    assert gaps
    assert min(gaps) >= 0.09
    assert sum(size for _, size in late) / len(late) >= 3 * 7 * 188

"""HLS upstreams read into one continuous TS byte stream, against a small
live HLS server on 127.0.0.1 (sliding window, master playlist, faults)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from streamforge.streaming.hls import choose_variant, parse_master, parse_media
from streamforge.streaming.reasons import FailureReason, UpstreamFailure
from streamforge.streaming.upstream import UpstreamConfig, UpstreamReader
from streamforge.xtream.http import HttpReply, HttpRequest, ProviderHttp

SEGMENT_SECONDS = 0.4


def segment_bytes(n: int) -> bytes:
    """Five null packets whose payload starts with the segment number."""
    packet = b"\x47\x1f\xff\x10" + n.to_bytes(4, "big") + b"\xff" * 180
    return packet * 5


def number_of(packet: bytes | bytearray) -> int:
    return int.from_bytes(packet[4:8], "big")


@dataclass
class LiveHls:
    started: float = 0.0
    frozen_at: int | None = None
    playlist_status: int = 200
    segment_status: int = 200
    garbage: bool = False
    ended: bool = False
    fetched: list[str] = field(default_factory=list)

    def head(self) -> int:
        now = asyncio.get_running_loop().time()
        current = 10 + int((now - self.started) / SEGMENT_SECONDS)
        return current if self.frozen_at is None else min(current, self.frozen_at)

    async def master(self, _request: web.Request) -> web.Response:
        return web.Response(
            text="#EXTM3U\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=320x240\nlow.m3u8\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=640x360\nhigh.m3u8\n",
            content_type="application/vnd.apple.mpegurl",
        )

    async def media(self, request: web.Request) -> web.Response:
        variant = request.match_info["variant"]
        if self.playlist_status != 200:
            return web.Response(status=self.playlist_status)
        head = self.head()
        first = head - 3
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for n in range(first, head + 1):
            lines += [f"#EXTINF:{SEGMENT_SECONDS},", f"seg/{variant}/{n}.ts"]
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return web.Response(
            text="\n".join(lines) + "\n", content_type="application/vnd.apple.mpegurl"
        )

    async def segment(self, request: web.Request) -> web.Response:
        self.fetched.append(request.path)
        if self.segment_status != 200:
            return web.Response(status=self.segment_status)
        if self.garbage:
            return web.Response(body=b"<html>" + b"x" * 2000, content_type="video/mp2t")
        n = int(request.match_info["n"])
        return web.Response(body=segment_bytes(n), content_type="video/mp2t")

    async def redirect(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound("/hls/master.m3u8")


@contextlib.asynccontextmanager
async def hls_server() -> AsyncIterator[tuple[LiveHls, str]]:
    live = LiveHls(started=asyncio.get_running_loop().time())
    app = web.Application()
    app.router.add_get("/live/u/p/7.ts", live.redirect)
    app.router.add_get("/hls/master.m3u8", live.master)
    app.router.add_get("/hls/{variant}.m3u8", live.media)
    app.router.add_get("/hls/seg/{variant}/{n}.ts", live.segment)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield live, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class Collector:
    def __init__(self) -> None:
        self.data = bytearray()
        self.opened = 0
        self.grew = asyncio.Event()

    def on_open(self) -> None:
        self.opened += 1

    def on_data(self, chunk: bytes) -> None:
        self.data += chunk
        self.grew.set()

    def numbers(self) -> list[int]:
        return [number_of(self.data[i : i + 188]) for i in range(0, len(self.data), 188 * 5)]


async def _read(url: str, collector: Collector) -> UpstreamFailure:
    async with aiohttp.ClientSession() as http:
        reader = UpstreamReader(http, url, UpstreamConfig(stall_timeout=1.0))
        with pytest.raises(UpstreamFailure) as info:
            await reader.run(collector.on_open, collector.on_data)
        return info.value


def test_playlist_parsing() -> None:
    variants = parse_master(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=10x20\na\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=5,CODECS="x,y",RESOLUTION=40x720\nb\n'
    )
    assert choose_variant(variants).uri == "b"
    assert choose_variant(variants, max_height=480).uri == "a"
    media = parse_media(
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n"
        "#EXTINF:4.0,\ns7.ts\n#EXTINF:3.5,\ns8.ts\n#EXT-X-ENDLIST\n"
    )
    assert [(s.sequence, s.uri, s.duration) for s in media.segments] == [
        (7, "s7.ts", 4.0),
        (8, "s8.ts", 3.5),
    ]
    assert media.ended


async def test_redirect_to_master_plays_the_best_variant_in_order() -> None:
    async with hls_server() as (live, base):
        collector = Collector()
        async with aiohttp.ClientSession() as http:
            reader = UpstreamReader(http, f"{base}/live/u/p/7.ts", UpstreamConfig())
            task = asyncio.get_running_loop().create_task(
                reader.run(collector.on_open, collector.on_data), name="test-hls"
            )
            try:
                async with asyncio.timeout(15):
                    while len(collector.numbers()) < 8:
                        collector.grew.clear()
                        await collector.grew.wait()
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, UpstreamFailure):
                    await task
        numbers = collector.numbers()
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # no dup, no gap
        assert collector.opened == 1
        assert all("/seg/high/" in path for path in live.fetched)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("playlist_404", FailureReason.HTTP_ERROR),
        ("playlist_403", FailureReason.CREDENTIAL_ERROR),
        ("segment_500", FailureReason.HTTP_ERROR),
        ("stale", FailureReason.STALL),
        ("garbage", FailureReason.INVALID_CONTENT),
        ("ended", FailureReason.END_OF_STREAM),
    ],
)
async def test_hls_failures_are_failover_reasons(fault: str, reason: FailureReason) -> None:
    async with hls_server() as (live, base):
        collector = Collector()
        task = asyncio.get_running_loop().create_task(
            _read(f"{base}/hls/master.m3u8", collector), name="test-hls-fault"
        )
        if fault not in {"garbage", "ended"}:
            async with asyncio.timeout(10):
                while len(collector.numbers()) < 3:
                    collector.grew.clear()
                    await collector.grew.wait()
        if fault == "playlist_404":
            live.playlist_status = 404
        elif fault == "playlist_403":
            live.playlist_status = 403
        elif fault == "segment_500":
            live.segment_status = 500
        elif fault == "stale":
            live.frozen_at = live.head()
        elif fault == "garbage":
            live.garbage = True
        else:
            live.ended = True
        failure = await asyncio.wait_for(task, 10)
        assert failure.reason is reason, failure


async def test_playlists_and_segments_go_through_the_seam_with_the_readers_user_agent() -> None:
    agents: dict[str, str] = {}

    def handler(request: HttpRequest) -> HttpReply:
        agents[request.url.path] = request.headers["User-Agent"]
        if request.url.path == "/live/u/p/7.ts":
            return HttpReply(302, {"Location": "/hls/master.m3u8"})
        if request.url.path == "/hls/master.m3u8":
            return HttpReply(body=b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv/index.m3u8\n")
        if request.url.path == "/hls/v/index.m3u8":
            return HttpReply(
                headers={"Content-Type": "application/vnd.apple.mpegurl"},
                body=b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n3.ts\n#EXT-X-ENDLIST\n",
            )
        return HttpReply(body=segment_bytes(3))

    collector = Collector()
    reader = UpstreamReader(
        ProviderHttp(handler=handler),
        "http://panel.example/live/u/p/7.ts",
        UpstreamConfig(stall_timeout=1.0),
        user_agent="TiviMate/4.7.0",
    )
    with pytest.raises(UpstreamFailure) as info:
        await reader.run(collector.on_open, collector.on_data)
    assert info.value.reason is FailureReason.END_OF_STREAM
    assert collector.numbers() == [3]
    assert agents == dict.fromkeys(
        ["/live/u/p/7.ts", "/hls/master.m3u8", "/hls/v/index.m3u8", "/hls/v/3.ts"],
        "TiviMate/4.7.0",
    )


async def test_a_variant_playlist_that_stalls_is_a_stall() -> None:
    never = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"#EXTM3U\n"
        await never.wait()

    def handler(request: HttpRequest) -> HttpReply:
        if request.url.path == "/hls/master.m3u8":
            return HttpReply(body=b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n")
        return HttpReply(body=stalled())

    reader = UpstreamReader(
        ProviderHttp(handler=handler),
        "http://panel.example/hls/master.m3u8",
        UpstreamConfig(stall_timeout=0.3),
    )
    collector = Collector()
    with pytest.raises(UpstreamFailure) as info:
        await reader.run(collector.on_open, collector.on_data)
    assert info.value.reason is FailureReason.STALL
    assert "variant playlist stalled" in info.value.detail

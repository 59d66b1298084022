"""Mock provider live streams over real sockets: media, pacing, faults, limits, counters."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

import aiohttp
import av
import pytest

from streamforge.mockprovider import (
    Catalog,
    Fault,
    FaultKind,
    LimitMode,
    MediaLibrary,
    MockProvider,
    ProviderStats,
)
from streamforge.mockprovider.media import TS_PACKET, pts_offset_for
from tests import mockfixtures
from tests.mockfixtures import MockProviderFactory, RawStream, dechunk, psi

# Not (yet) imported by conftest.py.
make_mock_provider = mockfixtures.make_mock_provider


def streaming(stream_id: int, count: int = 1) -> Callable[[ProviderStats], bool]:
    def check(s: ProviderStats) -> bool:
        return sum(1 for c in s.open if c.stream_id == stream_id and c.streaming) >= count

    return check


def all_closed(s: ProviderStats) -> bool:
    return s.open_connections() == 0


async def read_bytes(resp: aiohttp.ClientResponse, n: int, within: float = 10.0) -> bytes:
    data = bytearray()
    async with asyncio.timeout(within):
        while len(data) < n:
            chunk = await resp.content.read(65536)
            if not chunk:
                break
            data += chunk
    return bytes(data)


async def quiet_for(raw: RawStream, quiet: float, within: float) -> bytes:
    """Read until nothing has arrived for ``quiet`` seconds; fail after ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    got = bytearray()
    while loop.time() < deadline:
        chunk = await raw.read_for(quiet)
        if not chunk:
            return bytes(got)
        got += chunk
    raise AssertionError("stream never went quiet")


# --------------------------------------------------------------------------- media


async def test_served_ts_decodes_as_h264_and_aac(mock_provider: MockProvider) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(mock_provider.stream_url(101)) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "video/mp2t"
        data = await read_bytes(resp, 400_000)
    with av.open(io.BytesIO(data), format="mpegts") as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        assert kinds == {"video": "h264", "audio": "aac"}
        frames = [f for _, f in zip(range(10), container.decode(video=0), strict=False)]
    assert len(frames) == 10
    assert (frames[0].width, frames[0].height) == (640, 360)
    await mock_provider.wait_for(all_closed)


async def test_streams_differ_in_program_pids_and_resolution(mock_provider: MockProvider) -> None:
    seen = {}
    async with aiohttp.ClientSession() as session:
        for stream_id in (101, 102, 201):
            async with session.get(mock_provider.stream_url(stream_id)) as resp:
                data = await read_bytes(resp, 200_000)
            program, pmt, pids = psi(data)
            with av.open(io.BytesIO(data), format="mpegts") as container:
                frame = next(container.decode(video=0))
            seen[stream_id] = (program, pmt, frozenset(pids), (frame.width, frame.height))
    assert len({v[0] for v in seen.values()}) == 3
    assert len({v[1] for v in seen.values()}) == 3
    assert len({v[2] for v in seen.values()}) == 3
    assert len({v[3] for v in seen.values()}) == 3


async def test_streams_of_one_profile_have_unrelated_clocks(mock_provider: MockProvider) -> None:
    first_pts = {}
    async with aiohttp.ClientSession() as session:
        for stream_id in (102, 103):  # both use the "hd" clip
            async with session.get(mock_provider.stream_url(stream_id)) as resp:
                data = await read_bytes(resp, 100_000)
            with av.open(io.BytesIO(data), format="mpegts") as container:
                packet = next(p for p in container.demux(video=0) if p.pts is not None)
                first_pts[stream_id] = packet.pts
    expected = (pts_offset_for(103) - pts_offset_for(102)) % (1 << 33)
    got = (first_pts[103] - first_pts[102]) % (1 << 33)
    assert abs(got - expected) < 3 * 90_000  # same broadcast position, within a GOP or two


async def test_pacing_is_near_the_bitrate(mock_provider: MockProvider) -> None:
    clip = await mock_provider.media.get("hd")
    async with (
        aiohttp.ClientSession() as session,
        session.get(mock_provider.stream_url(102)) as resp,
    ):
        # Skip the initial catch-up burst (at most one GOP = 1 s of data).
        await read_bytes(resp, int(clip.byte_rate * 1.2))
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = 0
        while loop.time() - start < 1.0:
            total += len(await resp.content.read(65536))
        elapsed = loop.time() - start
    rate = total / elapsed
    assert 0.6 * clip.byte_rate < rate < 1.6 * clip.byte_rate


async def test_alternative_paths_and_access_errors(mock_provider: MockProvider) -> None:
    base = mock_provider.base_url
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/alpha/alpha-secret/101") as resp:
            assert resp.status == 200
            assert len(await read_bytes(resp, TS_PACKET * 10)) >= TS_PACKET * 10
        async with session.get(f"{base}/live/alpha/alpha-secret/101") as resp:
            assert resp.status == 200
        async with session.get(f"{base}/live/alpha/wrong/101.ts") as resp:
            assert resp.status == 401
        async with session.get(f"{base}/live/expired/expired-secret/101.ts") as resp:
            assert resp.status == 403
        async with session.get(f"{base}/live/alpha/alpha-secret/201.ts") as resp:
            assert resp.status == 404
        async with session.get(f"{base}/live/alpha/alpha-secret/101.m3u8") as resp:
            assert resp.status == 404
    stats = await mock_provider.wait_for(all_closed)
    reasons = {e.reason for e in stats.closes()}
    assert {"unauthorized", "account_inactive", "not_found"} <= reasons


# --------------------------------------------------------------------------- before headers


async def test_refuse_closes_without_a_response(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(101, Fault(FaultKind.REFUSE))
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await RawStream.open(mock_provider.stream_url(101))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(mock_provider.stream_url(101)):
                pass
    stats = await mock_provider.wait_for(all_closed)
    # aiohttp may retry a GET once on a fresh connection that was reset.
    assert len(stats.closes(reason="refuse")) >= 2
    assert stats.closes(reason="refuse")[0].bytes_sent == 0


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "empty"),
    [
        (Fault(FaultKind.STATUS, status=404), 404, None, False),
        (Fault(FaultKind.STATUS, status=503), 503, None, False),
        (Fault(FaultKind.HTML), 200, "text/html", False),
        (Fault(FaultKind.EMPTY), 200, "video/mp2t", True),
    ],
)
async def test_answer_faults(
    mock_provider: MockProvider, fault: Fault, status: int, content_type: str | None, empty: bool
) -> None:
    mock_provider.set_fault(102, fault)
    async with (
        aiohttp.ClientSession() as session,
        session.get(mock_provider.stream_url(102)) as resp,
    ):
        assert resp.status == status
        body = await resp.read()
        if content_type:
            assert resp.content_type == content_type
        if empty:
            assert body == b""
        if content_type == "text/html":
            assert b"<html>" in body
    await mock_provider.wait_for(all_closed)


async def test_redirect_to_expiring_token(mock_provider: MockProvider) -> None:
    ttl = 1.0
    mock_provider.set_fault(103, Fault(FaultKind.REDIRECT, token_ttl=ttl))
    async with aiohttp.ClientSession() as session:
        async with session.get(mock_provider.stream_url(103)) as resp:
            assert resp.status == 200
            assert len(resp.history) == 1
            assert "/live/play/" in str(resp.url)
            assert len(await read_bytes(resp, TS_PACKET * 100)) >= TS_PACKET * 100
        issued = time.monotonic()
        async with session.get(mock_provider.stream_url(103), allow_redirects=False) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
            assert location.startswith(f"{mock_provider.base_url}/live/play/")
        async with session.get(location) as resp:
            assert resp.status == 200
        # Let the token's lifetime pass (a timer, not a synchronisation point).
        await asyncio.sleep(max(0.0, issued + ttl + 0.05 - time.monotonic()))
        async with session.get(location) as resp:
            assert resp.status == 403
    await mock_provider.wait_for(all_closed)


async def test_slow_headers_delays_then_streams(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(104, Fault(FaultKind.SLOW_HEADERS, delay=0.6))
    start = time.monotonic()
    raw = await RawStream.open(mock_provider.stream_url(104))
    assert time.monotonic() - start >= 0.55
    assert raw.status == 200
    assert len(await raw.read_for(0.5)) > 0
    await raw.close()
    await mock_provider.wait_for(all_closed)


async def test_times_limits_a_fault_to_n_connections(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(102, Fault(FaultKind.STATUS, status=502, times=2))
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(mock_provider.stream_url(102)) as resp:
                statuses.append(resp.status)
    assert statuses == [502, 502, 200]
    assert mock_provider.state.board.slot(102) is None
    await mock_provider.wait_for(all_closed)


# --------------------------------------------------------------------------- mid-stream


async def test_eof_ends_the_body(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(101, Fault(FaultKind.EOF, after=0.3))
    raw = await RawStream.open(mock_provider.stream_url(101))
    assert await raw.read_until_closed(5.0) == "eof"
    await raw.close()
    stats = await mock_provider.wait_for(all_closed)
    assert stats.closes(reason="eof")[0].bytes_sent > 0


async def test_reset_resets_the_connection(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(101, Fault(FaultKind.RESET, after=0.3))
    raw = await RawStream.open(mock_provider.stream_url(101))
    assert await raw.read_until_closed(5.0) == "reset"
    await raw.close()
    stats = await mock_provider.wait_for(all_closed)
    assert len(stats.closes(reason="reset")) == 1


async def test_stall_keeps_socket_open_without_bytes(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(102, Fault(FaultKind.STALL, after=0.3))
    raw = await RawStream.open(mock_provider.stream_url(102))
    await mock_provider.wait_for(lambda s: s.faulted("stall", stream_id=102) == 1)
    before = await quiet_for(raw, 0.3, within=5.0)
    assert len(before) > 0
    # Stalled: no bytes, yet neither EOF nor reset, and the panel counts it open.
    assert await raw.read_for(0.3) == b""
    assert not raw.reader.at_eof()
    assert mock_provider.stats().open_connections(stream_id=102) == 1
    closed_at = time.monotonic()
    await raw.close()
    stats = await mock_provider.wait_for(all_closed, timeout=3.0)
    assert time.monotonic() - closed_at < 1.5
    assert stats.closes(stream_id=102)[-1].reason == "client_closed_during_stall"


async def test_drip_sends_a_few_bytes_per_second(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(201, Fault(FaultKind.DRIP, after=0.3, rate=40))
    raw = await RawStream.open(mock_provider.stream_url(201))
    await mock_provider.wait_for(lambda s: s.faulted("drip") == 1)
    await raw.read_for(0.1)  # what was sent before the fault fired
    dripped = await raw.read_for(1.1)
    assert 0 < len(dripped) < 400  # 40 B/s plus chunk framing
    await raw.close()
    await mock_provider.wait_for(all_closed)


async def test_garbage_replaces_ts_with_noise(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(201, Fault(FaultKind.GARBAGE, after=0.3))
    raw = await RawStream.open(mock_provider.stream_url(201))
    await mock_provider.wait_for(lambda s: s.faulted("garbage") == 1)
    data = dechunk(await raw.read_for(0.5))
    await raw.close()
    tail = data[-TS_PACKET * 20 :]
    assert len(tail) == TS_PACKET * 20
    sync = [tail[i] == 0x47 for i in range(0, len(tail), TS_PACKET)]
    assert not all(sync)
    await mock_provider.wait_for(all_closed)


async def test_fault_hits_a_connection_that_is_already_playing(
    mock_provider: MockProvider,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(mock_provider.stream_url(105)) as resp,
    ):
        await read_bytes(resp, 100_000)
        mock_provider.set_fault(105, Fault(FaultKind.RESET))
        with pytest.raises(aiohttp.ClientError):
            await read_bytes(resp, 50_000_000)
    stats = await mock_provider.wait_for(all_closed)
    assert stats.closes(stream_id=105)[-1].reason == "reset"


async def test_recover_heals_a_stream(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(101, Fault(FaultKind.STATUS, status=500))
    mock_provider.recover(101)
    async with (
        aiohttp.ClientSession() as session,
        session.get(mock_provider.stream_url(101)) as resp,
    ):
        assert resp.status == 200
    await mock_provider.wait_for(all_closed)


# --------------------------------------------------------------------------- limits and counters


async def test_max_connections_kills_the_oldest(mock_provider: MockProvider) -> None:
    first = await RawStream.open(mock_provider.stream_url(201, "beta"))
    await mock_provider.wait_for(streaming(201))
    second = await RawStream.open(mock_provider.stream_url(202, "beta"))
    assert second.status == 200
    assert await first.read_until_closed(5.0) in ("eof", "reset")
    assert len(await second.read_for(0.3)) > 0
    stats = await mock_provider.wait_for(lambda s: s.open_connections(account="beta") == 1)
    assert [e.reason for e in stats.closes(account="beta")] == ["kicked"]
    await first.close()
    await second.close()
    await mock_provider.wait_for(all_closed)


@pytest.mark.parametrize(
    ("mode", "status"), [(LimitMode.REFUSE_403, 403), (LimitMode.REFUSE_458, 458)]
)
async def test_max_connections_refuse_mode(
    mock_provider: MockProvider, mode: LimitMode, status: int
) -> None:
    mock_provider.set_limit_mode(mode)
    first = await RawStream.open(mock_provider.stream_url(201, "beta"))
    await mock_provider.wait_for(streaming(201))
    second = await RawStream.open(mock_provider.stream_url(203, "beta"))
    assert second.status == status
    assert len(await first.read_for(0.3)) > 0
    await first.close()
    await second.close()
    stats = await mock_provider.wait_for(all_closed)
    assert len(stats.closes(reason="limit_refused")) == 1


async def test_counters_track_and_return_to_zero(mock_provider: MockProvider) -> None:
    streams = [
        await RawStream.open(mock_provider.stream_url(101)),
        await RawStream.open(mock_provider.stream_url(102)),
        await RawStream.open(mock_provider.stream_url(201)),
    ]
    stats = await mock_provider.wait_for(lambda s: len([c for c in s.open if c.streaming]) == 3)
    assert stats.per_account() == {"alpha": 2, "beta": 1}
    assert stats.per_stream() == {101: 1, 102: 1, 201: 1}
    for raw in streams:
        await raw.close()
    stats = await mock_provider.wait_for(all_closed, timeout=3.0)
    assert stats.total_opened == stats.total_closed == 3
    assert stats.opens() == 3
    assert all(e.reason == "client_closed" for e in stats.closes())


async def test_close_ends_stalled_connections_promptly(mock_media: MediaLibrary) -> None:
    provider = MockProvider(media=mock_media)
    await provider.start()
    provider.set_fault(101, Fault(FaultKind.STALL))
    raw = await RawStream.open(provider.stream_url(101))
    await provider.wait_for(lambda s: s.open_connections() == 1)
    start = time.monotonic()
    await provider.close()
    assert time.monotonic() - start < 2.0
    assert await raw.read_until_closed(2.0) in ("eof", "reset")
    await raw.close()
    assert provider.stats().open_connections() == 0


async def test_offline_refuses_connections_and_online_restores(
    mock_provider: MockProvider,
) -> None:
    playing = await RawStream.open(mock_provider.stream_url(101))
    await mock_provider.wait_for(streaming(101))
    await mock_provider.go_offline()
    assert await playing.read_until_closed(3.0) in ("eof", "reset")
    await playing.close()
    with pytest.raises(ConnectionRefusedError):
        await RawStream.open(mock_provider.stream_url(101))
    await mock_provider.go_online()
    again = await RawStream.open(mock_provider.stream_url(101))
    assert again.status == 200
    await again.close()
    stats = await mock_provider.wait_for(all_closed)
    assert stats.closes()[0].reason == "provider_offline"


async def test_eof_is_a_clean_end_of_body_for_an_http_client(mock_provider: MockProvider) -> None:
    mock_provider.set_fault(201, Fault(FaultKind.EOF, after=0.2))
    async with (
        aiohttp.ClientSession() as session,
        session.get(mock_provider.stream_url(201)) as resp,
    ):
        body = await resp.read()  # returns at the end of the body, without an error
    assert len(body) > 0
    assert body[0] == 0x47
    await mock_provider.wait_for(all_closed)


async def test_head_probe_answers_headers_without_streaming(mock_provider: MockProvider) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.head(mock_provider.stream_url(101)) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "video/mp2t"
        mock_provider.set_fault(101, Fault(FaultKind.STATUS, status=404))
        async with session.head(mock_provider.stream_url(101)) as resp:
            assert resp.status == 404
    stats = await mock_provider.wait_for(all_closed)
    assert [e.reason for e in stats.closes()] == ["head", "status"]


async def test_two_providers_are_independent(make_mock_provider: MockProviderFactory) -> None:
    first = await make_mock_provider()
    second = await make_mock_provider(Catalog.synthetic(20, seed=5))
    assert first.port != second.port
    first.set_fault(101, Fault(FaultKind.STATUS, status=503))
    async with aiohttp.ClientSession() as session:
        async with session.get(first.stream_url(101)) as resp:
            assert resp.status == 503
        async with session.get(second.stream_url(1)) as resp:
            assert resp.status == 200
            assert len(await read_bytes(resp, TS_PACKET * 20)) >= TS_PACKET * 20
    await second.wait_for(all_closed)
    assert first.stats().total_opened == 1
    assert second.stats().total_opened == 1

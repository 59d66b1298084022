"""Outage hold through ``/auto/v{n}`` against the mock provider: when no stream
delivers, viewers get the slate and stay connected; the stream comes back in the
same response, or the response ends with the exhausted event when the hold runs out."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import aiohttp
import av

from streamforge.mockprovider import MockProvider
from streamforge.mockprovider.faults import Fault
from tests.mockfixtures import cc_errors
from tests.streamharness import StreamClient, stack, wait_until

PRIMARY, BACKUP = ("alpha", 101), ("alpha", 102)


def _kinds(runtime: object) -> list[str]:
    events = runtime.events  # type: ignore[attr-defined]
    assert events.flush()
    return [str(e.details.get("kind")) for e in events.query(category="stream")]


def _video(data: bytes) -> tuple[list[int], list[tuple[int, int]]]:
    container = av.open(io.BytesIO(data), format="mpegts")
    pts: list[int] = []
    sizes: list[tuple[int, int]] = []
    try:
        for packet in container.demux(video=0):
            for frame in packet.decode():
                pts.append(int(frame.pts or 0))
                sizes.append((frame.width, frame.height))
    finally:
        container.close()
    return pts, sizes


async def test_an_outage_shorter_than_the_hold_plays_the_slate_then_the_stream(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with (
        stack(tmp_path, mock_provider, outage_hold=15.0, header_timeout=20.0) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [PRIMARY, BACKUP])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 2000)
        for stream_id in (101, 102):  # nothing answers for 8 s
            mock_provider.set_fault(stream_id, Fault("slow_headers", delay=8.0, times=1))
        assert mock_provider.kill(stream_id=101) == 1
        await wait_until(lambda: "hold" in _kinds(s.runtime), within=10)
        await wait_until(lambda: "failover" in _kinds(s.runtime), within=20)
        back = len(client.data)
        # 3,000 packets of these low-rate clips (null packets dropped) take 14-15 s
        # on a quiet machine; a busy one needs longer
        await client.wait_bytes(back + 188 * 3000, within=45.0)
        assert not client.ended.is_set()
        await client.stop()
    data = bytes(client.data[: len(client.data) // 188 * 188])
    assert cc_errors(data) == 0
    pts, sizes = _video(data)
    assert all(b > a for a, b in itertools.pairwise(pts)), "video PTS steps back"
    streams = {(640, 360), (480, 270)}  # the FHD primary, the HD backup
    assert sizes[0] in streams
    slate = [size for size in sizes if size not in streams]
    assert len(slate) >= 4 * 25, "the slate played while no stream answered"
    assert sizes[-1] in streams, "a stream came back after the slate"


async def test_an_outage_longer_than_the_hold_ends_with_the_exhausted_event(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with (
        stack(tmp_path, mock_provider, outage_hold=3.0, header_timeout=20.0) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [PRIMARY, BACKUP])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 2000)
        for stream_id in (101, 102):
            mock_provider.set_fault(stream_id, Fault("slow_headers", delay=30.0))
        assert mock_provider.kill(stream_id=101) == 1
        await wait_until(lambda: client.ended.is_set(), within=15)
        kinds = _kinds(s.runtime)
        assert "hold" in kinds
        assert "exhausted" in kinds
        events = s.runtime.events
        (exhausted,) = [
            e for e in events.query(category="stream") if e.details.get("kind") == "exhausted"
        ]
        assert 2.5 <= exhausted.details["held_s"] <= 3.5
        await mock_provider.wait_for(lambda st: not st.open, timeout=5)

"""The outage slate: encoded once and cached, looped with continuous clocks,
paced in real time, and spliced into a live session between two real streams
(the mock provider over real sockets) so that a decoder sees one program."""

from __future__ import annotations

import asyncio
import io
import itertools
import shutil
import subprocess
from pathlib import Path

import aiohttp
import av

from streamforge.mockprovider import MockProvider
from streamforge.mockprovider.faults import Fault, FaultKind
from streamforge.runtime import Runtime
from streamforge.streaming.breaker import BreakerConfig, CircuitBreakers
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.metrics import StreamMetrics
from streamforge.streaming.protocol import PolicyConfig, SessionState
from streamforge.streaming.session import ChannelRef, ChannelSession
from streamforge.streaming.slate import (
    SLATE_STREAM,
    SlateClip,
    SlateFormat,
    SlateLibrary,
    slate_picture,
    slate_runner,
)
from streamforge.streaming.slots import AccountSlots
from streamforge.streaming.upstream import UpstreamConfig
from tests.mockfixtures import cc_errors, pcr_seconds, psi
from tests.streamharness import wait_until, whole_packets

SMALL = SlateFormat(320, 240, 25)


def _decode(data: bytes) -> dict[str, list[tuple[int, int, tuple[int, int] | None]]]:
    """Per stream type: (pts, byte position, picture size) of every decoded frame."""
    found: dict[str, list[tuple[int, int, tuple[int, int] | None]]] = {"video": [], "audio": []}
    container = av.open(io.BytesIO(data), format="mpegts")
    assert isinstance(container, av.container.InputContainer)
    try:
        for packet in container.demux():
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    size: tuple[int, int] | None = (frame.width, frame.height)
                    kind = "video"
                elif isinstance(frame, av.AudioFrame):
                    size, kind = None, "audio"
                else:
                    continue
                found[kind].append((int(frame.pts or 0), int(packet.pos or 0), size))
    finally:
        container.close()
    return found


def test_slate_format_loops_on_whole_video_and_audio_frames() -> None:
    for fps in (24, 25, 30, 50, 60):
        fmt = SlateFormat(640, 360, fps)
        assert fmt.loop_frames / fps >= 2.0
        assert fmt.period_90k == fmt.audio_frames * 1920
        assert fmt.period_90k == fmt.loop_frames * (90_000 // fps)


def test_slate_picture_is_dark_blue_with_white_text() -> None:
    img = slate_picture(SMALL)
    assert img.shape == (240, 320, 3)
    assert tuple(img[20, 20]) == (16, 24, 96)
    assert tuple(img[5, 160]) == (235, 235, 235)  # the frame
    assert (img == 235).all(axis=2).sum() > 2000  # the text and the frame


async def test_slate_is_encoded_once_cached_on_disk_and_loops_continuously(
    tmp_path: Path,
) -> None:
    library = SlateLibrary(tmp_path / "slate")
    first, again = await asyncio.gather(library.get(SMALL), library.get(SMALL))
    assert first is again
    cached = tmp_path / "slate" / SMALL.cache_name
    assert cached.read_bytes() == first.data
    await library.close()

    reloaded = SlateLibrary(tmp_path / "slate")
    cached.write_bytes(first.data)  # the same file: loading must not re-encode it
    mtime = cached.stat().st_mtime_ns
    clip = await reloaded.get(SMALL)
    assert clip.data == first.data
    assert cached.stat().st_mtime_ns == mtime
    await reloaded.close()

    three = clip.render(0) + clip.render(1) + clip.render(2)
    frames = _decode(three)
    video = [pts for pts, _pos, _size in frames["video"]]
    audio = [pts for pts, _pos, _size in frames["audio"]]
    assert len(video) == 3 * SMALL.loop_frames
    assert {b - a for a, b in itertools.pairwise(video)} == {3600}
    assert len(audio) >= 3 * SMALL.audio_frames - 2
    assert {b - a for a, b in itertools.pairwise(audio)} == {1920}
    assert {size for _pts, _pos, size in frames["video"]} == {(320, 240)}
    pcrs = [t for _pid, t in pcr_seconds(three)]
    assert all(b > a for a, b in itertools.pairwise(pcrs)), "the PCR steps back at a loop"


async def test_a_broken_cache_file_is_encoded_again(tmp_path: Path) -> None:
    (tmp_path / "slate").mkdir()
    (tmp_path / "slate" / SMALL.cache_name).write_bytes(b"not a transport stream")
    library = SlateLibrary(tmp_path / "slate")
    clip = await library.get(SMALL)
    assert SlateClip.parse(SMALL, (tmp_path / "slate" / SMALL.cache_name).read_bytes()) == clip
    await library.close()


async def test_the_slate_runner_paces_in_real_time_after_a_burst(tmp_path: Path) -> None:
    library = SlateLibrary(tmp_path)
    await library.get(SMALL)
    received = bytearray()
    opened = asyncio.Event()
    run = slate_runner(library, SMALL)
    loop = asyncio.get_running_loop()
    task = loop.create_task(run(SLATE_STREAM, opened.set, received.extend), name="test-slate")
    await asyncio.wait_for(opened.wait(), 5)
    started = loop.time()

    def media() -> float:
        pcrs = [t for _pid, t in pcr_seconds(bytes(received))]
        return pcrs[-1] - pcrs[0] if len(pcrs) > 1 else 0.0

    await wait_until(lambda: media() >= 3.0, within=10)
    elapsed = loop.time() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await library.close()
    # 1 s of burst, then real time: 3 s of media take about 2 s (never much less).
    assert 1.6 <= elapsed <= 3.0, elapsed
    assert whole_packets(bytes(received))


async def test_hold_slate_between_two_streams_is_one_continuous_program(
    tmp_path: Path, mock_provider: MockProvider, runtime: Runtime
) -> None:
    """stream → slate (8 s while no stream answers) → stream, decoded."""
    streams = (
        ProviderStream(1, 1, 101, "BBC One FHD", 1, "alpha", 0, True, max_connections=2),
        ProviderStream(2, 2, 102, "BBC One HD", 1, "alpha", 1, False, max_connections=2),
    )
    base = mock_provider.base_url

    def url_for(stream: ProviderStream) -> tuple[str, str | None]:
        return f"{base}/live/alpha/alpha-secret/{stream.stream_id}.ts", None

    library = SlateLibrary(tmp_path / "slate")
    await library.get(SMALL)
    slots = AccountSlots()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True), auto_decompress=False
    ) as http:
        session = ChannelSession(
            ChannelRef(1, "101", "BBC One"),
            streams,
            http=http,
            url_for=url_for,
            upstream_config=UpstreamConfig(header_timeout=20.0, stall_timeout=3.0),
            policy_config=PolicyConfig(outage_limit=15.0, outage_hold=15.0, recovery_period=600.0),
            slots=slots,
            breakers=CircuitBreakers(BreakerConfig()),
            events=runtime.events,
            metrics=StreamMetrics(),
            buffer_bytes=32 * 1024 * 1024,
            run_slate=slate_runner(library, SMALL),
        )
        reader = session.join("127.0.0.1")
        captured = bytearray()
        marks: dict[str, int] = {}

        async def capture() -> None:
            async for chunk in reader:
                captured.extend(chunk)

        loop = asyncio.get_running_loop()
        reading = loop.create_task(capture(), name="test-capture")
        session.start()
        await wait_until(lambda: len(captured) > 400_000, within=15)
        # Every stream fails for 8 s: the primary drops and neither it nor the
        # backup answers again before then.
        for stream_id in (101, 102):
            mock_provider.set_fault(stream_id, Fault(FaultKind.SLOW_HEADERS, delay=8.0, times=1))
        assert mock_provider.kill(stream_id=101) == 1
        await wait_until(lambda: session.policy.state is SessionState.CONNECTING, within=5)
        # No stream delivers within the failover budget: the policy holds on the slate.
        await wait_until(lambda: session.holding, within=5)
        marks["hold"] = len(captured)
        await wait_until(lambda: not session.holding, within=15)
        marks["back"] = len(captured)
        held_for = session.timeline[-1]["t"] - next(
            e["t"] for e in session.timeline if e["kind"] == "hold"
        )
        await wait_until(lambda: len(captured) > marks["back"] + 400_000, within=15)
        await session.close()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    await library.close()
    # 8 s without a stream: the slate from the 2 s failover budget on.
    assert held_for >= 5.5
    assert slots.snapshot() == {}

    data = bytes(captured[: len(captured) // 188 * 188])
    assert whole_packets(data)
    assert cc_errors(data) == 0
    assert psi(data)[:2] == (301, 0x1100), "the session keeps the first stream's program"
    frames = _decode(data)
    video, audio = frames["video"], frames["audio"]
    v_pts = [pts for pts, _pos, _size in video]
    a_pts = [pts for pts, _pos, _size in audio]
    assert all(b > a for a, b in itertools.pairwise(v_pts)), "video PTS steps back"
    assert all(b > a for a, b in itertools.pairwise(a_pts)), "audio PTS steps back"
    assert max(b - a for a, b in itertools.pairwise(v_pts)) <= 45_000, "a hole in the video"
    assert max(b - a for a, b in itertools.pairwise(a_pts)) <= 45_000, "a hole in the audio"
    sizes = [size for _pts, _pos, size in video]
    slate_frames = [s for s in sizes if s == (320, 240)]
    assert len(slate_frames) >= 5 * 25, "the slate played for the rest of the outage"
    assert sizes[0] == (640, 360), "the stream first"
    assert sizes[-1] in {(640, 360), (480, 270)}, "a stream again after the slate"
    for mark in marks.values():
        assert any(pos > mark for _pts, pos, _size in audio), "audio stops after a switch"
    if shutil.which("ffmpeg"):
        recorded = tmp_path / "held.ts"
        recorded.write_bytes(data)
        result = await asyncio.to_thread(
            subprocess.run,
            ["ffmpeg", "-v", "error", "-i", str(recorded), "-f", "null", "-"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0
        assert result.stderr.strip() == "", result.stderr

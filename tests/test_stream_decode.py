"""What Plex's transcoder sees: a stream recorded through StreamForge across
a failover to a backup with other PIDs, program number and resolution, and an
upgrade back, decoded by a real decoder (PyAV / ffmpeg)."""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
from pathlib import Path

import aiohttp
import av
import pytest

from streamforge.mockprovider import MockProvider
from streamforge.mockprovider.faults import Fault
from tests.mockfixtures import cc_errors, psi
from tests.streamharness import StreamClient, stack, wait_until, whole_packets


async def test_decoder_sees_one_program_across_failover_and_upgrade(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with (
        stack(tmp_path, mock_provider, recovery_period=2.0) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [("alpha", 101), ("beta", 201)])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 600)
        mock_provider.set_fault(101, Fault("eof", after=0.0, times=1))
        await mock_provider.wait_for(lambda st: st.open_connections(stream_id=201) == 1)
        switched_at = len(client.data)
        await client.wait_bytes(switched_at + 188 * 600)
        await wait_until(lambda: s.runtime.streams.snapshot()[0]["upgrades"] == 1, within=15)
        upgraded_at = len(client.data)
        await client.wait_bytes(upgraded_at + 188 * 600)
        await client.stop()
    _check_recording(bytes(client.data), switched_at, upgraded_at, tmp_path)


def _check_recording(raw: bytes, switched_at: int, upgraded_at: int, tmp_path: Path) -> None:
    data = raw[: len(raw) // 188 * 188]
    assert whole_packets(data)
    assert cc_errors(data) == 0
    program, pmt_pid, _pids = psi(data)
    # the session keeps the primary's program although the backup differs
    assert (program, pmt_pid) == (301, 0x1100)
    assert psi(data[switched_at // 188 * 188 + 188 * 200 :])[:2] == (301, 0x1100)

    container = av.open(io.BytesIO(data), format="mpegts")
    kinds = sorted(st.type for st in container.streams)
    assert kinds == ["audio", "video"]
    video_pts: list[int] = []
    video_pos: list[int] = []
    audio_pos: list[int] = []
    for packet in container.demux():
        if packet.stream.type == "video":
            for frame in packet.decode():
                video_pts.append(frame.pts)
                video_pos.append(packet.pos or 0)
        elif packet.stream.type == "audio" and packet.decode():
            audio_pos.append(packet.pos or 0)
    container.close()
    assert len(video_pts) > 40
    assert all(b > a for a, b in itertools.pairwise(video_pts)), "video PTS jumps back"
    for mark in (switched_at, upgraded_at):
        assert any(p > mark for p in video_pos), "video stops decoding after a switch"
        assert any(p > mark for p in audio_pos), "audio stops decoding after a switch"

    if shutil.which("ffmpeg"):
        out = tmp_path / "recorded.ts"
        out.write_bytes(data)
        result = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        problems = [
            line
            for line in result.stderr.splitlines()
            if "continuity" in line.lower() or "corrupt" in line.lower()
        ]
        assert problems == []
    else:  # pragma: no cover - CI installs ffmpeg
        pytest.skip("ffmpeg not installed")

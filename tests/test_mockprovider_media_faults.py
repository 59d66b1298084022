"""Mock provider media and delivery faults, over real sockets, decoded with PyAV.

Each media fault is set on a stream that is already playing; the capture spans the
moment it fires. The decoded picture/sound must break as described, while the PIDs,
the continuity counters and the timestamps run on unbroken across the splice.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import math
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import av
import numpy as np
import numpy.typing as npt
import pytest

from streamforge.errors import ConfigError
from streamforge.mockprovider import (
    Account,
    Catalog,
    Category,
    ControlClient,
    Fault,
    FaultKind,
    MediaLibrary,
    MockProvider,
    ProviderStats,
    Stream,
)
from streamforge.mockprovider.cli import parse_fault_spec
from streamforge.mockprovider.media import TS_PACKET, ClipVariant
from tests import mockfixtures
from tests.mockfixtures import (
    MockProviderFactory,
    RawStream,
    cc_errors,
    dechunk,
    pcr_seconds,
    pes_timestamps,
    pids_in,
    psi,
)

# Not (yet) imported by conftest.py.
make_mock_provider = mockfixtures.make_mock_provider
mock_fault_media = mockfixtures.mock_fault_media

#: Seconds of media after the last pre-fault PTS by which the splice has happened
#: (it waits for the next keyframe: GOP 1 s, plus one frame).
SPLICE_WITHIN = 1.1
#: -60 dBFS as a linear RMS of float samples (full scale 1.0).
MINUS_60_DBFS = 10 ** (-60 / 20)

VIDEO_PID = 0x100  # the "sd" profile
AUDIO_PID = 0x101


def sd_catalog(n: int = 4) -> Catalog:
    """One account allowed ``n`` connections to ``n`` small (320x240) streams."""
    return Catalog(
        accounts=(Account("viewer", "viewer-secret", max_connections=n),),
        categories=(Category(1, "Test"),),
        streams=tuple(Stream(i, f"SD {i}", 1, profile="sd") for i in range(1, n + 1)),
    )


@pytest.fixture
async def provider(
    make_mock_provider: MockProviderFactory, mock_fault_media: MediaLibrary
) -> MockProvider:
    return await make_mock_provider(sd_catalog())


def faulted(stream_id: int) -> Callable[[ProviderStats], bool]:
    return lambda s: s.faulted(stream_id=stream_id) == 1


@dataclass
class Capture:
    """A stream's body received across a fault; ``split`` = bytes received before it fired."""

    body: bytes
    split: int

    @property
    def before(self) -> bytes:
        return self.body[: self.split]

    @property
    def after(self) -> bytes:
        return self.body[self.split :]

    def last_pts_before(self) -> float:
        return max(pts for _, pid, pts in pes_timestamps(self.before) if pid == VIDEO_PID) / 9e4


async def capture(
    provider: MockProvider, stream_id: int, fault: Fault, seconds_after: float = 2.5
) -> Capture:
    """Play ``stream_id``, set ``fault`` once it plays, read until it fired + ``seconds_after``."""
    raw = await RawStream.open(provider.stream_url(stream_id))
    assert raw.status == 200
    received = bytearray(await raw.read_for(0.2))
    provider.set_fault(stream_id, fault)
    fired = faulted(stream_id)
    while not fired(provider.stats()):
        received += await raw.read_for(0.04)
    split = len(dechunk(bytes(received))) // TS_PACKET * TS_PACKET
    received += await raw.read_for(seconds_after)
    await raw.close()
    body = dechunk(bytes(received))
    return Capture(body[: len(body) // TS_PACKET * TS_PACKET], split)


def video_frames(data: bytes) -> list[tuple[float, npt.NDArray[np.uint8]]]:
    """(time, luma plane) of every decoded video frame."""
    frames = []
    with av.open(io.BytesIO(data), "r", format="mpegts") as container:
        for frame in container.decode(video=0):
            luma = np.asarray(frame.to_ndarray()[: frame.height], dtype=np.uint8)
            frames.append((float(frame.time or 0.0), luma))
    return frames


def audio_frames(data: bytes) -> list[tuple[float, npt.NDArray[np.float32]]]:
    frames = []
    with av.open(io.BytesIO(data), "r", format="mpegts") as container:
        for frame in container.decode(audio=0):
            frames.append((float(frame.time or 0.0), np.asarray(frame.to_ndarray(), np.float32)))
    return frames


T = TypeVar("T")


def split_frames(frames: list[tuple[float, T]], cap: Capture) -> tuple[list[T], list[T]]:
    """Frames surely before the fault, and surely after its splice."""
    t = cap.last_pts_before()
    before = [f for when, f in frames if when < t - 0.3]
    after = [f for when, f in frames if when > t + SPLICE_WITHIN]
    assert len(before) >= 5, "too little media before the fault"
    assert len(after) >= 10, "too little media after the fault"
    return before, after


def max_step(frames: list[npt.NDArray[np.uint8]]) -> int:
    """The largest pixel change between consecutive frames."""
    return max(
        int(np.abs(b.astype(np.int16) - a.astype(np.int16)).max())
        for a, b in itertools.pairwise(frames)
    )


def rms(frames: list[npt.NDArray[np.float32]]) -> float:
    samples = np.concatenate([f.reshape(-1) for f in frames]).astype(np.float64)
    return math.sqrt(float(np.mean(samples**2)))


def assert_unbroken(cap: Capture) -> None:
    """Same program and PIDs after the fault, no CC error, timestamps without a jump."""
    assert psi(cap.after) == psi(cap.before) == (1, 0x1000, {VIDEO_PID, AUDIO_PID})
    assert pids_in(cap.after) <= {0, 0x11, 0x1000, VIDEO_PID, AUDIO_PID, 0x1FFF}
    assert cc_errors(cap.body) == 0
    by_pid: dict[int, list[int]] = defaultdict(list)
    for _, pid, pts in pes_timestamps(cap.body):
        by_pid[pid].append(pts)
    assert set(by_pid) == {VIDEO_PID, AUDIO_PID}
    # One video frame (3600 ticks at 25 fps) and one AAC frame (1024 samples at
    # 48 kHz: 1920 ticks) per PES, exactly, across the splice too. (A PID that stopped
    # simply has no timestamps after the fault.)
    assert set(np.diff(by_pid[VIDEO_PID]).tolist()) == {3600}
    assert set(np.diff(by_pid[AUDIO_PID]).tolist()) == {1920}


# --------------------------------------------------------------------------- picture


async def test_black_turns_the_picture_black(provider: MockProvider) -> None:
    cap = await capture(provider, 1, Fault(FaultKind.BLACK, after=1.0))
    before, after = split_frames(video_frames(cap.body), cap)
    assert min(float(f.mean()) for f in before) > 60
    assert max(float(f.mean()) for f in after) < 20
    assert max(int(f.max()) for f in after) < 40
    assert rms([f for _, f in audio_frames(cap.after)]) > 0.05  # the sound goes on
    assert_unbroken(cap)


async def test_frozen_repeats_one_picture(provider: MockProvider) -> None:
    cap = await capture(provider, 2, Fault(FaultKind.FROZEN, after=1.0))
    before, after = split_frames(video_frames(cap.body), cap)
    assert max_step(before) > 100  # the moving box
    assert max_step(after) <= 2
    assert float(after[-1].mean()) > 60  # a picture, not black
    assert_unbroken(cap)


async def test_card_is_a_still_slate_with_bright_text(provider: MockProvider) -> None:
    cap = await capture(provider, 3, Fault(FaultKind.CARD, after=1.0))
    before, after = split_frames(video_frames(cap.body), cap)
    assert max_step(before) > 100
    assert max_step(after) <= 4
    slate = after[-1]
    bright = float(np.mean(slate > 200))
    # Mostly a dark background, with white text: unlike black, unlike the pattern.
    assert 0.01 < bright < 0.3
    assert float(np.median(slate)) < 60
    assert_unbroken(cap)


# --------------------------------------------------------------------------- sound


async def test_silent_keeps_the_picture_and_silences_the_sound(provider: MockProvider) -> None:
    cap = await capture(provider, 4, Fault(FaultKind.SILENT, after=1.0))
    before, after = split_frames(audio_frames(cap.body), cap)
    assert rms(before) > 0.05  # the 440 Hz tone at -15 dBFS
    assert rms(after) < MINUS_60_DBFS
    _, pictures = split_frames(video_frames(cap.body), cap)
    assert max_step(pictures) > 100  # the picture keeps moving
    assert_unbroken(cap)


# --------------------------------------------------------------------------- components


@pytest.mark.parametrize(
    ("kind", "gone", "kept"),
    [(FaultKind.NO_VIDEO, VIDEO_PID, AUDIO_PID), (FaultKind.NO_AUDIO, AUDIO_PID, VIDEO_PID)],
)
async def test_lost_component_stops_its_pid_but_stays_listed(
    provider: MockProvider, kind: FaultKind, gone: int, kept: int
) -> None:
    cap = await capture(provider, 1, Fault(kind, after=1.0))
    clip = await provider.media.get("sd")
    # Past the next keyframe: nothing more on that PID, the rest goes on.
    tail = cap.after[int(clip.byte_rate * SPLICE_WITHIN) // TS_PACKET * TS_PACKET :]
    assert len(tail) > clip.byte_rate * 0.8 * (0.2 if kind is FaultKind.NO_VIDEO else 1)
    assert gone in pids_in(cap.before)
    assert gone not in pids_in(tail)
    assert kept in pids_in(tail)
    assert psi(tail) == (1, 0x1000, {VIDEO_PID, AUDIO_PID})  # the PMT still lists it
    assert_unbroken(cap)


# --------------------------------------------------------------------------- recovery


async def test_recover_returns_the_playing_connection_to_normal(provider: MockProvider) -> None:
    raw = await RawStream.open(provider.stream_url(2))
    provider.set_fault(2, Fault(FaultKind.BLACK, after=1.0))
    received = bytearray()
    while not faulted(2)(provider.stats()):
        received += await raw.read_for(0.04)
    received += await raw.read_for(1.8)
    black_until = len(dechunk(bytes(received))) // TS_PACKET * TS_PACKET
    provider.recover(2)
    await provider.wait_for(lambda s: s.faulted(stream_id=2) == 0)
    received += await raw.read_for(2.5)
    await raw.close()
    body = dechunk(bytes(received))
    body = body[: len(body) // TS_PACKET * TS_PACKET]
    cap = Capture(body, black_until)
    frames = video_frames(body)
    t = cap.last_pts_before()
    black = [f for when, f in frames if t - 0.3 < when < t]
    healed = [f for when, f in frames if when > t + SPLICE_WITHIN]
    assert black
    assert max(float(f.mean()) for f in black) < 20
    assert len(healed) >= 10
    assert min(float(f.mean()) for f in healed) > 60
    assert max_step(healed) > 100
    assert_unbroken(cap)
    assert provider.state.board.slot(2) is None


# --------------------------------------------------------------------------- delivery


def media_span(data: bytes) -> float:
    pcrs = pcr_seconds(data)
    return pcrs[-1][1] - pcrs[0][1]


async def test_slow_delivers_a_fraction_of_real_time(provider: MockProvider) -> None:
    factor = 0.5
    cap = await capture(provider, 3, Fault(FaultKind.SLOW, factor=factor), seconds_after=2.0)
    clip = await provider.media.get("sd")
    # Over the 2 s window after the fault: half the bytes and half the media time.
    assert len(cap.after) == pytest.approx(factor * clip.byte_rate * 2.0, rel=0.25)
    assert media_span(cap.after) == pytest.approx(factor * 2.0, rel=0.25)
    assert_unbroken(cap)


async def test_bursty_is_bursts_every_period_at_real_time_on_average(
    provider: MockProvider,
) -> None:
    period = 1.0
    raw = await RawStream.open(provider.stream_url(4))
    provider.set_fault(4, Fault(FaultKind.BURSTY, period=period))
    await provider.wait_for(faulted(4))
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, bytes]] = []
    start = loop.time()
    while loop.time() - start < 4.6 * period:
        chunk = await raw.read_for(0.02)
        if chunk:
            arrivals.append((loop.time(), chunk))
    await raw.close()
    times = [at for at, _ in arrivals]
    gaps = [b - a for a, b in itertools.pairwise(times) if b - a > 0.3 * period]
    assert len(gaps) >= 3
    assert all(0.6 * period < g < 1.4 * period for g in gaps)
    # Bursts: almost all of the time nothing arrives.
    assert sum(gaps) > 0.6 * (times[-1] - times[0])
    # Average rate: one period of media per period of wall time; ahead of live after
    # each burst (the last burst already holds the next period).
    body = dechunk(b"".join(c for _, c in arrivals))
    body = body[: len(body) // TS_PACKET * TS_PACKET]
    elapsed = times[-1] - times[0]
    assert media_span(body) == pytest.approx(elapsed + period, abs=0.6 * period)
    cap = Capture(body, 0)
    assert cc_errors(cap.body) == 0
    assert psi(body) == (1, 0x1000, {VIDEO_PID, AUDIO_PID})


async def test_drip_is_never_silent_for_a_second(provider: MockProvider) -> None:
    raw = await RawStream.open(provider.stream_url(1))
    provider.set_fault(1, Fault(FaultKind.DRIP, rate=40))
    await provider.wait_for(faulted(1))
    await raw.read_for(0.1)  # what was sent before it fired
    loop = asyncio.get_running_loop()
    arrivals = []
    start = loop.time()
    total = 0
    while loop.time() - start < 2.0:
        chunk = await raw.read_for(0.05)
        if chunk:
            arrivals.append(loop.time())
            total += len(chunk)
    await raw.close()
    assert total < 400  # 40 B/s plus chunk framing
    edges = [start, *arrivals, loop.time()]
    assert max(b - a for a, b in itertools.pairwise(edges)) < 1.0


# --------------------------------------------------------------------------- control surfaces


def test_fault_parameters_are_validated() -> None:
    assert Fault(FaultKind.SLOW, factor=0.6).factor == 0.6
    with pytest.raises(ConfigError, match="factor"):
        Fault(FaultKind.SLOW, factor=0)
    with pytest.raises(ConfigError, match="factor"):
        Fault(FaultKind.SLOW, factor=1.5)
    with pytest.raises(ConfigError, match="period"):
        Fault(FaultKind.BURSTY, period=0.1)
    assert FaultKind.BLACK.variant is ClipVariant.BLACK
    assert FaultKind.NO_VIDEO.ongoing
    assert FaultKind.BURSTY.ongoing
    assert not FaultKind.STALL.ongoing


def test_cli_fault_spec_takes_factor_and_period() -> None:
    assert parse_fault_spec("7:slow:factor=0.6:after=5") == (
        7,
        Fault(FaultKind.SLOW, factor=0.6, after=5.0),
    )
    assert parse_fault_spec("8:bursty:period=8")[1].period == 8.0
    assert parse_fault_spec("9:card")[1].kind is FaultKind.CARD


async def test_control_api_sets_media_faults(provider: MockProvider) -> None:
    control = ControlClient(provider.base_url)

    def round_trip() -> dict[str, Any]:
        control.set_fault(1, Fault(FaultKind.BURSTY, period=8, after=2))
        control.request("POST", "/streams/2/fault", {"kind": "slow", "factor": 0.6})
        control.request("POST", "/streams/3/fault", {"kind": "card", "after": 5})
        req = urllib.request.Request(
            f"{provider.base_url}/_control/streams/4/fault",
            data=json.dumps({"kind": "slow", "factor": 2}).encode(),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 400
        info.value.close()
        answer: dict[str, Any] = control.request("GET", "/faults")
        return answer

    faults = (await asyncio.to_thread(round_trip))["faults"]
    assert faults["1"]["kind"] == "bursty"
    assert faults["1"]["period"] == 8
    assert faults["2"]["factor"] == 0.6
    assert faults["3"] == {**Fault(FaultKind.CARD, after=5).to_dict()}
    assert "4" not in faults


async def test_setting_a_media_fault_prepares_its_media(
    mock_fault_media: MediaLibrary,
) -> None:
    # A fresh library on the session's cache: the files exist, nothing is loaded yet.
    library = MediaLibrary(mock_fault_media.cache_dir)
    async with MockProvider(sd_catalog(), media=library) as provider:
        assert library.loaded("sd", ClipVariant.CARD) is None
        provider.set_fault(1, Fault(FaultKind.CARD, after=30))
        async with asyncio.timeout(10):
            while library.loaded("sd", ClipVariant.CARD) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert library.loaded("sd", ClipVariant.BLACK) is None  # only what a fault needs

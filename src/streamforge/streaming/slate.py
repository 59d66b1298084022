"""The outage slate: "channel temporarily unavailable", as a synthetic upstream.

Theory of operation
-------------------
With ``STREAMFORGE_OUTAGE_HOLD`` above 0, a session whose streams have all
failed keeps its clients' responses open and shows them a generated slate
while the failover policy retries the streams (:class:`~.protocol.HoldSlate`).
To the session the slate is just one more upstream: :func:`slate_runner` has
the shape of the session's upstream seam (:data:`~.session.UpstreamRunner`),
so its bytes go through the same :class:`~streamforge.ts.splicer.TsSplicer`
that makes every upstream look like one program — the slate lands on the
session's PIDs and program, with continuity counters and timestamps that
continue the output, and the cut back to a real stream is an ordinary
break-before-make switch.

*Encoding* (:func:`encode_slate`, blocking, run in a worker thread): a still
picture — white text on dark blue, drawn with a small built-in bitmap font —
encoded with PyAV as H.264 (``libx264``, no B-frames, fixed quantiser so the
P-frames are pure skips, one IDR per loop) and silent AAC (48 kHz stereo),
muxed as MPEG-TS at a constant mux rate. The loop lasts a whole number of
video frames *and* AAC frames (1024 samples), at least
:data:`MIN_LOOP_SECONDS`, and the audio packets are re-timed onto a gap-free
timeline, so looping it by shifting every timestamp by the loop length is
continuous on both streams.

*Caching* (:class:`SlateLibrary`): one encode per :class:`SlateFormat`
(resolution, frame rate), kept in memory for the life of the process and on
disk under ``<data dir>/cache/slate/`` (written to a temporary name and
renamed into place); concurrent requests share one encode.

*Playing* (:class:`SlateClip`, :func:`slate_runner`): loop ``k`` is the file
with ``k`` loop lengths added to every PCR, PTS and DTS (modulo 2^33). The
runner sends it paced in real time by its PCR — an initial burst of
:data:`BURST_SECONDS` (refilling what the clients' buffers lost during the
failure), then every packet whose PCR is due — until the session cancels it.

Audio: the slate's AAC maps onto the session's AAC track; a session whose
audio is another codec (AC-3, MPEG audio) has its audio paused during the
slate (the splicer drops streams it cannot map), and the video still plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av
import numpy as np
import numpy.typing as npt

from streamforge.errors import ConfigError
from streamforge.streaming.candidates import ProviderStream
from streamforge.tasks import TaskOwner
from streamforge.text_card import draw_card
from streamforge.ts.packets import PACKET_SIZE, pcr_position, read_pcr, write_pcr
from streamforge.ts.pes import PTS_HZ, PTS_MODULUS, timestamp_positions, write_timestamp

log = logging.getLogger(__name__)

#: Bumped whenever the picture or the encoding changes (part of the cache file name).
SLATE_VERSION: Final = 1
#: Shortest loop: long enough that looping costs nothing, short enough to encode fast.
MIN_LOOP_SECONDS: Final = 2.0
#: Media sent at once when the slate starts (refills the clients' buffers).
BURST_SECONDS: Final = 1.0
#: How often the runner wakes to send what is due.
TICK_SECONDS: Final = 0.04
#: The slate's text, one line per entry.
SLATE_LINES: Final = ("CHANNEL", "TEMPORARILY", "UNAVAILABLE", "", "PLEASE STAND BY")

_AUDIO_RATE: Final = 48_000
_AAC_FRAME: Final = 1024
_PCR_HZ: Final = PTS_HZ * 300
_PCR_MOD: Final = PTS_MODULUS * 300

#: A stand-in for the slate where a :class:`ProviderStream` is expected (never opened).
SLATE_STREAM: Final = ProviderStream(
    mapping_id=0,
    xtream_channel_id=0,
    stream_id=0,
    name="outage slate",
    account_id=0,
    account_name="streamforge",
)


@dataclass(frozen=True, slots=True)
class SlateFormat:
    """The picture size and frame rate of a slate (one cached encode each)."""

    width: int = 1280
    height: int = 720
    fps: int = 25

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 2304):
            raise ConfigError(f"slate size {self.width}x{self.height} is out of range")
        if self.width % 2 or self.height % 2:
            raise ConfigError("slate width and height must be even")
        if self.fps < 1 or PTS_HZ % self.fps:
            raise ConfigError(f"slate frame rate must divide 90000, got {self.fps}")

    @property
    def loop_frames(self) -> int:
        """Video frames per loop: whole AAC frames too, at least MIN_LOOP_SECONDS."""
        frame_ticks = PTS_HZ // self.fps
        aac_ticks = PTS_HZ * _AAC_FRAME // _AUDIO_RATE  # 1920
        unit = math.lcm(frame_ticks, aac_ticks) // frame_ticks
        units = max(1, math.ceil(MIN_LOOP_SECONDS * self.fps / unit))
        return unit * units

    @property
    def period_90k(self) -> int:
        """Loop length in 90 kHz ticks."""
        return self.loop_frames * (PTS_HZ // self.fps)

    @property
    def audio_frames(self) -> int:
        return self.period_90k * _AUDIO_RATE // PTS_HZ // _AAC_FRAME

    @property
    def mux_rate(self) -> int:
        """Bits per second of the mux (ample for a still picture; nulls pad it)."""
        return max(1_000_000, self.width * self.height * 2)

    @property
    def cache_name(self) -> str:
        return f"slate-v{SLATE_VERSION}-{self.width}x{self.height}-{self.fps}.ts"


def slate_picture(fmt: SlateFormat) -> npt.NDArray[np.uint8]:
    """The slate as an RGB picture: white text and frame on dark blue."""
    return draw_card(fmt.width, fmt.height, SLATE_LINES)


def encode_slate(fmt: SlateFormat) -> bytes:
    """One loop of the slate as MPEG-TS (blocking: run it in a worker thread)."""
    buffer = io.BytesIO()
    options = {"muxrate": str(fmt.mux_rate), "mpegts_flags": "resend_headers"}
    out = av.open(buffer, "w", format="mpegts", options=options)
    try:
        frames = fmt.loop_frames
        x264 = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "g": str(frames),
            "keyint_min": str(frames),
            "sc_threshold": "0",
            "bf": "0",
            "qp": "20",
        }
        video = out.add_stream("libx264", rate=fmt.fps, options=x264)
        video.width = fmt.width
        video.height = fmt.height
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=_AUDIO_RATE)
        audio.layout = "stereo"
        audio.bit_rate = 64_000

        timed: list[tuple[Fraction, int, Any]] = []
        picture = av.VideoFrame.from_ndarray(slate_picture(fmt), format="rgb24")
        still = picture.reformat(format="yuv420p")
        vtb = Fraction(1, fmt.fps)
        for i in range(frames):
            still.pts = i
            still.time_base = vtb
            for packet in video.encode(still):
                timed.append((Fraction(packet.pts or 0) * vtb, 0, packet))
        for packet in video.encode(None):
            timed.append((Fraction(packet.pts or 0) * vtb, 0, packet))

        atb = Fraction(1, _AUDIO_RATE)
        fmt_name = audio.codec_context.format.name
        silence = np.zeros((2, _AAC_FRAME), dtype=np.float32)
        if not fmt_name.endswith("p"):
            silence = silence.T.reshape(1, -1)
        audio_packets: list[Any] = []
        for j in range(fmt.audio_frames):
            frame = av.AudioFrame.from_ndarray(silence, format=fmt_name, layout="stereo")
            frame.sample_rate = _AUDIO_RATE
            frame.pts = j * _AAC_FRAME
            frame.time_base = atb
            audio_packets.extend(audio.encode(frame))
        audio_packets.extend(audio.encode(None))
        # Exactly audio_frames packets on a gap-free timeline, spanning the loop.
        for j, packet in enumerate(audio_packets[: fmt.audio_frames]):
            packet.pts = j * _AAC_FRAME
            packet.dts = j * _AAC_FRAME
            packet.time_base = atb
            timed.append((Fraction(j * _AAC_FRAME) * atb, 1, packet))
        timed.sort(key=lambda item: (item[0], item[1]))
        for _, _, packet in timed:
            out.mux(packet)
    finally:
        out.close()
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class SlateClip:
    """One encoded loop and where its clocks sit, to play it as an endless feed."""

    fmt: SlateFormat
    data: bytes
    pcr_at: tuple[int, ...]
    """Byte offsets of the PCR fields, in order."""
    pcr_values: tuple[int, ...]
    pcr_packet_end: tuple[int, ...]
    """For each PCR, the end offset of the packet carrying it."""
    ts_at: tuple[int, ...]
    """Byte offsets of every PTS and DTS field."""
    ts_values: tuple[int, ...]

    @classmethod
    def parse(cls, fmt: SlateFormat, data: bytes) -> SlateClip:
        if not data or len(data) % PACKET_SIZE:
            raise ConfigError("slate is not a whole number of TS packets")
        pcr_at: list[int] = []
        pcr_values: list[int] = []
        pcr_end: list[int] = []
        ts_at: list[int] = []
        ts_values: list[int] = []
        for pos in range(0, len(data), PACKET_SIZE):
            if data[pos] != 0x47:
                raise ConfigError("slate lost TS sync")
            at = pcr_position(data, pos)
            if at >= 0:
                pcr_at.append(at)
                pcr_values.append(read_pcr(data, at))
                pcr_end.append(pos + PACKET_SIZE)
            if not data[pos + 1] & 0x40 or not data[pos + 3] & 0x10:
                continue
            start = pos + 4
            if data[pos + 3] & 0x20:
                start += 1 + data[pos + 4]
            pts_at, dts_at = timestamp_positions(data, start, pos + PACKET_SIZE)
            for field_at in (pts_at, dts_at):
                if field_at >= 0:
                    ts_at.append(field_at)
                    ts_values.append(_read_ts(data, field_at))
        if len(pcr_at) < 2:
            raise ConfigError("slate carries no PCR")
        return cls(
            fmt,
            data,
            tuple(pcr_at),
            tuple(pcr_values),
            tuple(pcr_end),
            tuple(ts_at),
            tuple(ts_values),
        )

    def render(self, loop: int) -> bytes:
        """Loop number ``loop`` of the endless feed (every clock shifted by ``loop`` periods)."""
        if loop == 0:
            return self.data
        shift = loop * self.fmt.period_90k
        buf = bytearray(self.data)
        for at, value in zip(self.ts_at, self.ts_values, strict=True):
            write_timestamp(buf, at, (value + shift) % PTS_MODULUS)
        for at, value in zip(self.pcr_at, self.pcr_values, strict=True):
            write_pcr(buf, at, (value + shift * 300) % _PCR_MOD)
        return bytes(buf)

    def schedule(self) -> list[tuple[float, int]]:
        """``(seconds after the loop's first PCR, end offset)``: what is due when, in one loop."""
        first = self.pcr_values[0]
        return [
            (((value - first) % _PCR_MOD) / _PCR_HZ, end)
            for value, end in zip(self.pcr_values, self.pcr_packet_end, strict=True)
        ]

    @property
    def period(self) -> float:
        return self.fmt.period_90k / PTS_HZ


def _read_ts(buf: bytes, at: int) -> int:
    b = buf[at : at + 5]
    return ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


class SlateLibrary:
    """Slates by format: encoded once (worker thread), cached in memory and on disk."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = cache_dir
        self._clips: dict[SlateFormat, SlateClip] = {}
        self._encoding: dict[SlateFormat, asyncio.Future[SlateClip]] = {}
        self._tasks = TaskOwner("slates")

    def loaded(self, fmt: SlateFormat) -> SlateClip | None:
        return self._clips.get(fmt)

    async def get(self, fmt: SlateFormat) -> SlateClip:
        """The slate of ``fmt``, encoding (or reading) it first if needed."""
        clip = self._clips.get(fmt)
        if clip is not None:
            return clip
        return await asyncio.shield(self._start(fmt))

    def prefetch(self, fmt: SlateFormat) -> None:
        """Start loading ``fmt`` in the background (so a hold starts without delay)."""
        if fmt not in self._clips:
            self._start(fmt)

    def _start(self, fmt: SlateFormat) -> asyncio.Future[SlateClip]:
        future = self._encoding.get(fmt)
        if future is None:
            future = self._tasks.spawn(self._load(fmt), name=f"slate:{fmt.cache_name}")
            self._encoding[fmt] = future
        return future

    async def _load(self, fmt: SlateFormat) -> SlateClip:
        try:
            clip = await asyncio.to_thread(self._load_sync, fmt)
            self._clips[fmt] = clip
            return clip
        finally:
            self._encoding.pop(fmt, None)

    def _load_sync(self, fmt: SlateFormat) -> SlateClip:
        path = self.cache_dir / fmt.cache_name if self.cache_dir is not None else None
        if path is not None and path.is_file():
            with contextlib.suppress(ConfigError):
                return SlateClip.parse(fmt, path.read_bytes())
        data = encode_slate(fmt)
        clip = SlateClip.parse(fmt, data)
        if path is not None:
            try:
                _write_atomically(path, data)
            except OSError as exc:  # the clip in memory still serves this process
                log.warning("cannot cache the outage slate in %s: %s", path.parent, exc)
        return clip

    async def close(self) -> None:
        await self._tasks.close()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".slate-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def slate_runner(
    library: SlateLibrary,
    fmt: SlateFormat,
    *,
    time: Callable[[], float] | None = None,
) -> Callable[[ProviderStream, Callable[[], None], Callable[[bytes], None]], Any]:
    """An upstream runner (the session's seam) that plays the slate until cancelled.

    The ``stream`` argument is ignored (the session passes :data:`SLATE_STREAM`);
    ``on_open`` is called once the slate is loaded, ``on_data`` with whole
    packets, paced in real time by the slate's PCR after an initial burst.
    """

    async def run(
        stream: ProviderStream, on_open: Callable[[], None], on_data: Callable[[bytes], None]
    ) -> None:
        del stream
        clip = await library.get(fmt)
        clock = time if time is not None else asyncio.get_running_loop().time
        on_open()
        schedule = clip.schedule()
        started = clock() - BURST_SECONDS
        loop = 0
        data = clip.render(0)
        sent = 0  # offset in the current loop
        index = 0  # next schedule entry of the current loop
        while True:
            due = clock() - started - loop * clip.period
            end = sent
            while index < len(schedule) and schedule[index][0] <= due:
                end = schedule[index][1]
                index += 1
            if index >= len(schedule):
                end = len(data)  # the loop's tail after its last PCR
            if end > sent:
                on_data(data[sent:end])
                sent = end
            if sent >= len(data):
                loop += 1
                data = clip.render(loop)
                sent = 0
                index = 0
                continue
            await asyncio.sleep(TICK_SECONDS)

    return run

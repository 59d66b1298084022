"""The decoding half of the content checks: runs in a worker thread, never on the loop.

Each job is self-contained (a fresh PyAV codec context per job, one thread
each), so jobs of one channel or of many may run on any executor in any
order.  :func:`elementary_stream` turns the TS packets of one PID into its
elementary-stream bytes with NumPy (payload offsets and PES header lengths
as columns, one boolean gather); :func:`decode_picture` decodes one keyframe
access unit to a 64x36 luma thumbnail; :func:`decode_level` decodes a window
of audio to its RMS level.  A picture result carries the CPU time its job
took, which the sampler uses to keep within its CPU budget.  Failures to decode are results
(``ok=False``), not exceptions: they are what the undecodable check counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext
from av.video.codeccontext import VideoCodecContext

from streamforge.streaming.health.picture import Thumb, downscale_luma
from streamforge.streaming.health.sound import rms_dbfs
from streamforge.ts.packets import PACKET_SIZE, packet_rows

#: PMT codec names (see :class:`~streamforge.ts.psi.PmtStream`) to FFmpeg decoders.
VIDEO_DECODERS: Final[Mapping[str, str]] = MappingProxyType(
    {"h264": "h264", "hevc": "hevc", "mpeg2v": "mpeg2video", "mpeg1v": "mpeg1video"}
)
AUDIO_DECODERS: Final[Mapping[str, str]] = MappingProxyType(
    {"aac": "aac", "latm": "aac_latm", "ac3": "ac3", "eac3": "eac3", "mpega": "mp2"}
)


@dataclass(frozen=True, slots=True)
class PictureResult:
    """One keyframe decode: the thumbnail (None when it did not decode)."""

    ok: bool
    thumb: Thumb | None
    full_range: bool
    size: tuple[int, int]
    thread: str
    cpu: float = 0.0


@dataclass(frozen=True, slots=True)
class LevelResult:
    """One audio window: its RMS level in dBFS (None when nothing decoded)."""

    ok: bool
    level_db: float | None
    samples: int
    thread: str


def elementary_stream(packets: bytes) -> bytes:
    """The ES bytes carried by whole TS packets of one PID, PES headers removed.

    Packets before the first PES start (the tail of a PES begun earlier),
    scrambled packets and packets flagged with a transport error are skipped.
    """
    if not packets:
        return b""
    rows = packet_rows(packets)
    keep = ((rows[:, 1] & 0x80) == 0) & ((rows[:, 3] & 0xC0) == 0) & ((rows[:, 3] & 0x10) != 0)
    pusi = (rows[:, 1] & 0x40) != 0
    first = np.flatnonzero(pusi & keep)
    if not len(first):
        return b""
    keep[: first[0]] = False
    rows, pusi = rows[keep], pusi[keep]
    start = np.where((rows[:, 3] & 0x20) != 0, 5 + rows[:, 4].astype(np.intp), 4)
    start = np.minimum(start, PACKET_SIZE)
    idx = np.arange(len(rows))
    at = np.minimum(start, PACKET_SIZE - 9)
    prefix = (rows[idx, at] == 0) & (rows[idx, at + 1] == 0) & (rows[idx, at + 2] == 1)
    header = 9 + rows[idx, at + 8].astype(np.intp)
    start = np.where(pusi & prefix & (start <= PACKET_SIZE - 9), start + header, start)
    mask = np.arange(PACKET_SIZE)[None, :] >= start[:, None]
    es: bytes = rows[mask].tobytes()
    return es


def _plane(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    plane = frame.planes[0]
    data = np.frombuffer(memoryview(plane), dtype=np.uint8)
    luma: npt.NDArray[np.uint8] = data.reshape(-1, plane.line_size)[: frame.height, : frame.width]
    return luma


def decode_picture(decoder: str, packets: bytes) -> PictureResult:
    """Decode the keyframe access unit carried by ``packets`` (one PES of a video PID)."""
    thread = threading.current_thread().name
    started = time.thread_time()
    es = elementary_stream(packets)
    try:
        ctx = av.CodecContext.create(decoder, "r")
        if not isinstance(ctx, VideoCodecContext):
            raise TypeError(f"{decoder} is not a video decoder")
        ctx.thread_count = 1
        frames: list[av.VideoFrame] = []
        for packet in [*ctx.parse(es), *ctx.parse(None)]:
            frames += ctx.decode(packet)
            if frames:
                break
        if not frames:
            frames += ctx.decode(None)
    except av.error.FFmpegError:
        frames = []
    if not frames:
        return PictureResult(False, None, False, (0, 0), thread, time.thread_time() - started)
    frame = frames[0]
    full = frame.format.name.startswith("yuvj") or frame.color_range == 2
    thumb = downscale_luma(_plane(frame))
    cpu = time.thread_time() - started
    return PictureResult(True, thumb, full, (frame.width, frame.height), thread, cpu)


def _mpeg_audio_decoder(es: bytes) -> str:
    """``mp2`` or ``mp3float`` from the layer bits of the first MPEG audio frame header."""
    arr = np.frombuffer(es, dtype=np.uint8)
    syncs = np.flatnonzero((arr[:-1] == 0xFF) & ((arr[1:] & 0xE0) == 0xE0))
    if len(syncs) and (arr[syncs[0] + 1] >> 1) & 0x03 == 1:
        return "mp3float"
    return "mp2"


def decode_level(decoder: str, packets: bytes) -> LevelResult:
    """Decode the audio carried by ``packets`` (one PID, ~1 s) to its RMS level."""
    thread = threading.current_thread().name
    es = elementary_stream(packets)
    if decoder == "mp2":
        decoder = _mpeg_audio_decoder(es)
    chunks: list[npt.NDArray[Any]] = []
    try:
        ctx = av.CodecContext.create(decoder, "r")
        if not isinstance(ctx, AudioCodecContext):
            raise TypeError(f"{decoder} is not an audio decoder")
        for packet in [*ctx.parse(es), *ctx.parse(None)]:
            try:
                decoded = ctx.decode(packet)
            except av.error.InvalidDataError:
                continue  # one damaged frame; the level comes from the rest
            chunks += [f.to_ndarray() for f in decoded]
    except av.error.FFmpegError:
        chunks = []
    samples = sum(int(c.size) for c in chunks)
    if not samples:
        return LevelResult(False, None, 0, thread)
    flat = np.concatenate([c.reshape(-1) for c in chunks])
    return LevelResult(True, rms_dbfs(flat), samples, thread)

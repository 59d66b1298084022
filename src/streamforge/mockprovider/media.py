"""Real H.264 + AAC MPEG-TS test media for the mock provider, generated once with PyAV.

Theory of operation
-------------------
A :class:`MediaProfile` describes one "provider flavour" of live feed: picture size,
frame rate, bitrates and — because real providers differ here — the MPEG-TS service
id (program number), PMT PID and elementary-stream PIDs. :func:`encode_clip` renders
a short test pattern (colour bars, a moving box, a sine tone) with ``libx264``
(``preset=ultrafast``, ``tune=zerolatency``, no B-frames, one keyframe per second)
and the native AAC encoder (48 kHz stereo), and muxes it with ffmpeg's ``mpegts``
muxer at a constant ``muxrate`` (the muxer pads with null packets), so bytes and
PCR advance linearly together and pacing by byte rate is pacing by PCR.

The loop length is a whole number of video frames *and* of AAC frames (1024
samples), so a clip of ``loop_frames`` frames spans exactly ``period_90k`` ticks
on both elementary streams. :class:`MediaLibrary` caches the encoded file on disk
(keyed by a hash of the profile and the generator version; written atomically) and
the parsed :class:`MediaClip` in memory.

A :class:`MediaClip` knows, for every TS packet, its PID; it also knows where every
PCR, PTS and DTS field sits and where the random-access entry points are (the PAT
sent right before each video keyframe). :meth:`MediaClip.render` produces the bytes
of loop number ``k`` of an endless feed: loop 0 is the file itself; loop ``k`` adds
``k * period_90k`` to every PCR/PTS/DTS (modulo 2**33, as in a real broadcast) and
``k * (payload packets of that PID)`` to every continuity counter. The result is an
endless stream with continuous timestamps and continuity counters — no
discontinuity flag is needed at the loop point.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import platformdirs

from streamforge.errors import ConfigError

TS_PACKET = 188
PTS_MODULO = 1 << 33
AUDIO_RATE = 48_000
AAC_FRAME = 1024
#: Bumped whenever the encoder settings change, so stale cache files are not reused.
GENERATOR_VERSION = 3


@dataclass(frozen=True)
class MediaProfile:
    """One flavour of provider feed: picture, bitrates and MPEG-TS identifiers."""

    name: str
    width: int
    height: int
    fps: int = 25
    loop_frames: int = 240
    video_bitrate: int = 400_000
    audio_bitrate: int = 96_000
    mux_rate: int = 1_500_000
    service_id: int = 1
    pmt_pid: int = 0x1000
    start_pid: int = 0x100
    tone_hz: float = 1000.0
    hue: int = 0

    def __post_init__(self) -> None:
        samples = self.loop_frames * AUDIO_RATE
        if samples % self.fps or (samples // self.fps) % AAC_FRAME:
            raise ConfigError(
                f"media profile {self.name!r}: loop_frames={self.loop_frames} at fps={self.fps} "
                "is not a whole number of AAC frames (use a multiple of 8 frames at 25 fps)"
            )
        if (self.loop_frames * 90_000) % self.fps:
            raise ConfigError(f"media profile {self.name!r}: loop length is not whole 90 kHz ticks")
        if self.width % 2 or self.height % 2:
            raise ConfigError(f"media profile {self.name!r}: width and height must be even")
        if self.video_bitrate + self.audio_bitrate >= self.mux_rate:
            raise ConfigError(f"media profile {self.name!r}: mux_rate must exceed the content rate")

    @property
    def video_pid(self) -> int:
        return self.start_pid

    @property
    def audio_pid(self) -> int:
        return self.start_pid + 1

    @property
    def period_90k(self) -> int:
        """Loop length in 90 kHz ticks."""
        return self.loop_frames * 90_000 // self.fps

    @property
    def audio_frames(self) -> int:
        return self.loop_frames * AUDIO_RATE // self.fps // AAC_FRAME

    def cache_key(self) -> str:
        """A stable file-name-safe key covering every setting and the generator version."""
        payload = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return f"{self.name}-{self.width}x{self.height}-{digest}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaProfile:
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError(f"media profile: {exc}") from exc


def default_profiles() -> dict[str, MediaProfile]:
    """The built-in profiles: small pictures (fast to encode), different PIDs per provider.

    ``high`` is padded to 8 Mbit/s with null packets for the throughput benchmarks.
    """
    profiles = [
        MediaProfile("sd", 320, 240, service_id=1, pmt_pid=0x1000, start_pid=0x100,
                     mux_rate=1_000_000, video_bitrate=300_000, tone_hz=440.0, hue=0),
        MediaProfile("hd", 480, 270, service_id=17, pmt_pid=0x0020, start_pid=0x0021,
                     mux_rate=2_000_000, video_bitrate=600_000, tone_hz=660.0, hue=60),
        MediaProfile("fhd", 640, 360, service_id=301, pmt_pid=0x1100, start_pid=0x1200,
                     mux_rate=3_000_000, video_bitrate=900_000, tone_hz=880.0, hue=120),
        MediaProfile("high", 480, 270, service_id=4711, pmt_pid=0x0100, start_pid=0x0200,
                     mux_rate=8_000_000, video_bitrate=900_000, tone_hz=1000.0, hue=200),
    ]
    return {p.name: p for p in profiles}


def default_cache_dir() -> Path:
    """``$STREAMFORGE_MOCK_MEDIA_CACHE`` or the per-user cache dir (never the repository)."""
    env = os.environ.get("STREAMFORGE_MOCK_MEDIA_CACHE")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("streamforge", appauthor=False)) / "mock-media"


# --------------------------------------------------------------------------- encoding


def _pattern_background(profile: MediaProfile) -> npt.NDArray[np.uint8]:
    """Eight vertical colour bars, rotated by the profile's hue so profiles look different."""
    bars = np.array(
        [[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16],
         [235, 16, 235], [235, 16, 16], [16, 16, 235], [16, 16, 16]],
        dtype=np.uint8,
    )
    shift = (profile.hue // 45) % 8
    bars = np.roll(bars, shift, axis=0)
    cols = (np.arange(profile.width) * 8) // profile.width
    row = bars[cols]
    return np.repeat(row[np.newaxis, :, :], profile.height, axis=0)


def _video_frame(profile: MediaProfile, background: npt.NDArray[np.uint8], i: int) -> av.VideoFrame:
    img = background.copy()
    box = max(8, profile.height // 6)
    travel = profile.width - box
    # The box crosses the picture once per loop and back, so the loop point is seamless.
    phase = i / profile.loop_frames
    x = int(travel * (1 - abs(1 - 2 * phase)))
    y = (profile.height - box) // 2
    img[y : y + box, x : x + box] = 255
    # A frame counter as a binary strip along the bottom edge (useful when debugging splices).
    strip = profile.height - 6
    for bit in range(12):
        value = 255 if (i >> bit) & 1 else 0
        img[strip:, bit * 8 : bit * 8 + 6] = value
    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    return frame.reformat(format="yuv420p")


def encode_clip(profile: MediaProfile, path: Path) -> None:
    """Encode ``profile`` to an MPEG-TS file at ``path`` (blocking; run it in a thread)."""
    options = {
        "mpegts_service_id": str(profile.service_id),
        "mpegts_pmt_start_pid": str(profile.pmt_pid),
        "mpegts_start_pid": str(profile.start_pid),
        "muxrate": str(profile.mux_rate),
    }
    gop = str(profile.fps)
    out = av.open(str(path), "w", format="mpegts", options=options)
    try:
        video = out.add_stream(
            "libx264",
            rate=profile.fps,
            options={
                "preset": "ultrafast", "tune": "zerolatency", "g": gop, "keyint_min": gop,
                "sc_threshold": "0", "bf": "0",
            },
        )
        video.width = profile.width
        video.height = profile.height
        video.pix_fmt = "yuv420p"
        video.bit_rate = profile.video_bitrate
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        audio.bit_rate = profile.audio_bitrate

        timed: list[tuple[Fraction, int, Any]] = []
        background = _pattern_background(profile)
        vtb = Fraction(1, profile.fps)
        for i in range(profile.loop_frames):
            frame = _video_frame(profile, background, i)
            frame.pts = i
            frame.time_base = vtb
            for packet in video.encode(frame):
                timed.append((Fraction(packet.pts or 0) * vtb, 0, packet))
        for packet in video.encode(None):
            timed.append((Fraction(packet.pts or 0) * vtb, 0, packet))

        atb = Fraction(1, AUDIO_RATE)
        n_samples = profile.audio_frames * AAC_FRAME
        # Whole cycles of the tone per loop, so the loop point is click-free.
        cycles = max(1, round(profile.tone_hz * n_samples / AUDIO_RATE))
        t = np.arange(n_samples, dtype=np.float64) / n_samples
        tone = (0.25 * np.sin(2 * np.pi * cycles * t)).astype(np.float32)
        audio_packets: list[Any] = []
        fmt = audio.codec_context.format.name
        for j in range(profile.audio_frames):
            chunk = tone[j * AAC_FRAME : (j + 1) * AAC_FRAME]
            planes = np.stack([chunk, chunk])
            if not fmt.endswith("p"):
                planes = planes.T.reshape(1, -1)
            aframe = av.AudioFrame.from_ndarray(planes, format=fmt, layout="stereo")
            aframe.sample_rate = AUDIO_RATE
            aframe.pts = j * AAC_FRAME
            aframe.time_base = atb
            audio_packets.extend(audio.encode(aframe))
        audio_packets.extend(audio.encode(None))
        # Exactly audio_frames packets on a gap-free timeline (the encoder's priming
        # packet becomes frame 0), so the loop spans the same time as the video.
        for j, packet in enumerate(audio_packets[: profile.audio_frames]):
            packet.pts = j * AAC_FRAME
            packet.dts = j * AAC_FRAME
            packet.time_base = atb
            timed.append((Fraction(j * AAC_FRAME) * atb, 1, packet))

        timed.sort(key=lambda item: (item[0], item[1]))
        for _, _, packet in timed:
            out.mux(packet)
    finally:
        out.close()


# --------------------------------------------------------------------------- parsing


def _read_ts(data: bytes, offset: int) -> int:
    """Decode a 33-bit PES timestamp from the 5 bytes at ``offset``."""
    b = data[offset : offset + 5]
    return (
        ((b[0] >> 1) & 0x07) << 30
        | b[1] << 22
        | (b[2] >> 1) << 15
        | b[3] << 7
        | b[4] >> 1
    )


def _write_ts(buf: bytearray, offset: int, value: int) -> None:
    """Encode a 33-bit PES timestamp in place, keeping the 4-bit prefix of the field."""
    prefix = buf[offset] & 0xF0
    buf[offset] = prefix | ((value >> 29) & 0x0E) | 1
    buf[offset + 1] = (value >> 22) & 0xFF
    buf[offset + 2] = ((value >> 14) & 0xFE) | 1
    buf[offset + 3] = (value >> 7) & 0xFF
    buf[offset + 4] = ((value << 1) & 0xFE) | 1


def _read_pcr_base(data: bytes, offset: int) -> int:
    b = data[offset : offset + 5]
    return b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7


def _write_pcr_base(buf: bytearray, offset: int, base: int) -> None:
    buf[offset] = (base >> 25) & 0xFF
    buf[offset + 1] = (base >> 17) & 0xFF
    buf[offset + 2] = (base >> 9) & 0xFF
    buf[offset + 3] = (base >> 1) & 0xFF
    buf[offset + 4] = ((base & 1) << 7) | (buf[offset + 4] & 0x7F)


@dataclass(frozen=True)
class _Index:
    pids: npt.NDArray[np.int64]
    payload_counts: npt.NDArray[np.int64]
    pcr_offsets: npt.NDArray[np.int64]
    pcr_values: npt.NDArray[np.int64]
    ts_offsets: npt.NDArray[np.int64]
    ts_values: npt.NDArray[np.int64]
    entry_points: npt.NDArray[np.int64]


def _index(data: bytes, video_pid: int) -> _Index:
    if len(data) % TS_PACKET or not data:
        raise ConfigError("mock media file is not a whole number of TS packets")
    n = len(data) // TS_PACKET
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, TS_PACKET)
    if not bool(np.all(raw[:, 0] == 0x47)):
        raise ConfigError("mock media file has lost TS sync")
    pids = ((raw[:, 1].astype(np.int64) & 0x1F) << 8) | raw[:, 2].astype(np.int64)
    has_payload = (raw[:, 3] & 0x10) != 0
    payload_counts = np.bincount(pids[has_payload], minlength=8192).astype(np.int64)

    pcr_offsets: list[int] = []
    pcr_values: list[int] = []
    ts_offsets: list[int] = []
    ts_values: list[int] = []
    keyframes: list[int] = []
    pats = np.flatnonzero(pids == 0)
    has_af = (raw[:, 3] & 0x20) != 0
    pusi = (raw[:, 1] & 0x40) != 0
    for i in np.flatnonzero(has_af | pusi):
        base = int(i) * TS_PACKET
        pos = 4
        if has_af[i]:
            af_len = data[base + 4]
            if af_len > 0:
                flags = data[base + 5]
                if flags & 0x10:
                    pcr_offsets.append(base + 6)
                    pcr_values.append(_read_pcr_base(data, base + 6))
                if flags & 0x40 and pusi[i] and pids[i] == video_pid:
                    keyframes.append(int(i))
            pos = 5 + af_len
        if not pusi[i] or not has_payload[i] or pids[i] in (0, 0x1FFF):
            continue
        p = base + pos
        if data[p : p + 3] != b"\x00\x00\x01" or pos + 14 > TS_PACKET:
            continue
        flags = data[p + 7] >> 6
        if flags & 0x2:
            ts_offsets.append(p + 9)
            ts_values.append(_read_ts(data, p + 9))
        if flags == 0x3 and pos + 19 <= TS_PACKET:
            ts_offsets.append(p + 14)
            ts_values.append(_read_ts(data, p + 14))

    entries: list[int] = []
    for k in keyframes:
        j = int(np.searchsorted(pats, k, side="right")) - 1
        entries.append(int(pats[j]) * TS_PACKET if j >= 0 else k * TS_PACKET)
    if not entries:
        entries = [0]

    def arr(values: Iterable[int]) -> npt.NDArray[np.int64]:
        return np.asarray(list(values), dtype=np.int64)

    return _Index(
        pids=pids,
        payload_counts=payload_counts,
        pcr_offsets=arr(pcr_offsets),
        pcr_values=arr(pcr_values),
        ts_offsets=arr(ts_offsets),
        ts_values=arr(ts_values),
        entry_points=np.unique(arr(entries)),
    )


@dataclass(frozen=True)
class MediaClip:
    """One encoded loop plus the index needed to render it as an endless live feed."""

    profile: MediaProfile
    data: bytes
    index: _Index = field(repr=False)

    @classmethod
    def from_bytes(cls, profile: MediaProfile, data: bytes) -> MediaClip:
        return cls(profile=profile, data=data, index=_index(data, profile.video_pid))

    @property
    def loop_bytes(self) -> int:
        return len(self.data)

    @property
    def period(self) -> float:
        """Loop length in seconds."""
        return self.profile.loop_frames / self.profile.fps

    @property
    def byte_rate(self) -> float:
        """Bytes per second at which the loop plays in real time."""
        return self.loop_bytes / self.period

    @property
    def entry_points(self) -> npt.NDArray[np.int64]:
        """Byte offsets (packet-aligned) of the PAT preceding each video keyframe."""
        return self.index.entry_points

    def entry_at_or_before(self, offset: int) -> int:
        """The last entry point at or before ``offset`` within the loop."""
        points = self.index.entry_points
        j = int(np.searchsorted(points, offset, side="right")) - 1
        return int(points[max(j, 0)])

    def render(self, loop: int, start: int, end: int, pts_offset: int = 0) -> bytes:
        """Bytes ``[start, end)`` of loop number ``loop`` (both packet-aligned).

        ``pts_offset`` (90 kHz ticks) is added to every timestamp on top of the loop
        shift, so different streams built from the same clip have unrelated clocks.
        """
        if start % TS_PACKET or end % TS_PACKET or not 0 <= start <= end <= self.loop_bytes:
            raise ValueError(f"render range [{start}, {end}) is not packet-aligned in the loop")
        if (loop == 0 and pts_offset == 0) or start == end:
            return self.data[start:end]
        idx = self.index
        buf = bytearray(self.data[start:end])
        packets = np.frombuffer(buf, dtype=np.uint8).reshape(-1, TS_PACKET)
        lut = (idx.payload_counts * loop) & 0x0F
        add = lut[idx.pids[start // TS_PACKET : end // TS_PACKET]].astype(np.uint8)
        header = packets[:, 3]
        packets[:, 3] = (header & 0xF0) | ((header + add) & 0x0F)
        shift = loop * self.profile.period_90k + pts_offset
        lo, hi = np.searchsorted(idx.ts_offsets, [start, end])
        for k in range(int(lo), int(hi)):
            off = int(idx.ts_offsets[k])
            _write_ts(buf, off - start, (int(idx.ts_values[k]) + shift) % PTS_MODULO)
        lo, hi = np.searchsorted(idx.pcr_offsets, [start, end])
        for k in range(int(lo), int(hi)):
            off = int(idx.pcr_offsets[k])
            _write_pcr_base(buf, off - start, (int(idx.pcr_values[k]) + shift) % PTS_MODULO)
        return bytes(buf)

    def read(self, position: int, end: int, pts_offset: int = 0) -> bytes:
        """Bytes ``[position, end)`` of the endless feed (absolute, packet-aligned)."""
        out: list[bytes] = []
        size = self.loop_bytes
        while position < end:
            loop, offset = divmod(position, size)
            take = min(size - offset, end - position)
            out.append(self.render(loop, offset, offset + take, pts_offset))
            position += take
        return b"".join(out)


def pts_offset_for(stream_id: int) -> int:
    """A fixed, stream-specific clock offset (90 kHz ticks) below 2**32.

    Real providers' clocks are unrelated, so each stream gets its own; staying below
    2**32 keeps a 2**33 wrap-around more than 13 hours away, so tests stay deterministic.
    """
    return (stream_id * 0x9E3779B1) % (1 << 32)


class MediaLibrary:
    """Encodes profiles on first use, caches files on disk and clips in memory.

    Encoding runs in a worker thread; concurrent requests for the same profile share
    one encode. Cache files are written to a temporary name and renamed into place, so
    a crash or a second process never leaves a half-written file under the final name.
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        profiles: Mapping[str, MediaProfile] | None = None,
    ) -> None:
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.profiles: dict[str, MediaProfile] = dict(profiles or default_profiles())
        self._clips: dict[str, MediaClip] = {}
        self._pending: dict[str, asyncio.Future[MediaClip]] = {}

    def profile(self, name: str) -> MediaProfile:
        try:
            return self.profiles[name]
        except KeyError:
            raise ConfigError(f"unknown media profile {name!r}") from None

    def path_for(self, profile: MediaProfile) -> Path:
        return self.cache_dir / f"{profile.cache_key()}.ts"

    def load_sync(self, name: str) -> MediaClip:
        """Return the clip for ``name``, encoding it now if it is not cached (blocking)."""
        clip = self._clips.get(name)
        if clip is not None:
            return clip
        profile = self.profile(name)
        path = self.path_for(profile)
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".encoding-", suffix=".ts", dir=self.cache_dir)
            os.close(fd)
            try:
                encode_clip(profile, Path(tmp))
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        clip = MediaClip.from_bytes(profile, path.read_bytes())
        self._clips[name] = clip
        return clip

    async def get(self, name: str) -> MediaClip:
        """Return the clip for ``name``, encoding it in a worker thread if needed."""
        clip = self._clips.get(name)
        if clip is not None:
            return clip
        pending = self._pending.get(name)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(None, self.load_sync, name)
            self._pending[name] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(name, None))
        return await asyncio.shield(pending)

    async def warm(self, names: Iterable[str]) -> None:
        """Encode/load every named profile (in parallel threads)."""
        async with asyncio.TaskGroup() as group:
            for name in sorted(set(names)):
                group.create_task(self.get(name), name=f"mock-media-warm:{name}")

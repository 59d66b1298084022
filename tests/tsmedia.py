"""Small real MPEG-TS files for tests: H.264 video + AAC audio made with PyAV.

Each file is encoded on demand into a temporary directory (nothing binary is
checked in).  The caller chooses resolution, duration, GOP length, the
service (program) number, the PMT PID and the first elementary PID, through
the FFmpeg mpegts muxer options ``mpegts_service_id``,
``mpegts_pmt_start_pid`` and ``mpegts_start_pid``.  Video is a moving
gradient (so every frame differs), audio a sine tone; ``bframes`` lets a test
exercise PTS != DTS.  ``picture`` may instead ask for a black picture or a
still slate (bars and a block of "text"), ``tone_level`` for quieter audio
or digital silence.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class MediaSpec:
    """What to encode."""

    width: int = 320
    height: int = 240
    seconds: float = 2.0
    fps: int = 25
    gop: int = 12
    service_id: int = 1
    pmt_pid: int = 0x1000
    start_pid: int = 0x100
    bframes: int = 0
    audio: bool = True
    sample_rate: int = 48_000
    video_bitrate: int = 0
    tone_hz: float = 440.0
    picture: str = "gradient"  # "gradient" (moving), "black", or "still" (a static slate)
    tone_level: float = 0.3  # 0.0 is digital silence


def _picture(spec: MediaSpec, n: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    img = np.zeros((spec.height, spec.width, 3), dtype=np.uint8)
    if spec.picture == "black":
        return img
    if spec.picture == "still":
        bars = (xs * 7 // spec.width).astype(np.uint8)
        img[..., 0] = np.where(bars & 1, 200, 30)
        img[..., 1] = np.where(bars & 2, 200, 30)
        img[..., 2] = np.where(bars & 4, 200, 30)
        text = (ys > spec.height // 3) & (ys < spec.height // 2) & ((xs // 3 + ys // 4) % 3 == 0)
        img[text] = 255
        return img
    img[..., 0] = (xs + 4 * n) % 256
    img[..., 1] = (ys + 2 * n) % 256
    img[..., 2] = (xs + ys + 8 * n) % 256
    return img


def make_ts(path: Path, spec: MediaSpec = MediaSpec()) -> Path:
    """Encode ``spec`` into the MPEG-TS file ``path`` and return it."""
    options = {
        "mpegts_service_id": str(spec.service_id),
        "mpegts_pmt_start_pid": str(spec.pmt_pid),
        "mpegts_start_pid": str(spec.start_pid),
    }
    with av.open(str(path), "w", format="mpegts", options=options) as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width = spec.width
        video.height = spec.height
        video.pix_fmt = "yuv420p"
        x264 = {
            "preset": "ultrafast",
            "g": str(spec.gop),
            "keyint_min": str(spec.gop),
            "sc_threshold": "0",
            "bf": str(spec.bframes),
        }
        if spec.video_bitrate:
            video.bit_rate = spec.video_bitrate
        video.options = x264
        audio = None
        if spec.audio:
            audio = out.add_stream("aac", rate=spec.sample_rate)
            audio.layout = "stereo"
        frames = round(spec.seconds * spec.fps)
        ys, xs = np.mgrid[0 : spec.height, 0 : spec.width]
        samples_per_frame = 1024
        audio_pts = 0
        audio_end = round(spec.seconds * spec.sample_rate)
        for n in range(frames):
            img = _picture(spec, n, xs, ys)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = n
            frame.time_base = Fraction(1, spec.fps)
            for packet in video.encode(frame):
                out.mux(packet)
            if audio is None:
                continue
            video_time = (n + 1) / spec.fps
            while audio_pts < audio_end and audio_pts / spec.sample_rate < video_time:
                t = (np.arange(samples_per_frame) + audio_pts) / spec.sample_rate
                tone = (spec.tone_level * np.sin(2 * np.pi * spec.tone_hz * t)).astype(np.float32)
                aframe = av.AudioFrame.from_ndarray(
                    np.stack([tone, tone]), format="fltp", layout="stereo"
                )
                aframe.sample_rate = spec.sample_rate
                aframe.pts = audio_pts
                aframe.time_base = Fraction(1, spec.sample_rate)
                for packet in audio.encode(aframe):
                    out.mux(packet)
                audio_pts += samples_per_frame
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            for packet in audio.encode(None):
                out.mux(packet)
    return path


@dataclass(frozen=True)
class Decoded:
    """What PyAV made of a transport stream."""

    video_pts: list[float]
    audio_pts: list[float]
    video_sizes: list[tuple[int, int]]
    errors: int


def decode_ts(path: Path) -> Decoded:
    """Decode every video and audio frame of ``path`` (times in seconds)."""
    video_pts: list[float] = []
    audio_pts: list[float] = []
    sizes: list[tuple[int, int]] = []
    errors = 0
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        for packet in container.demux(*streams):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                errors += 1
                continue
            for frame in frames:
                if frame.pts is None or frame.time_base is None:
                    continue
                t = float(frame.pts * frame.time_base)
                if packet.stream.type == "video":
                    video_pts.append(t)
                    sizes.append((frame.width, frame.height))
                else:
                    audio_pts.append(t)
    return Decoded(video_pts, audio_pts, sizes, errors)


# --------------------------------------------------------------------------
# Synthetic streams: byte-exact, instant, for unit and property tests.
# --------------------------------------------------------------------------

_CRC_POLY = 0x04C11DB7


def mpeg_crc(data: bytes) -> int:
    """MPEG-2 CRC-32, bit by bit (independent of the implementation under test)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLY) & 0xFFFFFFFF if crc & 0x80000000 else crc << 1
    return crc


def _section(table_id: int, ext: int, body: bytes, version: int = 0) -> bytes:
    length = 5 + len(body) + 4
    head = bytes(
        [
            table_id,
            0xB0 | (length >> 8),
            length & 0xFF,
            ext >> 8,
            ext & 0xFF,
            0xC1 | (version << 1),
            0,
            0,
        ]
    )
    data = head + body
    return data + mpeg_crc(data).to_bytes(4, "big")


@dataclass(frozen=True)
class SynthStream:
    """One elementary stream of a synthetic program."""

    pid: int
    stream_type: int
    language: str | None = None


@dataclass(frozen=True)
class SynthSpec:
    """A synthetic program: PAT/PMT every ``psi_every`` frames, PCR on the video PID."""

    program: int = 1
    pmt_pid: int = 0x1000
    streams: tuple[SynthStream, ...] = (
        SynthStream(0x100, 0x1B),
        SynthStream(0x101, 0x0F, "eng"),
    )
    frames: int = 48
    gop: int = 12
    first_pts: int = 126_000
    frame_ticks: int = 3600
    audio_lead: int = 0
    video_bytes: int = 700
    audio_bytes: int = 300
    psi_every: int = 6
    rai: bool = True
    idr_prelude: bool = True
    pcr_delay: int = 63_000
    first_frame: int = 0
    cc_start: int = 0
    extra_pid: int | None = None
    pcr_pid: int | None = None  # default: the video PID


def _pcr_pid(spec: SynthSpec) -> int:
    if spec.pcr_pid is not None:
        return spec.pcr_pid
    return next(s.pid for s in spec.streams if s.stream_type in (0x1B, 0x24))


def _pcr_only(pid: int, pcr: int, cc: int) -> bytes:
    base, ext = divmod(pcr % ((1 << 33) * 300), 300)
    af = bytes([0x10]) + (base >> 1).to_bytes(4, "big")
    af += bytes([((base & 1) << 7) | 0x7E | (ext >> 8), ext & 0xFF])
    af += b"\xff" * (183 - len(af))
    return bytes([0x47, pid >> 8, pid & 0xFF, 0x20 | cc, 183]) + af


def _pmt_body(spec: SynthSpec) -> bytes:
    pcr_pid = _pcr_pid(spec)
    body = bytes([0xE0 | (pcr_pid >> 8), pcr_pid & 0xFF, 0xF0, 0])
    for s in spec.streams:
        desc = b""
        if s.language:
            desc = bytes([0x0A, 4]) + s.language.encode() + b"\x00"
        body += (
            bytes(
                [
                    s.stream_type,
                    0xE0 | (s.pid >> 8),
                    s.pid & 0xFF,
                    0xF0 | (len(desc) >> 8),
                    len(desc) & 0xFF,
                ]
            )
            + desc
        )
    return body


def _ts_field(prefix: int, value: int) -> bytes:
    value %= 1 << 33
    return bytes(
        [
            (prefix << 4) | ((value >> 29) & 0x0E) | 1,
            (value >> 22) & 0xFF,
            ((value >> 14) & 0xFE) | 1,
            (value >> 7) & 0xFF,
            ((value << 1) & 0xFE) | 1,
        ]
    )


def _pes(stream_id: int, pts: int, dts: int | None, payload: bytes, bounded: bool) -> bytes:
    if dts is None:
        header = bytes([0x80, 0x80, 5]) + _ts_field(2, pts)
    else:
        header = bytes([0x80, 0xC0, 10]) + _ts_field(3, pts) + _ts_field(1, dts)
    length = len(header) + len(payload) if bounded else 0
    return b"\x00\x00\x01" + bytes([stream_id, length >> 8, length & 0xFF]) + header + payload


class _Packetizer:
    def __init__(self, cc_start: int) -> None:
        self.cc: dict[int, int] = {}
        self.cc_start = cc_start
        self.out = bytearray()

    def emit(
        self,
        pid: int,
        payload: bytes,
        *,
        pcr: int | None = None,
        rai: bool = False,
        psi: bool = False,
    ) -> None:
        if psi:
            payload = b"\x00" + payload
        first = True
        while first or payload:
            af = b""
            if first and (pcr is not None or rai):
                flags = (0x40 if rai else 0) | (0x10 if pcr is not None else 0)
                af = bytes([flags])
                if pcr is not None:
                    base, ext = divmod(pcr % ((1 << 33) * 300), 300)
                    af += (base >> 1).to_bytes(4, "big") + bytes(
                        [((base & 1) << 7) | 0x7E | (ext >> 8), ext & 0xFF]
                    )
            room = 184 - (1 + len(af) if af else 0)
            chunk, payload = payload[:room], payload[room:]
            pad = room - len(chunk)
            if af:
                field = bytes([len(af) + pad]) + af + b"\xff" * pad
            elif pad == 1:
                field = b"\x00"
            elif pad > 1:
                field = bytes([pad - 1, 0]) + b"\xff" * (pad - 2)
            else:
                field = b""
            cc = self.cc.get(pid, self.cc_start - 1)
            cc = (cc + 1) & 0x0F
            self.cc[pid] = cc
            afc = 0x30 if field else 0x10
            head = bytes([0x47, (0x40 if first else 0) | (pid >> 8), pid & 0xFF, afc | cc])
            packet = head + field + chunk
            assert len(packet) == 188, len(packet)
            self.out += packet
            first = False


def synth_ts(spec: SynthSpec = SynthSpec()) -> bytes:
    """Build a byte-exact synthetic transport stream.

    Video PES (H.264 stream type 0x1B or HEVC 0x24) carry an AUD, and on
    keyframes SPS/PPS/SEI then an IDR (H.264 NAL 5 / HEVC NAL 19) slice,
    otherwise a non-IDR slice.  Each video frame is followed by one audio PES
    per audio stream (``audio_lead`` ticks ahead of the frame's PTS).  A PCR,
    ``pcr_delay`` ticks before each frame's DTS, rides on the first packet of
    the PES of ``pcr_pid`` (default: video), or on a PCR-only packet when
    ``pcr_pid`` is not an elementary stream.
    """
    p = _Packetizer(spec.cc_start)
    pat = _section(
        0x00,
        1,
        bytes(
            [
                spec.program >> 8,
                spec.program & 0xFF,
                0xE0 | (spec.pmt_pid >> 8),
                spec.pmt_pid & 0xFF,
            ]
        ),
    )
    pmt = _section(0x02, spec.program, _pmt_body(spec))
    video = [s for s in spec.streams if s.stream_type in (0x1B, 0x24)]
    audios = [s for s in spec.streams if s.stream_type not in (0x1B, 0x24)]
    for k in range(spec.frames):
        n = spec.first_frame + k
        if k % spec.psi_every == 0:
            p.emit(0, pat, psi=True)
            p.emit(spec.pmt_pid, pmt, psi=True)
        if spec.extra_pid is not None:
            p.emit(spec.extra_pid, b"\x00\x00\x01\xbd\x00\x00" + bytes(20))
        dts = spec.first_pts + n * spec.frame_ticks
        key = n % spec.gop == 0
        pcr_pid = _pcr_pid(spec)
        pcr = (dts - spec.pcr_delay) * 300
        if pcr_pid not in {s.pid for s in spec.streams}:
            p.out += _pcr_only(pcr_pid, pcr, p.cc.get(pcr_pid, 0))
        for v in video:
            hevc = v.stream_type == 0x24
            es = b"\x00\x00\x00\x01" + (b"\x46\x01\x50" if hevc else b"\x09\xf0")
            if key and spec.idr_prelude:
                es += b"\x00\x00\x00\x01" + (b"\x42\x01" if hevc else b"\x67\x42") + bytes(20)
                sei = b"\x4e\x01\x05" if hevc else b"\x06\x05"
                es += b"\x00\x00\x01" + sei + bytes(range(1, 250))
            nal = (
                (b"\x26\x01" if hevc else b"\x65\x88")
                if key
                else (b"\x02\x01" if hevc else b"\x41\x9a")
            )
            es += b"\x00\x00\x01" + nal + bytes([n & 0xFF]) * spec.video_bytes
            p.emit(
                v.pid,
                _pes(0xE0, dts, None, es, bounded=False),
                pcr=pcr if v.pid == pcr_pid else None,
                rai=key and spec.rai,
            )
        for i, a in enumerate(audios):
            es = b"\xff\xf1" + bytes([i, n & 0xFF]) * (spec.audio_bytes // 2)
            p.emit(
                a.pid,
                _pes(0xC0 + i, dts + spec.audio_lead, None, es, bounded=True),
                pcr=pcr if a.pid == pcr_pid else None,
            )
    return bytes(p.out)


@dataclass
class PacketInfo:
    """The fields of one output packet that tests check."""

    pid: int
    pusi: bool
    cc: int
    payload: bool
    tei: bool
    pcr: int | None
    discontinuity: bool
    pts: int | None
    dts: int | None
    body: bytes


def read_ts_fields(raw: bytes, at: int) -> int:
    """Decode a 5-byte PTS/DTS field."""
    return (
        ((raw[at] >> 1) & 7) << 30
        | raw[at + 1] << 22
        | (raw[at + 2] >> 1) << 15
        | raw[at + 3] << 7
        | raw[at + 4] >> 1
    )


def packets_of(data: bytes) -> list[PacketInfo]:
    """Split whole packets and decode their headers, PCR and PES timestamps."""
    assert len(data) % 188 == 0, "output must be whole packets"
    out = []
    for i in range(0, len(data), 188):
        p = data[i : i + 188]
        assert p[0] == 0x47
        afc = (p[3] >> 4) & 3
        start = 4
        pcr = None
        disc = False
        if afc & 2:
            af_len = p[4]
            if af_len:
                disc = bool(p[5] & 0x80)
                if p[5] & 0x10:
                    base = int.from_bytes(p[6:10], "big") << 1 | p[10] >> 7
                    pcr = base * 300 + ((p[10] & 1) << 8 | p[11])
            start = 5 + af_len
        pts = dts = None
        pusi = bool(p[1] & 0x40)
        if pusi and afc & 1 and p[start : start + 3] == b"\x00\x00\x01" and p[start + 3] >= 0xBD:
            flags = p[start + 7] >> 6
            if flags & 2:
                pts = read_ts_fields(p, start + 9)
            if flags == 3:
                dts = read_ts_fields(p, start + 14)
        out.append(
            PacketInfo(
                pid=(p[1] & 0x1F) << 8 | p[2],
                pusi=pusi,
                cc=p[3] & 15,
                payload=bool(afc & 1),
                tei=bool(p[1] & 0x80),
                pcr=pcr,
                discontinuity=disc,
                pts=pts,
                dts=dts,
                body=bytes(p[start:]) if afc & 1 else b"",
            )
        )
    return out


def cc_errors(packets: list[PacketInfo]) -> list[str]:
    """Continuity-counter violations, per the ffmpeg/ETSI TR 101 290 rule."""
    last: dict[int, int] = {}
    errors = []
    for n, p in enumerate(packets):
        if p.pid in last:
            want = (last[p.pid] + 1) & 15 if p.payload else last[p.pid]
            if p.cc != want:
                errors.append(f"packet {n} pid {p.pid:#x}: cc {p.cc} want {want}")
        last[p.pid] = p.cc
    return errors


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` into chunks at the given offsets (taken modulo its length + 1)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]

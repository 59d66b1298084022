"""PES headers: timestamps, 33-bit clock arithmetic and keyframe detection.

Theory of operation
-------------------
Every elementary-stream access unit is carried in a PES packet whose header
(at the start of the payload of a packet with payload_unit_start_indicator)
may hold a PTS and a DTS: 33-bit counts of a 90 kHz clock, each spread over
five bytes with marker bits.  The splicer moves a backup stream onto the
session's timeline by adding the same offset to every PTS, DTS and PCR; the
helpers here locate, read and rewrite those fields in place, keeping the
prefix nibbles and marker bits intact.

Because the clocks wrap at 2^33, timestamps are compared with
:func:`ts_diff`, the signed difference on the circle (a later timestamp just
after a wrap still compares as later).

Keyframes: a splice must start the client's video decoder at a random-access
point.  :class:`KeyframeProbe` examines the head of one video PES (possibly
spread over several packets) and decides whether it starts with an H.264 IDR
picture (NAL type 5), an HEVC IRAP picture (NAL types 16-23) or an MPEG-1/2
sequence header or I-picture.  It stops at the first picture NAL unit, so the
usual AUD/SPS/PPS/SEI prelude is skipped over without reading the whole frame.
"""

from __future__ import annotations

from typing import Final

PTS_HZ: Final = 90_000
PTS_MODULUS: Final = 1 << 33
PCR_PER_PTS: Final = 300
PCR_MODULUS: Final = PTS_MODULUS * PCR_PER_PTS

#: Stream ids whose PES packets have no optional header (and so no timestamps).
_NO_HEADER_IDS: Final = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})

#: How many payload bytes of a video PES the probe reads before giving up.
PROBE_LIMIT: Final = 4096


def ts_diff(a: int, b: int, modulus: int = PTS_MODULUS) -> int:
    """Signed ``a - b`` on a clock that wraps at ``modulus`` (result in ``[-m/2, m/2)``)."""
    half = modulus >> 1
    return ((a - b + half) % modulus) - half


def ts_add(a: int, delta: int, modulus: int = PTS_MODULUS) -> int:
    """``a + delta`` wrapped to the clock."""
    return (a + delta) % modulus


def read_timestamp(buf: bytes | bytearray, at: int) -> int:
    """Decode the 5-byte PTS/DTS field at ``at``."""
    return (
        ((buf[at] >> 1) & 0x07) << 30
        | buf[at + 1] << 22
        | (buf[at + 2] >> 1) << 15
        | buf[at + 3] << 7
        | buf[at + 4] >> 1
    )


def write_timestamp(buf: bytearray, at: int, value: int) -> None:
    """Encode ``value`` (wrapped to 33 bits) into the 5-byte field at ``at``.

    The 4-bit prefix already in the field is kept; marker bits are set.
    """
    value %= PTS_MODULUS
    buf[at] = (buf[at] & 0xF0) | ((value >> 29) & 0x0E) | 0x01
    buf[at + 1] = (value >> 22) & 0xFF
    buf[at + 2] = ((value >> 14) & 0xFE) | 0x01
    buf[at + 3] = (value >> 7) & 0xFF
    buf[at + 4] = ((value << 1) & 0xFE) | 0x01


def timestamp_positions(buf: bytes | bytearray, start: int, end: int) -> tuple[int, int]:
    """Positions of the PTS and DTS fields of a PES header in ``buf[start:end]``.

    ``start`` is where the PES packet begins (the ``00 00 01`` prefix).
    Returns ``(-1, -1)`` when there is no PES header or it carries no PTS, and
    ``(pts_at, -1)`` when there is a PTS but no DTS.
    """
    if end - start < 14 or buf[start] or buf[start + 1] or buf[start + 2] != 1:
        return -1, -1
    if buf[start + 3] in _NO_HEADER_IDS or buf[start + 6] & 0xC0 != 0x80:
        return -1, -1
    flags = buf[start + 7] >> 6
    if flags & 0x2 == 0:
        return -1, -1
    pts_at = start + 9
    if flags == 0x3 and end - start >= 19:
        return pts_at, start + 14
    return pts_at, -1


def pes_stream_id(buf: bytes | bytearray, start: int, end: int) -> int:
    """The stream_id of the PES starting at ``start``, or -1 if none starts there."""
    if end - start < 4 or buf[start] or buf[start + 1] or buf[start + 2] != 1:
        return -1
    return buf[start + 3]


def pes_payload_start(buf: bytes | bytearray, start: int, end: int) -> int:
    """Where the elementary-stream data of the PES starting at ``start`` begins."""
    if end - start < 9 or buf[start + 3] in _NO_HEADER_IDS:
        return min(end, start + 6)
    return min(end, start + 9 + buf[start + 8])


_H264_KEY: Final = frozenset({5})
_H264_PICTURE: Final = frozenset(range(1, 6))
_HEVC_KEY: Final = frozenset(range(16, 24))
_HEVC_PICTURE: Final = frozenset(range(32))


class KeyframeProbe:
    """Decides whether one video PES begins with a random-access picture.

    Create one per PES with the stream's codec, feed it elementary-stream
    bytes as packets arrive, and read :attr:`verdict`: ``None`` while
    undecided, then True or False.  Unknown codecs are decided by the
    adaptation field's random_access_indicator alone (the caller passes it
    as ``random_access``); with no indicator they count as keyframes, so a
    stream in a codec we cannot parse still splices, at a PES boundary.
    """

    def __init__(self, codec: str, *, random_access: bool = False) -> None:
        self._codec = codec
        self._data = bytearray()
        self._scanned = 0
        self.verdict: bool | None = None
        if random_access or codec not in ("h264", "hevc", "mpeg1v", "mpeg2v"):
            self.verdict = True

    def feed(self, data: bytes | bytearray) -> bool | None:
        """Add ES bytes; return the verdict so far."""
        if self.verdict is not None:
            return self.verdict
        self._data += data
        self._scan()
        if self.verdict is None and len(self._data) >= PROBE_LIMIT:
            self.verdict = False
        return self.verdict

    def _scan(self) -> None:
        data = self._data
        i = max(0, self._scanned - 3)
        while True:
            j = data.find(b"\x00\x00\x01", i)
            if j < 0 or j + 5 >= len(data):
                self._scanned = max(self._scanned, len(data) - 5)
                return
            self._classify(data, j + 3)
            if self.verdict is not None:
                return
            i = j + 3

    def _classify(self, data: bytearray, at: int) -> None:
        b = data[at]
        if self._codec == "h264":
            nal = b & 0x1F
            if nal in _H264_PICTURE:
                self.verdict = nal in _H264_KEY
        elif self._codec == "hevc":
            nal = (b >> 1) & 0x3F
            if nal in _HEVC_PICTURE:
                self.verdict = nal in _HEVC_KEY
        elif b == 0xB3:  # MPEG-1/2 sequence header precedes a random-access point
            self.verdict = True
        elif b == 0x00:  # picture header: picture_coding_type 1 is an I-picture
            self.verdict = ((data[at + 2] >> 3) & 0x07) == 1

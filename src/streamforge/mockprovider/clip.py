"""An encoded loop as an endless live feed with continuous clocks and counters.

A :class:`MediaClip` knows, for every TS packet, its PID; it also knows where every
PCR, PTS and DTS field sits and where the random-access entry points are (the PAT
sent right before each video keyframe). :meth:`MediaClip.render` produces the bytes
of loop number ``k`` of an endless feed: loop 0 is the file itself; loop ``k`` adds
``k * period_90k`` to every PCR/PTS/DTS (modulo 2**33, as in a real broadcast) and
``k * (payload packets of that PID)`` to every continuity counter. The result is an
endless stream with continuous timestamps and continuity counters — no
discontinuity flag is needed at the loop point. An optional per-stream ``pts_offset``
(:func:`pts_offset_for`) gives streams built from the same clip unrelated clocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streamforge.errors import ConfigError
from streamforge.mockprovider.profiles import PTS_MODULO, TS_PACKET, MediaProfile


def _read_ts(data: bytes, offset: int) -> int:
    """Decode a 33-bit PES timestamp from the 5 bytes at ``offset``."""
    b = data[offset : offset + 5]
    return ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


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
    #: The (in-file) PTS of the keyframe that follows each entry point.
    entry_pts: npt.NDArray[np.int64]


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
    keyframe_pts: dict[int, int] = {}
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
            if keyframes and keyframes[-1] == int(i):
                keyframe_pts[int(i)] = ts_values[-1]
        if flags == 0x3 and pos + 19 <= TS_PACKET:
            ts_offsets.append(p + 14)
            ts_values.append(_read_ts(data, p + 14))

    entry_pts: dict[int, int] = {}
    for k in keyframes:
        j = int(np.searchsorted(pats, k, side="right")) - 1
        entry = int(pats[j]) * TS_PACKET if j >= 0 else k * TS_PACKET
        entry_pts.setdefault(entry, keyframe_pts.get(k, -1))
    if not entry_pts:
        entry_pts = {0: -1}
    entries = sorted(entry_pts)

    def arr(values: Iterable[int]) -> npt.NDArray[np.int64]:
        return np.asarray(list(values), dtype=np.int64)

    return _Index(
        pids=pids,
        payload_counts=payload_counts,
        pcr_offsets=arr(pcr_offsets),
        pcr_values=arr(pcr_values),
        ts_offsets=arr(ts_offsets),
        ts_values=arr(ts_values),
        entry_points=arr(entries),
        entry_pts=arr(entry_pts[e] for e in entries),
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

    def entry_after(self, position: int) -> int:
        """The first entry point of the endless feed at or after absolute ``position``."""
        loop, within = divmod(position, self.loop_bytes)
        points = self.index.entry_points
        j = int(np.searchsorted(points, within, side="left"))
        if j < len(points):
            return loop * self.loop_bytes + int(points[j])
        return (loop + 1) * self.loop_bytes + int(points[0])

    def matching_entry(self, other: MediaClip, position: int) -> int | None:
        """The position in this clip's feed of the keyframe found at ``position`` of ``other``.

        ``position`` is an entry point of ``other``'s endless feed; the answer is the
        entry point of the same loop number here whose keyframe has the same PTS (so a
        feed can switch from ``other`` to this clip there without a timestamp jump), or
        None when this clip has no such keyframe (a different profile).
        """
        loop, within = divmod(position, other.loop_bytes)
        j = int(np.searchsorted(other.index.entry_points, within))
        if j >= len(other.index.entry_points) or other.index.entry_points[j] != within:
            return None
        pts = int(other.index.entry_pts[j])
        hits = np.flatnonzero(self.index.entry_pts == pts)
        if pts < 0 or not len(hits):
            return None
        return loop * self.loop_bytes + int(self.index.entry_points[int(hits[0])])

    def next_counters(self, position: int) -> dict[int, int]:
        """Per PID, the continuity counter the feed's next payload packet after ``position`` needs.

        Computed from the packets before ``position`` of the endless feed (the current
        loop so far, then the previous loop), as :meth:`render` numbers them.
        """
        size = self.loop_bytes
        loop, within = divmod(position, size)
        first = within // TS_PACKET
        raw = np.frombuffer(self.data, dtype=np.uint8).reshape(-1, TS_PACKET)
        pids = self.index.pids
        payload = (raw[:, 3] & 0x10) != 0
        counters: dict[int, int] = {}
        spans = [(loop, 0, first)]
        if loop > 0:
            spans.append((loop - 1, first, len(pids)))
        for span_loop, lo, hi in spans:
            sel = np.flatnonzero(payload[lo:hi]) + lo
            if not len(sel):
                continue
            # The last payload packet of each PID in the span.
            rev = sel[::-1]
            found, where = np.unique(pids[rev], return_index=True)
            for pid, k in zip(found.tolist(), where.tolist(), strict=True):
                if pid == 0x1FFF or pid in counters:
                    continue
                i = int(rev[k])
                shift = int(self.index.payload_counts[pid]) * span_loop
                counters[pid] = (int(raw[i, 3]) + shift + 1) & 0x0F
        return counters

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

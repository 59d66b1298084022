"""MPEG-TS packets: framing, resynchronisation and header fields.

Theory of operation
-------------------
An MPEG transport stream is a sequence of 188-byte packets, each starting with
the sync byte ``0x47``.  Upstream providers do not always deliver that cleanly:
an HTTP body may start with an HTML error page, a reconnecting proxy may cut a
packet in half, or a stream may contain garbage between packets.

:class:`PacketAligner` turns an arbitrary byte stream (delivered in chunks of
any size) into whole, aligned packets.  While *locked* it accepts packet ``i``
only when the sync byte is present both at its start and at the start of packet
``i + 1``; this rejects a packet that was truncated and followed by a fresh
packet (the truncated one would otherwise swallow the start of its successor).
The price is that the last whole packet in the buffer is held back until the
next sync byte is visible, i.e. at most one packet of latency.  When a check
fails, the aligner drops one byte and *resynchronises*: it searches for an
offset ``n`` with ``0x47`` at ``n``, ``n + 188`` and ``n + 376`` (three
confirmations, so a stray ``0x47`` inside payload does not fool it).

The checks are vectorised with NumPy over the sync-byte column, so a clean
stream costs a handful of array operations per chunk, not a Python loop per
packet.

The module also holds scalar helpers for the header fields the splicer needs
on the (rare) packets it inspects individually: PID, payload offset, PCR, the
adaptation-field flags, and builders for null and PCR-only packets.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

PACKET_SIZE: Final = 188
SYNC_BYTE: Final = 0x47
PAT_PID: Final = 0x0000
NULL_PID: Final = 0x1FFF
PID_COUNT: Final = 0x2000

#: A spec-correct null packet: PID 0x1FFF, payload only, 184 stuffing bytes.
NULL_PACKET: Final = b"\x47\x1f\xff\x10" + b"\xff" * 184

#: How many sync bytes, one packet apart, confirm a resynchronisation point.
SYNC_CONFIRMATIONS: Final = 3

PCR_MODULUS: Final = (1 << 33) * 300


def null_packets(count: int) -> bytes:
    """Return ``count`` null packets (PID 0x1FFF) for keeping a client's read alive."""
    if count < 0:
        raise ValueError("count must not be negative")
    return NULL_PACKET * count


def _u8(data: bytes | bytearray | memoryview) -> npt.NDArray[np.uint8]:
    return np.frombuffer(data, dtype=np.uint8)


def find_sync(
    data: bytes | bytearray | memoryview,
    start: int = 0,
    confirmations: int = SYNC_CONFIRMATIONS,
) -> int:
    """Return the first offset ``>= start`` confirmed as a packet boundary, or -1.

    An offset is confirmed when ``confirmations`` sync bytes sit one packet
    apart starting there.  Offsets too close to the end to be confirmed are not
    returned; the caller keeps those bytes and retries when more data arrives.
    """
    arr = _u8(data)
    span = PACKET_SIZE * (confirmations - 1)
    limit = len(arr) - span
    if limit <= start:
        return -1
    candidates = np.flatnonzero(arr[start:limit] == SYNC_BYTE) + start
    if len(candidates) == 0:
        return -1
    confirmed = np.ones(len(candidates), dtype=bool)
    for k in range(1, confirmations):
        confirmed &= arr[candidates + k * PACKET_SIZE] == SYNC_BYTE
    hits = candidates[confirmed]
    return int(hits[0]) if len(hits) else -1


def looks_like_ts(data: bytes | bytearray | memoryview, *, min_packets: int = 3) -> bool:
    """Tell whether ``data`` looks like an MPEG transport stream.

    True when, from some offset within the first packet, every byte at a
    188-byte stride is the sync byte and at least ``min_packets`` such sync
    bytes are present.  An HTML page, JSON or an empty body returns False; the
    upstream reader uses this to reject a provider's error page.
    """
    arr = _u8(data)
    if len(arr) < PACKET_SIZE * (min_packets - 1) + 1:
        return False
    for offset in np.flatnonzero(arr[:PACKET_SIZE] == SYNC_BYTE):
        syncs = arr[int(offset) :: PACKET_SIZE]
        if len(syncs) >= min_packets and bool((syncs == SYNC_BYTE).all()):
            return True
    return False


class PacketAligner:
    """Reassembles whole, aligned 188-byte packets from a chunked byte stream.

    :meth:`feed` returns a :class:`bytearray` holding only whole packets (its
    length is a multiple of 188).  Counters: :attr:`resyncs` (times the lock
    was lost or acquired after skipping bytes) and :attr:`bytes_skipped`.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._locked = False
        self._ever_locked = False
        self.resyncs = 0
        self.bytes_skipped = 0

    @property
    def pending(self) -> int:
        """Bytes held back (a partial packet, or the last packet awaiting its successor)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Consume ``data``; return the whole packets it completes."""
        buf = self._buf
        buf += data
        out: bytearray | None = None
        while buf:
            if not self._locked and not self._lock(buf):
                break
            taken, clean = self._take_locked(buf)
            if taken:
                out = taken if out is None else out + taken
            if clean:
                break
            # The packet at the head is not followed by a sync byte: it is
            # truncated or corrupt.  Drop a byte and search again.
            del buf[:1]
            self.bytes_skipped += 1
            self._locked = False
            self.resyncs += 1
        return out if out is not None else bytearray()

    def flush(self) -> bytearray:
        """At end of stream, release the held last packet if it is whole and synced."""
        buf = self._buf
        out = bytearray()
        if self._locked and len(buf) >= PACKET_SIZE and buf[0] == SYNC_BYTE:
            out = buf[:PACKET_SIZE]
        self.reset()
        return out

    def reset(self) -> None:
        """Forget buffered bytes and the lock (counters are kept)."""
        self._buf = bytearray()
        self._locked = False

    def _lock(self, buf: bytearray) -> bool:
        pos = find_sync(buf)
        if pos < 0:
            keep = PACKET_SIZE * (SYNC_CONFIRMATIONS - 1)
            drop = len(buf) - keep
            if drop > 0:
                del buf[:drop]
                self.bytes_skipped += drop
            return False
        if pos:
            del buf[:pos]
            self.bytes_skipped += pos
            if not self._ever_locked:
                self.resyncs += 1
        self._locked = True
        self._ever_locked = True
        return True

    @staticmethod
    def _take_locked(buf: bytearray) -> tuple[bytearray, bool]:
        """Take the verified packets from the head of ``buf``.

        Returns the packets and whether the scan ended cleanly (True) or hit a
        packet whose successor lacks a sync byte (False).
        """
        syncs = _u8(buf)[::PACKET_SIZE] == SYNC_BYTE
        good = syncs[:-1] & syncs[1:]
        if bool(good.all()):
            count, clean = len(good), True
        else:
            count, clean = int(np.argmin(good)), False
        del syncs, good
        end = count * PACKET_SIZE
        taken = buf[:end]
        del buf[:end]
        return taken, clean


# --- scalar header helpers (used on the few packets inspected one by one) ---


def packet_pid(buf: bytes | bytearray, pos: int = 0) -> int:
    """PID of the packet starting at ``pos``."""
    return ((buf[pos + 1] & 0x1F) << 8) | buf[pos + 2]


def payload_unit_start(buf: bytes | bytearray, pos: int = 0) -> bool:
    """The payload_unit_start_indicator of the packet at ``pos``."""
    return bool(buf[pos + 1] & 0x40)


def payload_offset(buf: bytes | bytearray, pos: int = 0) -> int:
    """Offset (relative to ``pos``) where the payload starts; 188 if it has none."""
    afc = buf[pos + 3] & 0x30
    if not afc & 0x10:
        return PACKET_SIZE
    if afc & 0x20:
        return min(PACKET_SIZE, 5 + buf[pos + 4])
    return 4


def pcr_position(buf: bytes | bytearray, pos: int = 0) -> int:
    """Absolute position of the packet's 6 PCR bytes, or -1 when it carries no PCR."""
    if buf[pos + 3] & 0x20 and buf[pos + 4] >= 7 and buf[pos + 5] & 0x10:
        return pos + 6
    return -1


def random_access(buf: bytes | bytearray, pos: int = 0) -> bool:
    """The adaptation field's random_access_indicator."""
    return bool(buf[pos + 3] & 0x20 and buf[pos + 4] >= 1 and buf[pos + 5] & 0x40)


def set_discontinuity(buf: bytearray, pos: int = 0) -> bool:
    """Set discontinuity_indicator; returns False if the packet has no adaptation field."""
    if buf[pos + 3] & 0x20 and buf[pos + 4] >= 1:
        buf[pos + 5] |= 0x80
        return True
    return False


def read_pcr(buf: bytes | bytearray, at: int) -> int:
    """Decode the 6-byte PCR at ``at`` into 27 MHz ticks (base * 300 + extension)."""
    base = (int.from_bytes(buf[at : at + 4], "big") << 1) | (buf[at + 4] >> 7)
    ext = ((buf[at + 4] & 0x01) << 8) | buf[at + 5]
    return base * 300 + ext


def write_pcr(buf: bytearray, at: int, value: int) -> None:
    """Encode ``value`` (27 MHz ticks, taken modulo 2^33 * 300) as a PCR at ``at``."""
    value %= PCR_MODULUS
    base, ext = divmod(value, 300)
    buf[at : at + 4] = (base >> 1).to_bytes(4, "big")
    buf[at + 4] = ((base & 1) << 7) | 0x7E | (ext >> 8)
    buf[at + 5] = ext & 0xFF


def pcr_packet(pid: int, pcr: int, *, discontinuity: bool = False) -> bytearray:
    """Build an adaptation-field-only packet on ``pid`` carrying ``pcr``.

    Such a packet has no payload, so it does not advance the continuity
    counter; the splicer fills in the counter like for any other packet.
    """
    pkt = bytearray(b"\xff" * PACKET_SIZE)
    pkt[0] = SYNC_BYTE
    pkt[1] = (pid >> 8) & 0x1F
    pkt[2] = pid & 0xFF
    pkt[3] = 0x20
    pkt[4] = 183
    pkt[5] = 0x10 | (0x80 if discontinuity else 0)
    write_pcr(pkt, 6, pcr)
    return pkt


# --- vectorised header columns (over an (n, 188) view of whole packets) ---


def packet_rows(packets: bytes | bytearray | memoryview) -> npt.NDArray[np.uint8]:
    """A read-only ``(n, 188)`` view of whole packets (``len`` a multiple of 188)."""
    arr = _u8(packets)
    if len(arr) % PACKET_SIZE:
        raise ValueError("packets must be whole 188-byte packets")
    return arr.reshape(-1, PACKET_SIZE)


def pid_column(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.int32]:
    """The PID of every row of :func:`packet_rows`."""
    return ((rows[:, 1].astype(np.int32) & 0x1F) << 8) | rows[:, 2]


def pcr_column(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """True for the rows that carry a PCR (the vector form of :func:`pcr_position`)."""
    flags: npt.NDArray[np.bool_] = (
        ((rows[:, 3] & 0x20) != 0) & (rows[:, 4] >= 7) & ((rows[:, 5] & 0x10) != 0)
    )
    return flags


def discontinuity_column(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """True for the rows whose adaptation field sets discontinuity_indicator."""
    flags: npt.NDArray[np.bool_] = (
        ((rows[:, 3] & 0x20) != 0) & (rows[:, 4] >= 1) & ((rows[:, 5] & 0x80) != 0)
    )
    return flags


def read_pcrs(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """The PCR (27 MHz ticks) of each row; every row must carry one (see :func:`pcr_column`)."""
    b = rows[:, 6:12].astype(np.int64)
    base = (b[:, 0] << 25) | (b[:, 1] << 17) | (b[:, 2] << 9) | (b[:, 3] << 1) | (b[:, 4] >> 7)
    ext = ((b[:, 4] & 0x01) << 8) | b[:, 5]
    result: npt.NDArray[np.int64] = base * 300 + ext
    return result

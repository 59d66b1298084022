"""MPEG-TS: packets, PSI tables (PAT/PMT), PES timestamps and the splicer.

All of it is pure bytes-in/bytes-out, with no I/O:

- :mod:`~streamforge.ts.packets`: 188-byte framing with resynchronisation
  (:class:`PacketAligner`), :func:`looks_like_ts` for rejecting HTML/garbage
  upstream bodies, null and PCR packets.
- :mod:`~streamforge.ts.psi`: PAT/PMT parse and build with the MPEG CRC-32,
  section reassembly, stream codec/kind/language.
- :mod:`~streamforge.ts.pes`: PTS/DTS fields, 33-bit clock arithmetic and
  keyframe detection (H.264 IDR, HEVC IRAP, MPEG-2 I-pictures).
- :mod:`~streamforge.ts.splicer`: :class:`TsSplicer`, which turns successive
  upstreams (failover and make-before-break upgrades) into one continuous
  program for the clients.
"""

from streamforge.ts.packets import NULL_PACKET, PacketAligner, looks_like_ts, null_packets
from streamforge.ts.splicer import SpliceError, SpliceStats, TsSplicer

__all__ = [
    "NULL_PACKET",
    "PacketAligner",
    "SpliceError",
    "SpliceStats",
    "TsSplicer",
    "looks_like_ts",
    "null_packets",
]

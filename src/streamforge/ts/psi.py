"""PSI tables: the PAT and PMT, their sections, CRC and packetisation.

Theory of operation
-------------------
Program-specific information travels in *sections* split across the payloads
of the packets on one PID.  A packet whose payload_unit_start_indicator is set
begins with a ``pointer_field`` saying how many bytes still belong to the
previous section before a new one starts.  :class:`SectionAssembler` undoes
that split for one PID and yields each complete section whose MPEG-2 CRC-32
checks out (a section's CRC computed over the whole section, CRC included,
is zero).

:class:`Pat` (program number → PMT PID) and :class:`Pmt` (PCR PID and the
elementary streams with their descriptors) are immutable values parsed from,
and built back into, sections.  Building is faithful: descriptors are kept as
raw bytes, so ``build_pmt(parse_pmt(s)) == s`` for a well-formed section.

Each :class:`PmtStream` knows its *codec* (a normalised name, e.g. ``h264``,
``aac``, ``ac3``, with the DVB ``0x06`` private type resolved through its
descriptors) and its *kind* (video, audio, subtitle or data).  The splicer maps
a backup stream's elementary streams onto the session's by codec, because the
client keeps decoding a PID according to the session's PMT.

:class:`ProgramTracker` follows the PAT and first PMT of a stream for the
health checks, skipping the many identical repetitions without a CRC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from streamforge.errors import MediaError
from streamforge.ts.packets import PACKET_SIZE, SYNC_BYTE, payload_offset

PAT_TABLE_ID: Final = 0x00
PMT_TABLE_ID: Final = 0x02
MAX_SECTION_LENGTH: Final = 1021


class PsiError(MediaError, ValueError):
    """A PSI section is malformed (wrong table, bad length or CRC)."""


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc32_mpeg(data: bytes | bytearray | memoryview) -> int:
    """The MPEG-2 CRC-32 (polynomial 0x04C11DB7, init 0xFFFFFFFF, no reflection)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def _finish_section(body: bytearray) -> bytes:
    """Fill in section_length (body includes the 3-byte header) and append the CRC."""
    length = len(body) - 3 + 4
    if length > MAX_SECTION_LENGTH:
        raise PsiError("section too long")
    body[1] = (body[1] & 0xF0) | ((length >> 8) & 0x0F)
    body[2] = length & 0xFF
    return bytes(body) + crc32_mpeg(body).to_bytes(4, "big")


def _check_section(section: bytes, table_id: int) -> None:
    if len(section) < 12 or section[0] != table_id:
        raise PsiError(f"not a table 0x{table_id:02x} section")
    length = ((section[1] & 0x0F) << 8) | section[2]
    if length + 3 != len(section):
        raise PsiError("section length mismatch")
    if crc32_mpeg(section) != 0:
        raise PsiError("section CRC mismatch")


def section_version(section: bytes) -> int:
    """version_number of a long-form section."""
    return (section[5] >> 1) & 0x1F


@dataclass(frozen=True, slots=True)
class Pat:
    """A program association table: ``programs`` lists (program_number, PMT PID)."""

    transport_stream_id: int
    version: int
    programs: tuple[tuple[int, int], ...]

    def pmt_pid(self, program_number: int) -> int | None:
        """The PMT PID of ``program_number``, if listed."""
        for number, pid in self.programs:
            if number == program_number:
                return pid
        return None

    def first_program(self) -> tuple[int, int] | None:
        """The first real program (number 0 points at the NIT and is skipped)."""
        for number, pid in self.programs:
            if number != 0:
                return number, pid
        return None


def parse_pat(section: bytes) -> Pat:
    """Parse a PAT section (CRC verified)."""
    _check_section(section, PAT_TABLE_ID)
    programs = []
    for i in range(8, len(section) - 4, 4):
        number = (section[i] << 8) | section[i + 1]
        pid = ((section[i + 2] & 0x1F) << 8) | section[i + 3]
        programs.append((number, pid))
    return Pat(
        transport_stream_id=(section[3] << 8) | section[4],
        version=section_version(section),
        programs=tuple(programs),
    )


def build_pat(pat: Pat) -> bytes:
    """Build a PAT section with a valid CRC."""
    body = bytearray(
        [
            PAT_TABLE_ID,
            0xB0,
            0,
            (pat.transport_stream_id >> 8) & 0xFF,
            pat.transport_stream_id & 0xFF,
            0xC1 | ((pat.version & 0x1F) << 1),
            0,
            0,
        ]
    )
    for number, pid in pat.programs:
        body += bytes([number >> 8, number & 0xFF, 0xE0 | (pid >> 8), pid & 0xFF])
    return _finish_section(body)


_VIDEO_TYPES: Final = MappingProxyType(
    {
        0x01: "mpeg1v",
        0x02: "mpeg2v",
        0x10: "mpeg4v",
        0x1B: "h264",
        0x24: "hevc",
        0x42: "cavs",
        0xD1: "dirac",
        0xEA: "vc1",
    }
)
_AUDIO_TYPES: Final = MappingProxyType(
    {
        0x03: "mpega",
        0x04: "mpega",
        0x0F: "aac",
        0x11: "latm",
        0x81: "ac3",
        0x87: "eac3",
        0x82: "dts",
        0x85: "dts",
        0x8A: "dts",
    }
)
_PRIVATE_DESCRIPTORS: Final = MappingProxyType(
    {
        0x6A: ("ac3", "audio"),
        0x7A: ("eac3", "audio"),
        0x7B: ("dts", "audio"),
        0x59: ("dvbsub", "subtitle"),
        0x56: ("teletext", "subtitle"),
    }
)
_REGISTRATIONS: Final = MappingProxyType(
    {
        b"AC-3": ("ac3", "audio"),
        b"EAC3": ("eac3", "audio"),
        b"Opus": ("opus", "audio"),
        b"HEVC": ("hevc", "video"),
    }
)


def iter_descriptors(data: bytes) -> list[tuple[int, bytes]]:
    """Split a descriptor loop into (tag, body) pairs (a truncated tail is ignored)."""
    out = []
    i = 0
    while i + 2 <= len(data):
        tag, length = data[i], data[i + 1]
        if i + 2 + length > len(data):
            break
        out.append((tag, data[i + 2 : i + 2 + length]))
        i += 2 + length
    return out


@dataclass(frozen=True, slots=True)
class PmtStream:
    """One elementary stream of a PMT: type, PID and raw ES_info descriptors."""

    stream_type: int
    pid: int
    descriptors: bytes = b""

    @property
    def codec(self) -> str:
        """Normalised codec name; unknown types become ``type0xNN``."""
        return self._classify()[0]

    @property
    def kind(self) -> str:
        """``video``, ``audio``, ``subtitle`` or ``data``."""
        return self._classify()[1]

    @property
    def language(self) -> str | None:
        """ISO 639 language code (ISO 639, subtitling or teletext descriptor), if present."""
        for tag, body in iter_descriptors(self.descriptors):
            if tag in (0x0A, 0x56, 0x59) and len(body) >= 3:
                return body[:3].decode("latin-1").lower()
        return None

    def _classify(self) -> tuple[str, str]:
        st = self.stream_type
        if st in _VIDEO_TYPES:
            return _VIDEO_TYPES[st], "video"
        if st in _AUDIO_TYPES:
            return _AUDIO_TYPES[st], "audio"
        for tag, body in iter_descriptors(self.descriptors):
            if st == 0x06 and tag in _PRIVATE_DESCRIPTORS:
                return _PRIVATE_DESCRIPTORS[tag]
            if tag == 0x05 and body[:4] in _REGISTRATIONS:
                return _REGISTRATIONS[body[:4]]
        return f"type0x{st:02x}", "data"


@dataclass(frozen=True, slots=True)
class Pmt:
    """A program map table."""

    program_number: int
    version: int
    pcr_pid: int
    streams: tuple[PmtStream, ...]
    program_info: bytes = b""

    def stream(self, pid: int) -> PmtStream | None:
        """The elementary stream on ``pid``, if any."""
        for s in self.streams:
            if s.pid == pid:
                return s
        return None


def parse_pmt(section: bytes) -> Pmt:
    """Parse a PMT section (CRC verified)."""
    _check_section(section, PMT_TABLE_ID)
    end = len(section) - 4
    info_len = ((section[10] & 0x0F) << 8) | section[11]
    i = 12 + info_len
    if i > end:
        raise PsiError("program_info overruns the section")
    program_info = section[12:i]
    streams = []
    while i + 5 <= end:
        es_len = ((section[i + 3] & 0x0F) << 8) | section[i + 4]
        if i + 5 + es_len > end:
            raise PsiError("ES_info overruns the section")
        streams.append(
            PmtStream(
                stream_type=section[i],
                pid=((section[i + 1] & 0x1F) << 8) | section[i + 2],
                descriptors=section[i + 5 : i + 5 + es_len],
            )
        )
        i += 5 + es_len
    return Pmt(
        program_number=(section[3] << 8) | section[4],
        version=section_version(section),
        pcr_pid=((section[8] & 0x1F) << 8) | section[9],
        streams=tuple(streams),
        program_info=program_info,
    )


def build_pmt(pmt: Pmt) -> bytes:
    """Build a PMT section with a valid CRC."""
    info = pmt.program_info
    body = bytearray(
        [
            PMT_TABLE_ID,
            0xB0,
            0,
            pmt.program_number >> 8,
            pmt.program_number & 0xFF,
            0xC1 | ((pmt.version & 0x1F) << 1),
            0,
            0,
            0xE0 | (pmt.pcr_pid >> 8),
            pmt.pcr_pid & 0xFF,
            0xF0 | (len(info) >> 8),
            len(info) & 0xFF,
        ]
    )
    body += info
    for s in pmt.streams:
        d = s.descriptors
        body += bytes(
            [s.stream_type, 0xE0 | (s.pid >> 8), s.pid & 0xFF, 0xF0 | (len(d) >> 8), len(d) & 0xFF]
        )
        body += d
    return _finish_section(body)


def packetize_section(section: bytes, pid: int) -> list[bytearray]:
    """Split one section into packets on ``pid`` (pointer_field 0, 0xFF stuffing).

    Continuity counters are left at 0: the splicer rewrites every counter.
    """
    payload = b"\x00" + section
    packets = []
    first = True
    for start in range(0, len(payload), PACKET_SIZE - 4):
        chunk = payload[start : start + PACKET_SIZE - 4]
        pkt = bytearray(b"\xff" * PACKET_SIZE)
        pkt[0] = SYNC_BYTE
        pkt[1] = (0x40 if first else 0) | (pid >> 8)
        pkt[2] = pid & 0xFF
        pkt[3] = 0x10
        pkt[4 : 4 + len(chunk)] = chunk
        packets.append(pkt)
        first = False
    return packets


class SectionAssembler:
    """Reassembles the PSI sections carried on one PID.

    Feed it every packet of the PID in order; :meth:`feed` returns the
    sections completed by that packet.  Sections with a bad CRC are dropped,
    and a continuity-counter gap discards the partial section.
    """

    def __init__(self) -> None:
        self._partial: bytearray | None = None
        self._last_cc = -1

    def feed(self, buf: bytes | bytearray, pos: int = 0) -> list[bytes]:
        """Take the packet at ``buf[pos:pos+188]``; return completed sections."""
        start = payload_offset(buf, pos)
        if start >= PACKET_SIZE:
            return []
        cc = buf[pos + 3] & 0x0F
        if self._last_cc >= 0 and cc != (self._last_cc + 1) & 0x0F:
            self._partial = None
        self._last_cc = cc
        payload = bytes(buf[pos + start : pos + PACKET_SIZE])
        done: list[bytes] = []
        if buf[pos + 1] & 0x40:
            pointer = payload[0]
            if self._partial is not None:
                self._partial += payload[1 : 1 + pointer]
                self._harvest(done)
            self._partial = bytearray(payload[1 + pointer :])
            self._harvest(done)
        elif self._partial is not None:
            self._partial += payload
            self._harvest(done)
        return done

    def _harvest(self, done: list[bytes]) -> None:
        part = self._partial
        while part is not None and len(part) >= 3:
            if part[0] == 0xFF:
                self._partial = None
                return
            total = 3 + (((part[1] & 0x0F) << 8) | part[2])
            if len(part) < total:
                return
            section = bytes(part[:total])
            del part[:total]
            if crc32_mpeg(section) == 0:
                done.append(section)
        if part is not None and not part:
            self._partial = None


class ProgramTracker:
    """Follows a stream's PAT and the PMT of its first program, cheaply on repeats.

    Muxers repeat the PAT and PMT many times a second; a packet identical
    (continuity counter aside) to the previous packet of its PID repeats a
    single-packet section already parsed, so it is skipped without a CRC.
    :meth:`feed` takes whole packets and their PID column and returns the PMT
    when it changed (the first one included).
    """

    def __init__(self) -> None:
        self.pmt_pid: int | None = None
        self.pmt: Pmt | None = None
        self._pat = SectionAssembler()
        self._pmt = SectionAssembler()
        self._last: dict[int, bytes] = {}
        self._section: bytes | None = None

    def feed(
        self, packets: bytes | bytearray, pids: Sequence[int] | npt.NDArray[np.int32]
    ) -> Pmt | None:
        """Take whole packets (``pids``: their PID column); the new PMT, if it changed."""
        pids = np.asarray(pids)
        known = self.pmt_pid
        changed = self._scan(packets, pids, (pids == 0) | (pids == known))
        if self.pmt_pid != known:  # the PAT in this chunk named the PMT PID
            changed = self._scan(packets, pids, pids == self.pmt_pid) or changed
        return changed

    def _scan(
        self,
        packets: bytes | bytearray,
        pids: npt.NDArray[np.int32],
        wanted: npt.NDArray[np.bool_],
    ) -> Pmt | None:
        changed: Pmt | None = None
        for i in np.flatnonzero(wanted).tolist():
            pos = i * PACKET_SIZE
            pid = int(pids[i])
            body = bytes(packets[pos + 4 : pos + PACKET_SIZE]) + bytes([packets[pos + 1] & 0x40])
            if self._last.get(pid) == body:
                continue
            self._last[pid] = body
            if pid == 0:
                self._on_pat(packets, pos)
            else:
                changed = self._on_pmt(packets, pos) or changed
        return changed

    def _on_pat(self, packets: bytes | bytearray, pos: int) -> None:
        for section in self._pat.feed(packets, pos):
            try:
                first = parse_pat(section).first_program()
            except PsiError:
                continue
            if first is not None and first[1] != self.pmt_pid:
                self.pmt_pid = first[1]
                self._pmt = SectionAssembler()

    def _on_pmt(self, packets: bytes | bytearray, pos: int) -> Pmt | None:
        changed = None
        for section in self._pmt.feed(packets, pos):
            if section == self._section:
                continue
            try:
                pmt = parse_pmt(section)
            except PsiError:
                continue
            self._section, self.pmt, changed = section, pmt, pmt
        return changed

"""Tests for streamforge.ts.psi: CRC, PAT/PMT parse and build, section reassembly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.ts.packets import PACKET_SIZE
from streamforge.ts.psi import (
    Pat,
    Pmt,
    PmtStream,
    PsiError,
    SectionAssembler,
    build_pat,
    build_pmt,
    crc32_mpeg,
    packetize_section,
    parse_pat,
    parse_pmt,
)
from tests.tsmedia import mpeg_crc

# The PAT FFmpeg's mpegts muxer writes for service 1 with its PMT on PID 0x1000.
FFMPEG_PAT = bytes.fromhex("00b00d0001c100000001f0002ab104b2")


def test_crc_matches_the_mpeg2_check_value() -> None:
    assert crc32_mpeg(b"123456789") == 0x0376E6E7
    assert crc32_mpeg(b"") == 0xFFFFFFFF
    assert crc32_mpeg(FFMPEG_PAT) == 0  # a section's CRC over itself is zero


def test_build_pat_reproduces_ffmpeg() -> None:
    pat = parse_pat(FFMPEG_PAT)
    assert pat == Pat(transport_stream_id=1, version=0, programs=((1, 0x1000),))
    assert build_pat(pat) == FFMPEG_PAT
    assert pat.pmt_pid(1) == 0x1000
    assert pat.pmt_pid(2) is None


def test_first_program_skips_the_nit_entry() -> None:
    pat = Pat(7, 3, ((0, 0x10), (5, 0x200), (6, 0x300)))
    assert pat.first_program() == (5, 0x200)
    assert parse_pat(build_pat(pat)) == pat
    assert Pat(1, 0, ((0, 0x10),)).first_program() is None


def test_bad_sections_are_rejected() -> None:
    broken = bytearray(FFMPEG_PAT)
    broken[9] ^= 0x01
    with pytest.raises(PsiError, match="CRC"):
        parse_pat(bytes(broken))
    with pytest.raises(PsiError, match="table"):
        parse_pmt(FFMPEG_PAT)
    with pytest.raises(PsiError, match="length"):
        parse_pat(FFMPEG_PAT + b"\x00")


def test_pmt_round_trip_and_stream_classification() -> None:
    pmt = Pmt(
        program_number=7,
        version=4,
        pcr_pid=0x100,
        program_info=bytes([0x05, 4]) + b"CUEI",
        streams=(
            PmtStream(0x1B, 0x100),
            PmtStream(0x0F, 0x101, bytes([0x0A, 4]) + b"deu\x00"),
            PmtStream(0x06, 0x102, bytes([0x6A, 1, 0]) + bytes([0x0A, 4]) + b"ENG\x00"),
            PmtStream(0x06, 0x103, bytes([0x59, 8]) + b"eng\x10\x00\x01\x00\x01"),
            PmtStream(0x24, 0x104),
            PmtStream(0x86, 0x105),
            PmtStream(0x06, 0x106, bytes([0x05, 4]) + b"EAC3"),
        ),
    )
    section = build_pmt(pmt)
    assert mpeg_crc(section) == 0
    assert parse_pmt(section) == pmt
    kinds = [(s.codec, s.kind, s.language) for s in pmt.streams]
    assert kinds == [
        ("h264", "video", None),
        ("aac", "audio", "deu"),
        ("ac3", "audio", "eng"),
        ("dvbsub", "subtitle", "eng"),
        ("hevc", "video", None),
        ("type0x86", "data", None),
        ("eac3", "audio", None),
    ]
    assert pmt.stream(0x103) == pmt.streams[3]
    assert pmt.stream(0x1FF) is None


def test_assembler_reassembles_a_multi_packet_section() -> None:
    streams = tuple(
        PmtStream(0x0F, 0x200 + i, bytes([0x0A, 4]) + b"eng\x00" + bytes([0x80, 30]) + bytes(30))
        for i in range(12)
    )
    section = build_pmt(Pmt(1, 0, 0x200, streams))
    packets = packetize_section(section, 0x1000)
    assert len(packets) > 2
    for cc, p in enumerate(packets):
        assert len(p) == PACKET_SIZE
        p[3] = (p[3] & 0xF0) | cc
    asm = SectionAssembler()
    got: list[bytes] = []
    for p in packets:
        got += asm.feed(p)
    assert got == [section]


def test_assembler_drops_a_section_broken_by_a_counter_gap() -> None:
    streams = tuple(PmtStream(0x0F, 0x200 + i, bytes([0x80, 40]) + bytes(40)) for i in range(8))
    section = build_pmt(Pmt(1, 0, 0x200, streams))
    packets = packetize_section(section, 0x1000)
    for cc, p in enumerate(packets):
        p[3] = (p[3] & 0xF0) | cc
    asm = SectionAssembler()
    assert asm.feed(packets[0]) == []
    assert asm.feed(packets[2]) == []  # packet 1 lost
    # The next intact copy is accepted again.
    fresh = packetize_section(section, 0x1000)
    for cc, p in enumerate(fresh, start=3):
        p[3] = (p[3] & 0xF0) | (cc & 0x0F)
    got: list[bytes] = []
    for p in fresh:
        got += asm.feed(p)
    assert got == [section]


def test_assembler_drops_bad_crc_and_reads_packed_sections() -> None:
    pat = FFMPEG_PAT
    bad = bytearray(pat)
    bad[-1] ^= 0xFF
    payload = b"\x00" + bytes(bad) + pat
    packet = bytes([0x47, 0x40, 0x00, 0x10]) + payload + b"\xff" * (184 - len(payload))
    assert SectionAssembler().feed(packet) == [pat]


def test_assembler_handles_pointer_field_tail() -> None:
    section = build_pmt(Pmt(1, 0, 0x100, (PmtStream(0x1B, 0x100),)))
    head, tail = section[:10], section[10:]
    # A packet that ends with the start of the section, padded via adaptation field.
    pad = PACKET_SIZE - 4 - 1 - len(head)
    first = bytes([0x47, 0x50, 0x00, 0x30, pad - 1, 0x00]) + b"\xff" * (pad - 2)
    first += b"\x00" + head
    second = bytes([0x47, 0x50, 0x00, 0x11, len(tail)]) + tail + section
    second += b"\xff" * (PACKET_SIZE - len(second))
    asm = SectionAssembler()
    assert asm.feed(first) == []
    assert asm.feed(second) == [section, section]


pids = st.integers(min_value=0x20, max_value=0x1FFE)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=0, max_value=0xFFFF),
    st.integers(min_value=0, max_value=31),
    st.lists(st.tuples(st.integers(min_value=1, max_value=0xFFFF), pids), max_size=40),
)
def test_pat_property(tsid: int, version: int, programs: list[tuple[int, int]]) -> None:
    pat = Pat(tsid, version, tuple(programs))
    section = build_pat(pat)
    assert mpeg_crc(section) == 0
    assert parse_pat(section) == pat


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=1, max_value=0xFFFF),
    st.integers(min_value=0, max_value=31),
    pids,
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=0xFF), pids, st.binary(max_size=30)),
        max_size=12,
    ),
)
def test_pmt_property(
    number: int, version: int, pcr: int, streams: list[tuple[int, int, bytes]]
) -> None:
    pmt = Pmt(number, version, pcr, tuple(PmtStream(t, p, d) for t, p, d in streams))
    section = build_pmt(pmt)
    assert mpeg_crc(section) == 0
    assert parse_pmt(section) == pmt
    asm = SectionAssembler()
    got: list[bytes] = []
    for cc, p in enumerate(packetize_section(section, 0x1000)):
        p[3] = (p[3] & 0xF0) | cc
        got += asm.feed(p)
    assert got == [section]

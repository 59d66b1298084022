"""Tests for streamforge.ts.packets: framing, resync and header helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.ts.packets import (
    NULL_PACKET,
    PACKET_SIZE,
    PacketAligner,
    find_sync,
    looks_like_ts,
    null_packets,
    packet_pid,
    payload_offset,
    pcr_packet,
    pcr_position,
    random_access,
    read_pcr,
    set_discontinuity,
    write_pcr,
)
from tests.tsmedia import SynthSpec, packets_of, split_at, synth_ts

CLEAN = synth_ts(SynthSpec(frames=12))
PACKETS = tuple(CLEAN[i : i + PACKET_SIZE] for i in range(0, len(CLEAN), PACKET_SIZE))


def align_all(chunks: list[bytes]) -> bytes:
    aligner = PacketAligner()
    out = bytearray()
    for chunk in chunks:
        got = aligner.feed(chunk)
        assert len(got) % PACKET_SIZE == 0
        out += got
    out += aligner.flush()
    return bytes(out)


def test_null_packet_is_spec_correct() -> None:
    assert len(NULL_PACKET) == PACKET_SIZE
    assert NULL_PACKET[:4] == bytes([0x47, 0x1F, 0xFF, 0x10])
    assert set(NULL_PACKET[4:]) == {0xFF}
    assert null_packets(3) == NULL_PACKET * 3
    assert null_packets(0) == b""
    with pytest.raises(ValueError, match="negative"):
        null_packets(-1)


def test_looks_like_ts_accepts_ts_and_rejects_html() -> None:
    assert looks_like_ts(CLEAN)
    assert looks_like_ts(CLEAN[57:])  # starts mid-packet
    assert not looks_like_ts(b"<html><body>502 Bad Gateway</body></html>" * 40)
    assert not looks_like_ts(b"")
    assert not looks_like_ts(CLEAN[:200])  # fewer than three sync bytes
    broken = bytearray(CLEAN)
    broken[PACKET_SIZE * 2] = 0x00
    assert not looks_like_ts(bytes(broken))


def test_find_sync_needs_three_confirmations() -> None:
    junk = b"\x47" + b"\x00" * 100  # a stray sync byte that is not a boundary
    data = junk + CLEAN
    assert find_sync(data) == len(junk)
    assert find_sync(data[: -(len(CLEAN) - 2 * PACKET_SIZE)]) == -1
    assert find_sync(CLEAN, start=1) == PACKET_SIZE


def test_aligner_passes_a_clean_stream_unchanged() -> None:
    aligner = PacketAligner()
    first = aligner.feed(CLEAN)
    assert bytes(first) == CLEAN[:-PACKET_SIZE]  # last packet awaits its successor
    assert bytes(aligner.flush()) == CLEAN[-PACKET_SIZE:]
    assert aligner.resyncs == 0
    assert aligner.bytes_skipped == 0


def test_aligner_skips_leading_garbage() -> None:
    aligner = PacketAligner()
    out = aligner.feed(b"HTTP/1.1 junk\r\n\r\n" + CLEAN) + aligner.flush()
    assert bytes(out) == CLEAN
    assert aligner.bytes_skipped == 17
    assert aligner.resyncs == 1


def test_aligner_drops_a_truncated_packet_and_resyncs() -> None:
    data = b"".join(PACKETS[:5]) + PACKETS[5][:100] + b"".join(PACKETS[6:])
    aligner = PacketAligner()
    out = aligner.feed(data) + aligner.flush()
    assert bytes(out) == b"".join(PACKETS[:5] + PACKETS[6:])
    assert aligner.resyncs == 1
    assert aligner.bytes_skipped == 100


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(CLEAN)), max_size=30))
def test_any_chunking_yields_the_same_packets(cuts: list[int]) -> None:
    assert align_all(split_at(CLEAN, cuts)) == CLEAN


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(PACKETS) - 1),
            st.binary(min_size=1, max_size=300),
        ),
        max_size=4,
    ),
    st.lists(st.integers(min_value=0, max_value=2 * len(CLEAN)), max_size=12),
)
def test_garbage_yields_whole_original_packets_in_order(
    garbage: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    where = dict(garbage)
    data = b"".join(PACKETS[i] + where.get(i, b"") for i in range(len(PACKETS)))
    out = align_all(split_at(data, cuts))
    got = [out[i : i + PACKET_SIZE] for i in range(0, len(out), PACKET_SIZE)]
    # Every output packet is an original packet, in the original order.
    it = iter(PACKETS)
    assert all(any(p == q for q in it) for p in got)
    # Packets not followed by garbage, and not preceded by it, survive.
    assert len(got) >= len(PACKETS) - 3 * len(where)


def test_header_helpers() -> None:
    info = packets_of(CLEAN)
    for n, p in enumerate(info):
        assert packet_pid(CLEAN, n * PACKET_SIZE) == p.pid
    pcr_index = next(n for n, p in enumerate(info) if p.pcr is not None)
    pos = pcr_index * PACKET_SIZE
    assert read_pcr(CLEAN, pcr_position(CLEAN, pos)) == info[pcr_index].pcr
    assert random_access(CLEAN, pos)
    assert pcr_position(CLEAN, 0) == -1  # the PAT carries no PCR
    assert payload_offset(CLEAN, 0) == 5 + CLEAN[4]  # stuffed PAT packet
    assert payload_offset(NULL_PACKET) == 4


@pytest.mark.parametrize("value", [0, 1, 299, 300, 27_000_000, (1 << 33) * 300 - 1])
def test_pcr_round_trip(value: int) -> None:
    packet = pcr_packet(0x100, value)
    assert len(packet) == PACKET_SIZE
    assert packet_pid(packet) == 0x100
    assert payload_offset(packet) == PACKET_SIZE
    at = pcr_position(packet)
    assert read_pcr(packet, at) == value
    write_pcr(packet, at, value + (1 << 33) * 300)  # wraps
    assert read_pcr(packet, at) == value
    info = packets_of(bytes(packet))[0]
    assert info.pcr == value
    assert not info.discontinuity
    assert set_discontinuity(packet)
    assert packets_of(bytes(packet))[0].discontinuity
    assert not set_discontinuity(bytearray(NULL_PACKET))

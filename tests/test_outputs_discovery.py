"""Tests for the libhdhomerun UDP discovery responder."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.outputs.discovery import (
    DEVICE_TYPE_TUNER,
    DISCOVER_UDP_PORT,
    TAG_BASE_URL,
    TAG_DEVICE_AUTH_STR,
    TAG_DEVICE_ID,
    TAG_DEVICE_TYPE,
    TAG_LINEUP_URL,
    TAG_TUNER_COUNT,
    TYPE_DISCOVER_REQ,
    TYPE_DISCOVER_RPY,
    DeviceInfo,
    DiscoveryResponder,
    MalformedFrameError,
    decode_frame,
    device_info_from,
    encode_frame,
    encode_tlv,
    encode_var_length,
    iter_tlvs,
    parse_discover_request,
)
from streamforge.outputs.hdhomerun import TunerIdentity

DEVICE_ID = "12345674"
# Exactly what `hdhomerun_config discover 127.0.0.1` sends (captured).
HDHOMERUN_CONFIG_REQUEST = bytes.fromhex("0002000c0104ffffffff0204ffffffff73cc7d8f")


def _info(base: str = "http://127.0.0.1:5004", tuners: int = 3) -> DeviceInfo:
    return DeviceInfo(
        device_id=DEVICE_ID,
        tuner_count=tuners,
        base_url=base,
        lineup_url=f"{base}/lineup.json",
        device_auth="streamforgeauth",
    )


def _request(device_type: int = 0xFFFFFFFF, device_id: int = 0xFFFFFFFF) -> bytes:
    payload = encode_tlv(TAG_DEVICE_TYPE, device_type.to_bytes(4, "big")) + encode_tlv(
        TAG_DEVICE_ID, device_id.to_bytes(4, "big")
    )
    return encode_frame(TYPE_DISCOVER_REQ, payload)


class _Client:
    """A non-blocking UDP client socket driven through the event loop."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    async def ask(self, data: bytes, port: int, within: float) -> bytes | None:
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(self.sock, data, ("127.0.0.1", port))
        try:
            async with asyncio.timeout(within):
                reply, _ = await loop.sock_recvfrom(self.sock, 4096)
        except TimeoutError:
            return None
        return reply

    def close(self) -> None:
        self.sock.close()


Running = tuple[DiscoveryResponder, dict[str, DeviceInfo]]


def _port(r: DiscoveryResponder) -> int:
    address = r.address
    assert address is not None
    return address[1]


@pytest.fixture
async def responder() -> AsyncIterator[Running]:
    current = {"info": _info()}
    r = DiscoveryResponder(lambda: current["info"])
    assert await r.start("127.0.0.1", 0)
    yield r, current
    await r.stop()


@pytest.fixture
def client() -> Iterator[_Client]:
    c = _Client()
    yield c
    c.close()


def test_frame_matches_hdhomerun_config_capture() -> None:
    payload = encode_tlv(TAG_DEVICE_TYPE, b"\xff" * 4) + encode_tlv(TAG_DEVICE_ID, b"\xff" * 4)
    assert encode_frame(TYPE_DISCOVER_REQ, payload) == HDHOMERUN_CONFIG_REQUEST
    request = parse_discover_request(HDHOMERUN_CONFIG_REQUEST)
    assert request.device_types == (0xFFFFFFFF,)
    assert request.device_ids == (0xFFFFFFFF,)


def test_var_length_encoding() -> None:
    assert encode_var_length(0) == b"\x00"
    assert encode_var_length(127) == b"\x7f"
    assert encode_var_length(128) == b"\x80\x01"
    assert encode_var_length(300) == bytes((0x80 | (300 & 0x7F), 300 >> 7))
    with pytest.raises(ValueError, match="out of range"):
        encode_var_length(0x8000)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=400)), max_size=6))
def test_tlv_round_trip(items: list[tuple[int, bytes]]) -> None:
    payload = b"".join(encode_tlv(tag, value) for tag, value in items)
    assert list(iter_tlvs(payload)) == items
    frame = encode_frame(TYPE_DISCOVER_RPY, payload)
    assert decode_frame(frame) == (TYPE_DISCOVER_RPY, payload)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash_the_parser(data: bytes) -> None:
    with contextlib.suppress(MalformedFrameError):
        parse_discover_request(data)


def test_bad_crc_and_truncation_are_rejected() -> None:
    good = _request()
    with pytest.raises(MalformedFrameError, match="CRC"):
        parse_discover_request(good[:-1] + bytes((good[-1] ^ 1,)))
    with pytest.raises(MalformedFrameError):
        parse_discover_request(good[:-3])
    body = struct.pack(">HH", TYPE_DISCOVER_REQ, 3) + b"\x01\x04\xff"
    truncated_tlv = body + struct.pack("<I", zlib.crc32(body))
    with pytest.raises(MalformedFrameError, match="past the end"):
        parse_discover_request(truncated_tlv)


async def test_reply_carries_all_fields(responder: Running, client: _Client) -> None:
    r, _ = responder
    reply = await client.ask(_request(), _port(r), within=2.0)
    assert reply is not None
    frame_type, payload = decode_frame(reply)
    assert frame_type == TYPE_DISCOVER_RPY
    tags = dict(iter_tlvs(payload))
    assert int.from_bytes(tags[TAG_DEVICE_TYPE], "big") == DEVICE_TYPE_TUNER
    assert tags[TAG_DEVICE_ID].hex().upper() == DEVICE_ID
    assert tags[TAG_TUNER_COUNT] == b"\x03"
    assert tags[TAG_BASE_URL] == b"http://127.0.0.1:5004"
    assert tags[TAG_LINEUP_URL] == b"http://127.0.0.1:5004/lineup.json"
    assert tags[TAG_DEVICE_AUTH_STR] == b"streamforgeauth"


async def test_values_are_read_fresh(responder: Running, client: _Client) -> None:
    r, current = responder
    current["info"] = _info(base="http://127.0.0.1:6000", tuners=5)
    reply = await client.ask(_request(), _port(r), within=2.0)
    assert reply is not None
    tags = dict(iter_tlvs(decode_frame(reply)[1]))
    assert tags[TAG_BASE_URL] == b"http://127.0.0.1:6000"
    assert tags[TAG_TUNER_COUNT] == b"\x05"


@pytest.mark.parametrize(
    ("device_type", "device_id", "answered"),
    [
        (0xFFFFFFFF, 0xFFFFFFFF, True),
        (DEVICE_TYPE_TUNER, 0xFFFFFFFF, True),
        (DEVICE_TYPE_TUNER, int(DEVICE_ID, 16), True),
        (0xFFFFFFFF, int(DEVICE_ID, 16), True),
        (0x00000005, 0xFFFFFFFF, False),  # storage devices only
        (DEVICE_TYPE_TUNER, 0x10ABCDE1, False),  # someone else's id
    ],
)
async def test_request_filtering(
    responder: Running, client: _Client, device_type: int, device_id: int, answered: bool
) -> None:
    r, _ = responder
    port = _port(r)
    reply = await client.ask(_request(device_type, device_id), port, within=0.3)
    assert (reply is not None) == answered
    if not answered:
        # The responder is still alive and answers the next good request.
        assert await client.ask(_request(), port, within=2.0) is not None


async def test_multiple_types_answered_if_any_matches(responder: Running, client: _Client) -> None:
    r, _ = responder
    payload = (
        encode_tlv(TAG_DEVICE_TYPE, (5).to_bytes(4, "big"))
        + encode_tlv(TAG_DEVICE_TYPE, DEVICE_TYPE_TUNER.to_bytes(4, "big"))
        + encode_tlv(0x2C, b"\xff\xff\xff\xff")
    )
    reply = await client.ask(encode_frame(TYPE_DISCOVER_REQ, payload), _port(r), within=2.0)
    assert reply is not None


async def test_malformed_frames_are_ignored_without_crashing(
    responder: Running, client: _Client
) -> None:
    r, _ = responder
    port = _port(r)
    good = _request()
    for junk in (b"", b"\x00", good[:-1] + b"\x00", good[:10], b"\xff" * 40, _reply_like()):
        assert await client.ask(junk, port, within=0.1) is None
    assert await client.ask(good, port, within=2.0) is not None


def _reply_like() -> bytes:
    return encode_frame(TYPE_DISCOVER_RPY, encode_tlv(TAG_DEVICE_TYPE, b"\xff" * 4))


async def test_port_in_use_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    try:
        port = blocker.getsockname()[1]
        r = DiscoveryResponder(_info)
        with caplog.at_level(logging.WARNING, logger="streamforge.outputs.discovery"):
            assert await r.start("127.0.0.1", port) is False
        assert not r.running
        assert "discovery disabled" in caplog.text
        await r.stop()
    finally:
        blocker.close()


async def test_stop_is_idempotent_and_restartable() -> None:
    r = DiscoveryResponder(_info)
    assert await r.start("127.0.0.1", 0)
    assert await r.start("127.0.0.1", 0)  # already running: no second socket
    await r.stop()
    await r.stop()
    assert r.address is None
    assert await r.start("127.0.0.1", 0)
    await r.stop()


def _port_free(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise
    finally:
        probe.close()
    return True


@pytest.mark.skipif(shutil.which("hdhomerun_config") is None, reason="hdhomerun_config missing")
async def test_real_hdhomerun_config_finds_us() -> None:
    if not _port_free(DISCOVER_UDP_PORT):
        pytest.skip(f"UDP 127.0.0.1:{DISCOVER_UDP_PORT} is busy on this machine")
    r = DiscoveryResponder(_info)
    if not await r.start("127.0.0.1", DISCOVER_UDP_PORT):
        pytest.skip(f"UDP 127.0.0.1:{DISCOVER_UDP_PORT} became busy")
    try:
        proc = await asyncio.create_subprocess_exec(
            "hdhomerun_config",
            "discover",
            "127.0.0.1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(20):
            out, _ = await proc.communicate()
    finally:
        await r.stop()
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"hdhomerun device {DEVICE_ID} found at 127.0.0.1" in text


def test_device_info_from_identity() -> None:
    identity = TunerIdentity("12345674", "http://10.0.0.5:5004/", 6, device_auth="a")
    assert device_info_from(identity) == DeviceInfo(
        "12345674", 6, "http://10.0.0.5:5004", "http://10.0.0.5:5004/lineup.json", "a"
    )

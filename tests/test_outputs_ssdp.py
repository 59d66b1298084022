"""Tests for the SSDP responder; everything stays on 127.0.0.1 (no multicast)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from streamforge.outputs.hdhomerun import TunerIdentity
from streamforge.outputs.ssdp import (
    DEVICE_TYPE,
    ROOT_DEVICE,
    SsdpDevice,
    SsdpResponder,
    matching_targets,
    notify_alive,
    parse_search,
    search_response,
    ssdp_device_from,
)

UDN = "uuid:ce44c1b0-775f-5fdc-882f-11eea4a9c51b"


def _device(location: str = "http://127.0.0.1:5004/device.xml") -> SsdpDevice:
    return SsdpDevice(udn=UDN, location=location)


def _msearch(st: str, man: str = '"ssdp:discover"') -> bytes:
    return (
        "M-SEARCH * HTTP/1.1\r\n"
        "HOST: 239.255.255.250:1900\r\n"
        f"MAN: {man}\r\n"
        "MX: 1\r\n"
        f"ST: {st}\r\n\r\n"
    ).encode()


def _parse_http(data: bytes) -> tuple[str, dict[str, str]]:
    text = data.decode()
    assert text.endswith("\r\n\r\n")
    first, *rest = text[:-4].split("\r\n")
    headers: dict[str, str] = {}
    for line in rest:
        name, _, value = line.partition(":")
        headers[name.upper()] = value.strip()
    return first, headers


class _Udp:
    """A loopback UDP socket read through the event loop."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    async def send(self, data: bytes, port: int) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, ("127.0.0.1", port))

    async def recv(self, within: float = 2.0) -> bytes | None:
        try:
            async with asyncio.timeout(within):
                data, _ = await asyncio.get_running_loop().sock_recvfrom(self.sock, 4096)
        except TimeoutError:
            return None
        return data

    async def recv_n(self, n: int) -> list[bytes]:
        out: list[bytes] = []
        for _ in range(n):
            data = await self.recv()
            assert data is not None, f"expected {n} datagrams, got {len(out)}"
            out.append(data)
        return out


Running = tuple[SsdpResponder, _Udp, _Udp, dict[str, SsdpDevice]]


@pytest.fixture
def sockets() -> Iterator[tuple[_Udp, _Udp]]:
    searcher, listener = _Udp(), _Udp()
    yield searcher, listener
    searcher.sock.close()
    listener.sock.close()


@pytest.fixture
async def running(sockets: tuple[_Udp, _Udp]) -> AsyncIterator[Running]:
    searcher, listener = sockets
    current = {"device": _device()}
    responder = SsdpResponder(
        lambda: current["device"],
        notify_target=("127.0.0.1", listener.port),
        multicast_group=None,
        announce_interval=None,
    )
    assert await responder.start("127.0.0.1", 0)
    # Drain the three ssdp:alive messages sent on start.
    await listener.recv_n(3)
    yield responder, searcher, listener, current
    await responder.stop()


def _port(responder: SsdpResponder) -> int:
    address = responder.address
    assert address is not None
    return address[1]


def test_parse_search() -> None:
    request = parse_search(_msearch("ssdp:all"))
    assert request is not None
    assert request.st == "ssdp:all"
    assert request.mx == 1
    assert parse_search(_msearch("ssdp:all", man="ssdp:discover")) is not None
    assert parse_search(_msearch("ssdp:all", man='"ssdp:other"')) is None
    assert parse_search(b"NOTIFY * HTTP/1.1\r\nNT: x\r\n\r\n") is None
    assert parse_search(b"\xff\xfe") is None
    assert parse_search(b"") is None
    lf_only = _msearch("upnp:rootdevice").replace(b"\r\n", b"\n")
    assert parse_search(lf_only) is not None


def test_matching_targets() -> None:
    device = _device()
    assert matching_targets(device, "ssdp:all") == [ROOT_DEVICE, UDN, DEVICE_TYPE]
    assert matching_targets(device, ROOT_DEVICE) == [ROOT_DEVICE]
    assert matching_targets(device, DEVICE_TYPE) == [DEVICE_TYPE]
    assert matching_targets(device, UDN) == [UDN]
    assert matching_targets(device, "uuid:00000000-0000-0000-0000-000000000000") == []
    assert matching_targets(device, "urn:schemas-upnp-org:device:MediaRenderer:1") == []


def test_response_format() -> None:
    first, headers = _parse_http(search_response(_device(), ROOT_DEVICE))
    assert first == "HTTP/1.1 200 OK"
    assert headers["CACHE-CONTROL"] == "max-age=1800"
    assert headers["EXT"] == ""
    assert headers["LOCATION"] == "http://127.0.0.1:5004/device.xml"
    assert "StreamForge" in headers["SERVER"]
    assert headers["ST"] == ROOT_DEVICE
    assert headers["USN"] == f"{UDN}::{ROOT_DEVICE}"
    _, uuid_headers = _parse_http(search_response(_device(), UDN))
    assert uuid_headers["USN"] == UDN


def test_notify_format() -> None:
    first, headers = _parse_http(notify_alive(_device(), DEVICE_TYPE, "239.255.255.250:1900"))
    assert first == "NOTIFY * HTTP/1.1"
    assert headers["HOST"] == "239.255.255.250:1900"
    assert headers["NTS"] == "ssdp:alive"
    assert headers["NT"] == DEVICE_TYPE
    assert headers["USN"] == f"{UDN}::{DEVICE_TYPE}"


@pytest.mark.parametrize(
    ("st", "expected"),
    [
        ("ssdp:all", {ROOT_DEVICE, UDN, DEVICE_TYPE}),
        (ROOT_DEVICE, {ROOT_DEVICE}),
        (DEVICE_TYPE, {DEVICE_TYPE}),
        (UDN, {UDN}),
    ],
)
async def test_msearch_gets_unicast_answers(running: Running, st: str, expected: set[str]) -> None:
    responder, searcher, _, _ = running
    await searcher.send(_msearch(st), _port(responder))
    replies = await searcher.recv_n(len(expected))
    seen = set()
    for reply in replies:
        first, headers = _parse_http(reply)
        assert first == "HTTP/1.1 200 OK"
        assert headers["LOCATION"] == "http://127.0.0.1:5004/device.xml"
        seen.add(headers["ST"])
    assert seen == expected


async def test_unmatched_and_junk_searches_are_ignored(running: Running) -> None:
    responder, searcher, _, current = running
    port = _port(responder)
    for junk in (
        _msearch("urn:schemas-upnp-org:device:MediaRenderer:1"),
        b"\x00\x01garbage",
        b"GET / HTTP/1.1\r\n\r\n",
    ):
        await searcher.send(junk, port)
    # Datagrams on loopback arrive in order: the first answer we see must be
    # the one to this valid search, carrying the freshly read location.
    current["device"] = _device("http://127.0.0.1:6000/device.xml")
    await searcher.send(_msearch(ROOT_DEVICE), port)
    reply = await searcher.recv()
    assert reply is not None
    _, headers = _parse_http(reply)
    assert headers["ST"] == ROOT_DEVICE
    assert headers["LOCATION"] == "http://127.0.0.1:6000/device.xml"


async def test_alive_on_start_and_byebye_on_stop(sockets: tuple[_Udp, _Udp]) -> None:
    _, listener = sockets
    responder = SsdpResponder(
        _device,
        notify_target=("127.0.0.1", listener.port),
        multicast_group=None,
        announce_interval=None,
    )
    assert await responder.start("127.0.0.1", 0)
    alive = [_parse_http(m)[1] for m in await listener.recv_n(3)]
    assert {h["NTS"] for h in alive} == {"ssdp:alive"}
    assert {h["NT"] for h in alive} == {ROOT_DEVICE, UDN, DEVICE_TYPE}
    assert {h["HOST"] for h in alive} == {f"127.0.0.1:{listener.port}"}
    await responder.stop()
    bye = [_parse_http(m)[1] for m in await listener.recv_n(3)]
    assert {h["NTS"] for h in bye} == {"ssdp:byebye"}
    assert {h["USN"] for h in bye} == {UDN, f"{UDN}::{ROOT_DEVICE}", f"{UDN}::{DEVICE_TYPE}"}
    await responder.stop()  # idempotent, no second byebye
    assert await listener.recv(within=0.1) is None


async def test_periodic_alive(sockets: tuple[_Udp, _Udp]) -> None:
    _, listener = sockets
    responder = SsdpResponder(
        _device,
        notify_target=("127.0.0.1", listener.port),
        multicast_group=None,
        announce_interval=0.05,
    )
    assert await responder.start("127.0.0.1", 0)
    try:
        # Three from start, then at least one full periodic round.
        messages = await listener.recv_n(6)
        assert all(_parse_http(m)[1]["NTS"] == "ssdp:alive" for m in messages)
    finally:
        await responder.stop()


async def test_port_in_use_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    try:
        responder = SsdpResponder(
            _device, notify_target=("127.0.0.1", 9), multicast_group=None, announce_interval=None
        )
        with caplog.at_level(logging.WARNING, logger="streamforge.outputs.ssdp"):
            assert await responder.start("127.0.0.1", blocker.getsockname()[1]) is False
        assert "SSDP disabled" in caplog.text
        assert not responder.running
        await responder.stop()
    finally:
        blocker.close()


def test_ssdp_device_from_identity() -> None:
    identity = TunerIdentity("12345674", "http://10.0.0.5:5004/", 2)
    device = ssdp_device_from(identity)
    assert device.udn == identity.udn
    assert device.location == "http://10.0.0.5:5004/device.xml"

"""The reflection guard of the UDP responders: replies only to senders on our
networks, at a bounded rate per sender. Real sockets, loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from streamforge.outputs.discovery import (
    TAG_DEVICE_ID,
    TAG_DEVICE_TYPE,
    TYPE_DISCOVER_REQ,
    DeviceInfo,
    DiscoveryResponder,
    encode_frame,
    encode_tlv,
)
from streamforge.outputs.lan import LOOPBACK_NETWORK, answerable_networks
from streamforge.outputs.ssdp import SsdpDevice, SsdpResponder
from streamforge.outputs.udp import (
    DEFAULT_BURST,
    DEFAULT_RATE,
    RateLimiter,
    ReplyLimits,
    SourceScope,
)

Net = ipaddress.IPv4Network
Iface = ipaddress.IPv4Interface

REQUEST = encode_frame(
    TYPE_DISCOVER_REQ,
    encode_tlv(TAG_DEVICE_TYPE, b"\xff" * 4) + encode_tlv(TAG_DEVICE_ID, b"\xff" * 4),
)
SSDP_ALL = (
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    b'MAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
)
INFO = DeviceInfo(
    device_id="12345674",
    tuner_count=4,
    base_url="http://192.168.1.20:5004",
    lineup_url="http://192.168.1.20:5004/lineup.json",
    device_auth="abcdefghijklmnopqrstuvwx",
)
DEVICE = SsdpDevice(
    udn="uuid:ce44c1b0-775f-5fdc-882f-11eea4a9c51b",
    location="http://192.168.1.20:5004/device.xml",
)


# -- the rate limiter, sans IO -------------------------------------------------
def test_bucket_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(burst=4, rate=2.0)
    assert [limiter.take("10.0.0.1", 1, 0.0) for _ in range(6)] == [1, 1, 1, 1, 0, 0]
    assert limiter.available("10.0.0.1", 0.0) == 0
    assert limiter.take("10.0.0.1", 1, 0.5) == 1  # 0.5 s at 2/s: one token
    assert limiter.take("10.0.0.1", 1, 0.5) == 0
    # A steady rate at the refill rate is always answered.
    assert all(limiter.take("10.0.0.1", 1, 0.5 + n * 0.5) == 1 for n in range(1, 100))
    # Never more than the burst, however long the pause.
    assert limiter.available("10.0.0.1", 1e6) == 4


def test_sources_are_independent_and_partial_grants() -> None:
    limiter = RateLimiter(burst=5, rate=1.0)
    assert limiter.take("10.0.0.1", 3, 0.0) == 3
    assert limiter.take("10.0.0.1", 3, 0.0) == 2  # only what is left
    assert limiter.take("10.0.0.2", 3, 0.0) == 3
    assert limiter.available("10.0.0.1", 0.0) == 0
    assert limiter.available("10.0.0.3", 0.0) == 5


def test_table_is_bounded_and_cannot_be_flushed() -> None:
    limiter = RateLimiter(burst=2, rate=1.0, max_sources=3)
    limiter.take("victim", 2, 0.0)
    assert limiter.take("a", 1, 0.0) == 1
    assert limiter.take("b", 1, 0.0) == 1
    # Full of busy buckets: a newcomer is not answered and evicts nobody.
    assert limiter.available("c", 0.5) == 0
    assert limiter.take("c", 1, 0.5) == 0
    assert len(limiter) == 3
    assert limiter.take("victim", 1, 0.5) == 0  # still remembered as spent
    # Once the oldest bucket has refilled completely it may be replaced.
    assert limiter.take("c", 1, 2.0) == 1
    assert len(limiter) == 3
    assert limiter.available("victim", 2.0) == 2  # evicted, comes back fresh


def test_scope_rereads_networks() -> None:
    networks = [Net("127.0.0.0/8")]
    reads: list[float] = []

    def source() -> list[Net]:
        reads.append(0.0)
        return list(networks)

    scope = SourceScope(source, refresh=30.0)
    assert scope.allows("127.0.0.5", 0.0)
    assert not scope.allows("192.168.1.7", 1.0)
    assert not scope.allows("not-an-address", 1.0)
    networks.append(Net("192.168.1.0/24"))
    assert not scope.allows("192.168.1.7", 29.0)
    assert scope.allows("192.168.1.7", 30.0)
    assert len(reads) == 2


def test_answerable_networks_rule() -> None:
    interfaces = [Iface("127.0.0.1/8"), Iface("192.168.1.20/24"), Iface("10.8.0.2/32")]
    assert answerable_networks("0.0.0.0", lambda: interfaces) == [
        LOOPBACK_NETWORK,
        Net("192.168.1.0/24"),
        Net("10.8.0.2/32"),
    ]
    assert answerable_networks("127.0.0.1", lambda: interfaces) == [LOOPBACK_NETWORK]
    assert answerable_networks("127.1.2.3", lambda: interfaces) == [LOOPBACK_NETWORK]
    assert answerable_networks("192.168.1.20", lambda: interfaces) == [Net("192.168.1.0/24")]
    assert answerable_networks("172.16.0.1", lambda: interfaces) == [Net("172.16.0.1/32")]
    # The machine's real interfaces: loopback is always answerable on a wildcard bind.
    assert LOOPBACK_NETWORK in answerable_networks("0.0.0.0")


# -- real sockets ---------------------------------------------------------------
@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class Client:
    """A non-blocking UDP socket on a chosen loopback address."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setblocking(False)
        self.sent = 0

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))
        self.sent += len(data)

    async def recv(self, within: float = 2.0) -> bytes | None:
        try:
            async with asyncio.timeout(within):
                data, _ = await asyncio.get_running_loop().sock_recvfrom(self.sock, 4096)
        except TimeoutError:
            return None
        return data

    def drain(self) -> list[bytes]:
        """Everything already delivered, without waiting."""
        found: list[bytes] = []
        while True:
            try:
                found.append(self.sock.recv(4096))
            except BlockingIOError:
                return found


@pytest.fixture
def clients() -> Iterator[tuple[Client, Client]]:
    first, second = Client("127.0.0.1"), Client("127.0.0.2")
    yield first, second
    first.sock.close()
    second.sock.close()


async def _burst(attacker: Client, witness: Client, port: int, request: bytes) -> list[bytes]:
    """Send 100 requests from ``attacker``; return the replies it got once the
    responder has provably handled them all: ``witness`` (another address, its
    own bucket) asks last, and datagrams on one socket are handled in order."""
    for _ in range(100):
        attacker.send(request, port)
    witness.send(request, port)
    assert await witness.recv() is not None, "the second address must be answered"
    witness.drain()
    return attacker.drain()


async def _discovery(limits: ReplyLimits) -> DiscoveryResponder:
    responder = DiscoveryResponder(lambda: INFO, limits=limits)
    assert await responder.start("127.0.0.1", 0)
    return responder


def _discovery_port(responder: DiscoveryResponder) -> int:
    address = responder.address
    assert address is not None
    return address[1]


@pytest.fixture
async def discovery() -> AsyncIterator[DiscoveryResponder]:
    responder = await _discovery(ReplyLimits())
    yield responder
    await responder.stop()


async def test_discovery_burst_gets_at_most_the_bucket(
    discovery: DiscoveryResponder, clients: tuple[Client, Client]
) -> None:
    attacker, witness = clients
    started = time.monotonic()
    replies = await _burst(attacker, witness, _discovery_port(discovery), REQUEST)
    elapsed = time.monotonic() - started
    # The event loop's clock: the bucket, plus whatever refilled meanwhile.
    assert 1 <= len(replies) <= DEFAULT_BURST + int(elapsed * DEFAULT_RATE) + 1
    amplification = sum(map(len, replies)) / attacker.sent
    reply_size = len(replies[0])
    assert reply_size > 5 * len(REQUEST)  # unguarded, each request is amplified >5x
    assert amplification < 1.0


async def test_steady_rate_keeps_being_answered_and_sources_are_independent(
    clients: tuple[Client, Client],
) -> None:
    clock = FakeClock()
    responder = await _discovery(ReplyLimits(burst=8, rate=1.0, clock=clock))
    attacker, witness = clients
    port = _discovery_port(responder)
    try:
        replies = await _burst(attacker, witness, port, REQUEST)
        assert len(replies) == 8  # frozen clock: exactly the bucket
        amplification = sum(map(len, replies)) / attacker.sent
        assert amplification == pytest.approx(8 * len(replies[0]) / (100 * len(REQUEST)))
        # The second address has its own bucket: 7 tokens left after the witness request.
        for _ in range(7):
            witness.send(REQUEST, port)
            assert await witness.recv() is not None
        # One request a second, the refill rate, is answered every time.
        for _ in range(30):
            clock.now += 1.0
            attacker.send(REQUEST, port)
            assert await attacker.recv() is not None
        # The witness, meanwhile refilled to the full bucket, still is too.
        assert await _recv_after(witness, port, REQUEST)
    finally:
        await responder.stop()


async def _recv_after(client: Client, port: int, request: bytes) -> bool:
    client.send(request, port)
    return await client.recv() is not None


async def test_senders_outside_our_networks_are_not_answered(
    clients: tuple[Client, Client],
) -> None:
    first, second = clients
    only_first = ReplyLimits(networks=lambda: [Net("127.0.0.1/32")])
    responder = await _discovery(only_first)
    port = _discovery_port(responder)
    try:
        # 127.0.0.2 is ours (loopback) but not on the configured network: silence.
        assert not await _recv_after(second, port, REQUEST)
        assert await _recv_after(first, port, REQUEST)
    finally:
        await responder.stop()
    # With the default rule a loopback bind answers all of 127.0.0.0/8.
    responder = await _discovery(ReplyLimits())
    try:
        assert await _recv_after(second, _discovery_port(responder), REQUEST)
    finally:
        await responder.stop()


async def test_ssdp_all_burst_is_bounded(clients: tuple[Client, Client]) -> None:
    attacker, witness = clients
    listener = Client()
    responder = SsdpResponder(
        lambda: DEVICE,
        notify_target=("127.0.0.1", listener.sock.getsockname()[1]),
        multicast_group=None,
        announce_interval=None,
        limits=ReplyLimits(burst=8, rate=1.0, clock=FakeClock()),
    )
    assert await responder.start("127.0.0.1", 0)
    address = responder.address
    assert address is not None
    try:
        replies = await _burst(attacker, witness, address[1], SSDP_ALL)
    finally:
        await responder.stop()
        listener.sock.close()
    # ssdp:all answers three datagrams; the bucket counts datagrams, not requests.
    assert len(replies) == 8
    assert all(reply.startswith(b"HTTP/1.1 200 OK\r\n") for reply in replies)
    assert sum(map(len, replies[:3])) > 8 * len(SSDP_ALL) * 0.9  # unguarded: about 8x
    assert sum(map(len, replies)) / attacker.sent < 0.5

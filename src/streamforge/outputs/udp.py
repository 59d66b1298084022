"""The datagram protocol shared by the discovery responders (HDHomeRun UDP
and SSDP): each incoming datagram is handed to an ``answer`` function, and
whatever it returns is sent back to the sender. The responders differ only in
that function.

Reflection guard
----------------
A reply is several times larger than the request that asks for it (about
5.5 times for HDHomeRun discovery, 8 times for an SSDP ``ssdp:all`` search), and a UDP
source address can be forged, so a responder that answers anyone can be
used to flood a third party. Before anything is answered, two rules apply:

* **Scope.** Only senders on a network of the interface(s) the socket is
  bound to are answered; the rule, including loopback counting as its own
  127.0.0.0/8, is :func:`streamforge.outputs.lan.answerable_networks`. The
  networks are re-read every :data:`SCOPE_REFRESH` seconds, so an address
  change is picked up without a restart.
* **Rate.** Each source address (whatever its port) has a token bucket of
  ``burst`` tokens, refilled at ``rate`` tokens a second; every reply
  datagram costs a token — divided by the number of virtual devices the
  responder speaks for (:mod:`streamforge.outputs.devices`), so a request
  that every device answers costs what it costs with one device, and
  ``hdhomerun_config discover`` sees every device in one call. A sender
  whose bucket is empty is not answered,
  and its request is not even decoded; when a request has more replies than
  tokens (SSDP ``ssdp:all``), only as many are sent as there are tokens.
  Requests that get no reply (junk, someone else's device) cost nothing.
  The bucket table holds at most ``max_sources`` addresses. When it is full
  a new address may take the place of the least recently answered one only
  if that bucket has refilled completely (it then holds no state worth
  keeping); otherwise the new address is not answered. So forged requests
  from many addresses can neither grow the table nor reset a victim's bucket.

Under a burst, one source address gets at most ``burst`` reply datagrams and
then ``rate`` a second per device, whatever it sends (the devices are the
user's configuration, a handful at most, not anything a sender controls).
Time comes from a clock function, the event loop's by default, so tests can
drive it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from streamforge.outputs.lan import answerable_networks

log = logging.getLogger(__name__)

#: Datagram in → replies out (empty: stay silent).
Answer = Callable[[bytes, object], list[bytes]]
#: The networks whose senders may be answered.
Networks = Callable[[], Iterable[ipaddress.IPv4Network]]
Clock = Callable[[], float]

DEFAULT_BURST = 8
DEFAULT_RATE = 1.0
DEFAULT_MAX_SOURCES = 256
SCOPE_REFRESH = 30.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets per source address, in a bounded table (sans-IO: time is
    an argument)."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        rate: float = DEFAULT_RATE,
        max_sources: int = DEFAULT_MAX_SOURCES,
    ) -> None:
        if burst < 1 or rate <= 0 or max_sources < 1:
            raise ValueError("burst, rate and max_sources must be positive")
        self._burst = burst
        self._rate = rate
        self._max = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(float(self._burst), bucket.tokens + max(0.0, now - bucket.stamp) * self._rate)

    def _oldest_is_idle(self, now: float) -> bool:
        """Whether the least recently answered source's bucket has refilled completely."""
        oldest = next(iter(self._buckets.values()))
        return self._level(oldest, now) >= self._burst

    def available(self, source: str, now: float, *, unit: int = 1) -> int:
        """Datagrams ``source`` could be sent now at ``1/unit`` token each
        (nothing is taken or stored)."""
        bucket = self._buckets.get(source)
        if bucket is not None:
            return _whole(self._level(bucket, now) * unit)
        if len(self._buckets) < self._max or self._oldest_is_idle(now):
            return self._burst * unit
        return 0

    def take(self, source: str, wanted: int, now: float, *, unit: int = 1) -> int:
        """Spend the tokens of up to ``wanted`` datagrams of ``source`` at
        ``1/unit`` token each; returns how many datagrams may go."""
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self._max:
                if not self._oldest_is_idle(now):
                    return 0
                self._buckets.popitem(last=False)
            bucket = self._buckets[source] = _Bucket(float(self._burst), now)
        bucket.tokens = self._level(bucket, now)
        bucket.stamp = now
        granted = max(0, min(wanted, _whole(bucket.tokens * unit)))
        bucket.tokens = max(0.0, bucket.tokens - granted / unit)
        self._buckets.move_to_end(source)
        return granted


def _whole(value: float) -> int:
    """``int(value)``, tolerant of the rounding of fractional token costs."""
    return int(value + 1e-9)


class SourceScope:
    """Whether a sender is on a network we answer; ``networks`` is re-read
    every ``refresh`` seconds."""

    def __init__(self, networks: Networks, *, refresh: float = SCOPE_REFRESH) -> None:
        self._source = networks
        self._refresh = refresh
        self._networks: tuple[ipaddress.IPv4Network, ...] = ()
        self._read_at: float | None = None

    def allows(self, host: str, now: float) -> bool:
        if self._read_at is None or now - self._read_at >= self._refresh:
            self._networks = tuple(self._source())
            self._read_at = now
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """How a responder guards its replies (see the module docstring).

    ``networks`` replaces the interface-derived scope (for tests and unusual
    hosts); ``clock`` replaces the event loop's clock.
    """

    burst: int = DEFAULT_BURST
    rate: float = DEFAULT_RATE
    max_sources: int = DEFAULT_MAX_SOURCES
    networks: Networks | None = None
    clock: Clock | None = None

    def protocol(
        self,
        name: str,
        answer: Answer,
        bound_host: str,
        *,
        devices: Callable[[], int] | None = None,
    ) -> ReplyProtocol:
        """A fresh protocol (empty bucket table) for a socket bound to ``bound_host``;
        ``devices`` says how many devices it answers for (the token cost divisor)."""
        networks = self.networks or (lambda: answerable_networks(bound_host))
        return ReplyProtocol(
            name,
            answer,
            scope=SourceScope(networks),
            limiter=RateLimiter(burst=self.burst, rate=self.rate, max_sources=self.max_sources),
            clock=self.clock,
            devices=devices,
        )


class ReplyProtocol(asyncio.DatagramProtocol):
    def __init__(
        self,
        name: str,
        answer: Answer,
        *,
        scope: SourceScope,
        limiter: RateLimiter,
        clock: Clock | None = None,
        devices: Callable[[], int] | None = None,
    ) -> None:
        self._name = name
        self._answer = answer
        self._devices = devices
        self._scope = scope
        self._limiter = limiter
        self._clock = clock
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython 3.11's selector datagram transport does not subclass
        # DatagramTransport, so an isinstance check would reject it.
        self._transport = cast(asyncio.DatagramTransport, transport)
        if self._clock is None:
            self._clock = asyncio.get_running_loop().time

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self._transport is None or self._clock is None:
            return
        host = addr[0]
        now = self._clock()
        if not isinstance(host, str) or not self._scope.allows(host, now):
            log.debug("%s: not answering %s: not on a network we serve", self._name, host)
            return
        unit = max(1, self._devices()) if self._devices is not None else 1
        if self._limiter.available(host, now, unit=unit) < 1:
            log.debug("%s: not answering %s: reply rate limit", self._name, host)
            return
        replies = self._answer(data, addr)
        if not replies:
            return
        granted = self._limiter.take(host, len(replies), now, unit=unit)
        for reply in replies[:granted]:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("%s socket error: %s", self._name, exc)

"""The datagram protocol shared by the discovery responders (HDHomeRun UDP
and SSDP): each incoming datagram is handed to an ``answer`` function, and
whatever it returns is sent back to the sender. The responders differ only in
that function."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

#: Datagram in → replies out (empty: stay silent).
Answer = Callable[[bytes, object], list[bytes]]


class ReplyProtocol(asyncio.DatagramProtocol):
    def __init__(self, name: str, answer: Answer) -> None:
        self._name = name
        self._answer = answer
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython 3.11's selector datagram transport does not subclass
        # DatagramTransport, so an isinstance check would reject it.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self._transport is None:
            return
        for reply in self._answer(data, addr):
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("%s socket error: %s", self._name, exc)

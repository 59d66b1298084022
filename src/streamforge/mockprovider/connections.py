"""Live-connection bookkeeping of the mock panel: counters, the open/close log, limits.

Theory of operation
-------------------
Every request for a live stream is a :class:`Connection` from the moment the handler
accepts it until the handler has finished and the transport is closing — including
requests that are answered by a fault (those close with the fault as reason). The
:class:`ConnectionRegistry` keeps the open ones, a bounded log of open/close
:class:`ConnectionEvent`\\ s, and per-target API call counters; :meth:`snapshot`
freezes all of it into a :class:`ProviderStats` that tests and the control API read.

``max_connections`` is enforced like a real panel when a connection is about to start
sending video (:meth:`ConnectionRegistry.admit`): in ``kill_oldest`` mode the account's
oldest streaming connection is aborted to make room; in ``refuse_403`` /
``refuse_458`` mode the newcomer is refused with that status.

Waiters (:meth:`ConnectionRegistry.wait_changed`) are woken on every change so a test
can wait for a condition ("no open connections for account a") without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

#: How many open/close events the log keeps (oldest dropped first).
EVENT_LOG_SIZE = 20_000


class LimitMode(StrEnum):
    KILL_OLDEST = "kill_oldest"
    REFUSE_403 = "refuse_403"
    REFUSE_458 = "refuse_458"

    @property
    def refuse_status(self) -> int:
        return 458 if self is LimitMode.REFUSE_458 else 403


def abort_transport(transport: asyncio.BaseTransport | None, *, reset: bool) -> None:
    """Close a transport now; with ``reset`` the peer gets a TCP RST (SO_LINGER 0)."""
    if transport is None or transport.is_closing():
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # An already-gone socket needs no linger; abort() below still closes it.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()


@dataclass(eq=False)
class Connection:
    """One live-stream request while it is being served (mutable, loop-thread only)."""

    conn_id: int
    stream_id: int
    account: str
    remote: str
    opened_at: float
    started: float
    transport: asyncio.BaseTransport | None = field(repr=False, default=None)
    streaming: bool = False
    kill_reason: str | None = None
    bytes_sent: int = 0
    fault: str = ""

    def client_gone(self) -> bool:
        """True once the peer closed or we aborted the transport."""
        return self.transport is None or self.transport.is_closing()

    def kill(self, reason: str, *, reset: bool = False) -> None:
        """Abort this connection from outside its handler (the handler notices)."""
        if self.kill_reason is None:
            self.kill_reason = reason
        abort_transport(self.transport, reset=reset)


@dataclass(frozen=True)
class ConnectionInfo:
    conn_id: int
    stream_id: int
    account: str
    remote: str
    opened_at: float
    streaming: bool
    bytes_sent: int
    fault: str = ""


@dataclass(frozen=True)
class ConnectionEvent:
    """``event`` is ``open`` or ``close``; ``reason`` is set on close."""

    at: float
    event: str
    conn_id: int
    stream_id: int
    account: str
    reason: str = ""
    bytes_sent: int = 0


@dataclass(frozen=True)
class ProviderStats:
    """A frozen picture of the provider's connections and counters."""

    open: tuple[ConnectionInfo, ...]
    events: tuple[ConnectionEvent, ...]
    total_opened: int
    total_closed: int
    api_calls: Mapping[str, int]

    def open_connections(self, *, account: str | None = None, stream_id: int | None = None) -> int:
        return sum(
            1
            for c in self.open
            if (account is None or c.account == account)
            and (stream_id is None or c.stream_id == stream_id)
        )

    def faulted(self, kind: str | None = None, *, stream_id: int | None = None) -> int:
        """Open connections on which a during-streaming fault (of ``kind``) has fired."""
        return sum(
            1
            for c in self.open
            if c.fault
            and (kind is None or c.fault == kind)
            and (stream_id is None or c.stream_id == stream_id)
        )

    def per_stream(self) -> dict[int, int]:
        return dict(Counter(c.stream_id for c in self.open))

    def per_account(self) -> dict[str, int]:
        return dict(Counter(c.account for c in self.open))

    def closes(
        self,
        *,
        reason: str | None = None,
        stream_id: int | None = None,
        account: str | None = None,
    ) -> list[ConnectionEvent]:
        return [
            e
            for e in self.events
            if e.event == "close"
            and (reason is None or e.reason == reason)
            and (stream_id is None or e.stream_id == stream_id)
            and (account is None or e.account == account)
        ]

    def opens(self, *, stream_id: int | None = None, account: str | None = None) -> int:
        return sum(
            1
            for e in self.events
            if e.event == "open"
            and (stream_id is None or e.stream_id == stream_id)
            and (account is None or e.account == account)
        )

    def to_dict(self, last_events: int | None = None) -> dict[str, Any]:
        """JSON-ready form; ``last_events`` keeps only the newest events of the log."""
        events = self.events if last_events is None else self.events[-last_events:]
        if last_events == 0:
            events = ()
        return {
            "open": [asdict(c) for c in self.open],
            "events": [asdict(e) for e in events],
            "total_opened": self.total_opened,
            "total_closed": self.total_closed,
            "api_calls": dict(self.api_calls),
            "per_stream": {str(k): v for k, v in self.per_stream().items()},
            "per_account": self.per_account(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProviderStats:
        return cls(
            open=tuple(ConnectionInfo(**c) for c in data["open"]),
            events=tuple(ConnectionEvent(**e) for e in data["events"]),
            total_opened=int(data["total_opened"]),
            total_closed=int(data["total_closed"]),
            api_calls=dict(data["api_calls"]),
        )


class ConnectionRegistry:
    """Open live connections, their log and limits (event-loop thread only)."""

    def __init__(self, limit_mode: LimitMode = LimitMode.KILL_OLDEST) -> None:
        self.limit_mode = limit_mode
        self._ids = itertools.count(1)
        self._open: dict[int, Connection] = {}
        self._events: deque[ConnectionEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self._opened = 0
        self._closed = 0
        self._api_calls: Counter[str] = Counter()
        self._waiters: list[asyncio.Future[None]] = []

    # -- change notification ------------------------------------------------------
    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_changed(self, timeout: float) -> None:  # noqa: ASYNC109 - bounded wake-up
        """Return after the next change, or after ``timeout`` seconds."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            pass  # the caller re-checks its condition either way
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    # -- connections ------------------------------------------------------------------
    def open(
        self, stream_id: int, account: str, transport: asyncio.BaseTransport | None, remote: str
    ) -> Connection:
        conn = Connection(
            conn_id=next(self._ids),
            stream_id=stream_id,
            account=account,
            remote=remote,
            opened_at=time.time(),
            started=time.monotonic(),
            transport=transport,
        )
        self._open[conn.conn_id] = conn
        self._opened += 1
        self._events.append(
            ConnectionEvent(conn.opened_at, "open", conn.conn_id, stream_id, account)
        )
        self._changed()
        return conn

    def close(self, conn: Connection, reason: str) -> None:
        if self._open.pop(conn.conn_id, None) is None:
            return
        self._closed += 1
        self._events.append(
            ConnectionEvent(
                time.time(),
                "close",
                conn.conn_id,
                conn.stream_id,
                conn.account,
                conn.kill_reason or reason,
                conn.bytes_sent,
            )
        )
        self._changed()

    def admit(self, conn: Connection, max_connections: int) -> bool:
        """Make ``conn`` a streaming connection within its account's limit.

        Returns False when the limit mode refuses it; in kill-oldest mode the oldest
        streaming connections of the account are aborted (reason ``kicked``).
        """
        active = sorted(
            (
                c
                for c in self._open.values()
                if c.account == conn.account
                and c.streaming
                and c.kill_reason is None
                and not c.client_gone()  # its socket is closed; the handler has yet to notice
            ),
            key=lambda c: (c.started, c.conn_id),
        )
        excess = len(active) + 1 - max(max_connections, 0)
        if excess > 0:
            if self.limit_mode is not LimitMode.KILL_OLDEST:
                return False
            for victim in active[:excess]:
                victim.kill("kicked")
        conn.streaming = True
        self._changed()
        return True

    def mark_fault(self, conn: Connection, kind: str) -> None:
        """Record that a during-streaming fault has fired on ``conn`` (tests wait on it)."""
        conn.fault = kind
        self._changed()

    def kill(
        self,
        *,
        stream_id: int | None = None,
        account: str | None = None,
        reset: bool = False,
        reason: str = "killed",
    ) -> int:
        """Abort matching open connections; returns how many."""
        victims = [
            c
            for c in self._open.values()
            if (stream_id is None or c.stream_id == stream_id)
            and (account is None or c.account == account)
        ]
        for c in victims:
            c.kill(reason, reset=reset)
        return len(victims)

    def streaming_count(self, account: str) -> int:
        """Connections of ``account`` currently sending video (the panel's active_cons)."""
        return sum(
            1
            for c in self._open.values()
            if c.account == account and c.streaming and c.kill_reason is None
        )

    def connections(self) -> Iterable[Connection]:
        return list(self._open.values())

    def count_api_call(self, target: str) -> None:
        self._api_calls[target] += 1

    def snapshot(self) -> ProviderStats:
        return ProviderStats(
            open=tuple(
                ConnectionInfo(
                    c.conn_id,
                    c.stream_id,
                    c.account,
                    c.remote,
                    c.opened_at,
                    c.streaming,
                    c.bytes_sent,
                    c.fault,
                )
                for c in self._open.values()
            ),
            events=tuple(self._events),
            total_opened=self._opened,
            total_closed=self._closed,
            api_calls=dict(self._api_calls),
        )

"""Per-account connection slots, shared by every channel session of the process.

Xtream panels cap the number of simultaneous connections of an account
(``max_connections``), and many of them enforce the cap by silently killing
the *oldest* connection when a new one arrives. Opening one connection too
many therefore does not fail — it kills a stream someone is watching. So
StreamForge counts its own connections per account and never opens one
beyond the limit.

Theory of operation: one :class:`AccountSlots` object lives for the whole
process and is handed to every failover policy. Before a policy asks the
driver to open an upstream it takes a :class:`SlotLease` with
:meth:`AccountSlots.try_acquire`; when it asks the driver to close that
upstream (for any reason: failure, switch, clients gone) it gives the lease
back with :meth:`AccountSlots.release`. A lease is a unique token, so a
double release or the release of a foreign lease raises instead of silently
corrupting the count, and :meth:`AccountSlots.leases` shows who holds what.

The limit travels with each request (it is a property of the account and may
change while sessions run); a lower new limit never revokes live leases, it
only refuses new ones until enough are released.

*Sockets and draining.*  A lease is the policy's *reservation*; the socket
behind it lives a little longer. The policy releases a lease when it asks for
the close, and may at once reserve the freed slot for a backup of the same
account (a failover, a swap upgrade). But a provider that sees StreamForge's
next connection before the previous one has closed counts one too many (and
may kill the oldest, or refuse the newcomer). So the driver *gates* its
sockets: before connecting for a lease it awaits :meth:`AccountSlots.connect`,
which returns once fewer than ``limit`` of the account's sockets are open, and
it reports :meth:`AccountSlots.closed` once the socket has actually closed. A
socket whose lease was released but that has not closed yet is *draining*
(:meth:`draining`); :meth:`in_use` and :meth:`available` stay the policy's
view (reservations), :meth:`open_connections` is the sockets' view. A tune or
a failover on a full account therefore waits (bounded by the caller) for the
previous connection to close instead of being refused or overlapping it.

Not thread-safe: it is used from the event-loop thread only.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field

from streamforge.errors import StreamingError


@dataclass(frozen=True, slots=True)
class SlotLease:
    """Proof that one connection of ``account_id`` is reserved for ``holder``."""

    account_id: int
    serial: int
    holder: Hashable = field(default=None, compare=False)


class SlotError(StreamingError):
    """A lease was released twice or was never issued by this registry."""


class AccountSlots:
    """Counts StreamForge's open upstream connections per provider account."""

    def __init__(self) -> None:
        self._serials = itertools.count(1)
        self._leases: dict[int, set[SlotLease]] = {}
        self._sockets: dict[int, set[SlotLease]] = {}
        self._waiters: list[asyncio.Future[None]] = []

    def in_use(self, account_id: int) -> int:
        """Connections of ``account_id`` currently reserved (held leases)."""
        return len(self._leases.get(account_id, ()))

    def open_connections(self, account_id: int) -> int:
        """Sockets of ``account_id`` open now (their lease held or released)."""
        return len(self._sockets.get(account_id, ()))

    def draining(self, account_id: int) -> int:
        """Sockets of ``account_id`` whose lease was released but that have not closed yet."""
        held = self._leases.get(account_id, set())
        return sum(1 for lease in self._sockets.get(account_id, ()) if lease not in held)

    def available(self, account_id: int, limit: int) -> int:
        """Free connections of ``account_id`` under ``limit`` (never negative)."""
        return max(0, limit - self.in_use(account_id))

    def try_acquire(self, account_id: int, limit: int, holder: Hashable = None) -> SlotLease | None:
        """Reserve one connection, or return None when the account is full."""
        if limit < 1:
            raise ValueError(f"connection limit must be at least 1, got {limit}")
        if self.in_use(account_id) >= limit:
            return None
        lease = SlotLease(account_id, next(self._serials), holder)
        self._leases.setdefault(account_id, set()).add(lease)
        return lease

    async def confirm(self, lease: SlotLease, limit: int) -> bool:
        """Whether the upstream of ``lease`` may connect now (awaited by the session
        just before it connects). In one process the local slot is the whole truth;
        :class:`streamforge.cluster.slots.ClusterSlots` also takes the cluster-wide lease."""
        return True

    def release(self, lease: SlotLease) -> None:
        """Give a connection back. Raises :class:`SlotError` if not currently held."""
        held = self._leases.get(lease.account_id)
        if held is None or lease not in held:
            raise SlotError(f"slot lease {lease.serial} of account {lease.account_id} is not held")
        held.remove(lease)
        if not held:
            del self._leases[lease.account_id]

    async def connect(self, lease: SlotLease, limit: int) -> None:
        """Wait until ``lease``'s socket may open: fewer than ``limit`` of the account's
        sockets are open. Then it counts as open until :meth:`closed`.

        Bound it with a timeout; cancelling it leaves nothing behind. Raises
        :class:`SlotError` if ``lease`` is not held (the policy closed the attempt).
        """
        account = lease.account_id
        while True:
            held = self._leases.get(account)
            if held is None or lease not in held:
                raise SlotError(f"slot lease {lease.serial} of account {account} is not held")
            sockets = self._sockets.setdefault(account, set())
            if lease in sockets or len(sockets) < max(limit, 1):
                sockets.add(lease)
                return
            await self.wait_changed()

    def closed(self, lease: SlotLease) -> None:
        """The socket of ``lease`` has actually closed (idempotent; no-op if never opened)."""
        sockets = self._sockets.get(lease.account_id)
        if sockets is None or lease not in sockets:
            return
        sockets.remove(lease)
        if not sockets:
            del self._sockets[lease.account_id]
        self._changed()

    async def wait_changed(self) -> None:
        """Return at the next socket closed; bound it with a timeout."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future in self._waiters:
                self._waiters.remove(future)

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def leases(self, account_id: int | None = None) -> tuple[SlotLease, ...]:
        """Live leases (of one account, or of all), oldest first."""
        if account_id is not None:
            chosen = list(self._leases.get(account_id, ()))
        else:
            chosen = [lease for held in self._leases.values() for lease in held]
        return tuple(sorted(chosen, key=lambda lease: lease.serial))

    def snapshot(self) -> dict[int, int]:
        """``{account_id: connections in use}`` for the API and metrics."""
        return {account_id: len(held) for account_id, held in sorted(self._leases.items())}

    def sockets_snapshot(self) -> dict[int, int]:
        """``{account_id: sockets open}`` (draining ones included)."""
        return {account_id: len(open_) for account_id, open_ in sorted(self._sockets.items())}

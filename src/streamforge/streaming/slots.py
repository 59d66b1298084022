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

Not thread-safe: it is used from the event-loop thread only.
"""

from __future__ import annotations

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

    def in_use(self, account_id: int) -> int:
        """Connections of ``account_id`` currently held."""
        return len(self._leases.get(account_id, ()))

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

    def release(self, lease: SlotLease) -> None:
        """Give a connection back. Raises :class:`SlotError` if not currently held."""
        held = self._leases.get(lease.account_id)
        if held is None or lease not in held:
            raise SlotError(f"slot lease {lease.serial} of account {lease.account_id} is not held")
        held.remove(lease)
        if not held:
            del self._leases[lease.account_id]

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

"""The bridge between the policy's synchronous slots and cluster-wide leases.

The failover policy (:mod:`streamforge.streaming.policy`) is sans-IO: before
it emits ``OpenUpstream`` it takes a :class:`~streamforge.streaming.slots.SlotLease`
from :class:`~streamforge.streaming.slots.AccountSlots` synchronously, and it
gives the lease back when it emits the close. :class:`ClusterSlots` *is* an
``AccountSlots`` (the policy needs no change) that adds the cluster:

1. the local slot keeps this node from going over the cap on its own, at
   once and without I/O;
2. the session's upstream task, before it connects to the provider, awaits
   :meth:`ClusterSlots.confirm` — one Redis round-trip that takes the
   cluster-wide lease. ``False`` means the account is full on the cluster (or
   Redis cannot be reached): the attempt fails with
   ``FailureReason.ACCOUNT_LIMIT`` and the policy's normal close path
   releases the local slot;
3. :meth:`release` (called by the policy as before) frees the local slot and
   queues the cluster lease's removal, which a background task sends at once —
   unless the connection's socket is still closing (*draining*, see
   :mod:`streamforge.streaming.slots`): then the cluster lease stays, renewed,
   until :meth:`closed` reports the socket gone, because the provider still
   counts it;
4. a renew task extends every lease this node holds in one round-trip per
   third of the TTL. After an outage it reconciles: leases that expired
   meanwhile are added back within the cap, and those that no longer fit
   are reported to ``on_lost`` — their connections must be closed, or the
   account would be over its limit.

While Redis is unreachable nothing new is opened (``confirm`` returns False)
and already open connections keep playing; one warning event is recorded
per outage (:class:`~streamforge.cluster.redisconn.RedisHealth`).

Lease ids are ``<node instance>:<slot serial>``, so a lease in Redis names the
node that holds it.

Used from the event-loop thread only, like ``AccountSlots``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from streamforge.cluster.leases import LeaseRef, LeaseStore, RenewOutcome
from streamforge.cluster.node import NodeIdentity
from streamforge.cluster.redisconn import REDIS_ERRORS, RedisHealth, raise_if_cancelled
from streamforge.streaming.slots import AccountSlots, SlotLease
from streamforge.tasks import TaskOwner

LostCallback = Callable[[tuple[SlotLease, ...]], None]


@dataclass(frozen=True, slots=True)
class _Held:
    ref: LeaseRef
    granted_at: float


class ClusterSlots(AccountSlots):
    """``AccountSlots`` whose leases are also counted cluster-wide in Redis."""

    def __init__(
        self,
        store: LeaseStore,
        identity: NodeIdentity,
        *,
        health: RedisHealth | None = None,
        on_lost: LostCallback | None = None,
        acquire_timeout: float = 0.5,
    ) -> None:
        super().__init__()
        self.store = store
        self.identity = identity
        self.health = health or RedisHealth()
        self.on_lost = on_lost
        self.acquire_timeout = acquire_timeout
        self._held: dict[SlotLease, _Held] = {}
        self._draining_held: dict[SlotLease, _Held] = {}
        self._pending: set[SlotLease] = set()
        self._cancelled: set[SlotLease] = set()
        self._to_remove: dict[str, tuple[int, float]] = {}
        self._wake = asyncio.Event()
        self.last_renew: RenewOutcome | None = None
        self.lost_total = 0

    # -- ids ------------------------------------------------------------------
    def lease_id(self, lease: SlotLease) -> str:
        """The Redis member for ``lease``: this node instance and the slot serial."""
        return f"{self.identity.instance}:{lease.serial}"

    def confirmed(self, account_id: int | None = None) -> tuple[SlotLease, ...]:
        """Leases granted cluster-wide and not released (of one account, or all)."""
        return tuple(
            sorted(
                (lease for lease in self._held if account_id in (None, lease.account_id)),
                key=lambda lease: lease.serial,
            )
        )

    # -- the policy's interface ---------------------------------------------------
    async def confirm(self, lease: SlotLease, limit: int) -> bool:
        """Take the cluster-wide lease for a local ``lease`` before connecting.

        ``limit`` is the account's ``max_connections``. Returns False when the
        account is full across the cluster, when Redis does not answer within
        ``acquire_timeout`` or when ``lease`` was released meanwhile. Never
        raises for Redis trouble.
        """
        if lease in self._held:
            return True
        if lease not in self.leases(lease.account_id):
            return False  # released (or never taken) locally: nothing to confirm
        lease_id = self.lease_id(lease)
        self._pending.add(lease)
        settled = False
        granted = False
        try:
            async with asyncio.timeout(self.acquire_timeout):
                if any(aid == lease.account_id for aid, _t in self._to_remove.values()):
                    # a connection of ours that just closed must not count against us
                    await self.flush_releases()
                granted = await self.store.acquire(lease.account_id, lease_id, limit)
            settled = True
        except REDIS_ERRORS as exc:
            self.health.failed(exc)
        finally:
            self._pending.discard(lease)
            released = lease in self._cancelled
            self._cancelled.discard(lease)
            if not settled:
                # The script may have run before the error or the cancellation.
                self._queue_removal(lease.account_id, lease_id)
        if not settled:
            return False
        self.health.succeeded()
        if released:
            if granted:
                self._queue_removal(lease.account_id, lease_id)
            return False
        if granted:
            self._held[lease] = _Held(LeaseRef(lease.account_id, lease_id, limit), time.monotonic())
        return granted

    def release(self, lease: SlotLease) -> None:
        """Free the local slot (raises like ``AccountSlots.release``) and the
        cluster lease, if any; the Redis removal is sent by the release task."""
        super().release(lease)
        held = self._held.pop(lease, None)
        if held is not None:
            if lease in self._sockets.get(lease.account_id, ()):
                # its socket is still closing (draining): the provider still
                # counts it, so the cluster does too until :meth:`closed`
                self._draining_held[lease] = held
            else:
                self._queue_removal(lease.account_id, held.ref.lease_id)
        elif lease in self._pending:
            self._cancelled.add(lease)

    def closed(self, lease: SlotLease) -> None:
        """The socket of ``lease`` has closed: a draining cluster lease goes too."""
        super().closed(lease)
        held = self._draining_held.pop(lease, None)
        if held is not None:
            self._queue_removal(lease.account_id, held.ref.lease_id)

    # -- background work ----------------------------------------------------------
    def start(self, tasks: TaskOwner) -> None:
        """Start the renew and release tasks under ``tasks``."""
        tasks.spawn(self.run_renew(), "lease-renew")
        tasks.spawn(self.run_release(), "lease-release")

    def _queue_removal(self, account_id: int, lease_id: str) -> None:
        self._to_remove[lease_id] = (account_id, time.monotonic())
        self._wake.set()

    async def flush_releases(self) -> bool:
        """Send queued removals now; True when none is left."""
        if not self._to_remove:
            return True
        now = time.monotonic()
        # A lease nobody renews is gone from Redis one TTL after its last renew.
        for lease_id, (_account, queued) in list(self._to_remove.items()):
            if now - queued > self.store.ttl * 2:
                del self._to_remove[lease_id]
        batch = dict(self._to_remove)
        try:
            await self.store.release((aid, lid) for lid, (aid, _t) in batch.items())
        except REDIS_ERRORS as exc:
            self.health.failed(exc)
            return False
        for lease_id, entry in batch.items():
            if self._to_remove.get(lease_id) == entry:
                del self._to_remove[lease_id]
        self.health.succeeded()
        return not self._to_remove

    async def run_release(self) -> None:
        """Send removals as they are queued; retry each renew period while Redis is down."""
        while True:
            try:
                async with asyncio.timeout(self.store.ttl / 3):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush_releases()
            raise_if_cancelled()

    async def renew_once(self) -> RenewOutcome | None:
        """Extend every held lease in one round-trip; None when Redis is unreachable.

        Leases that no longer fit under their cap (they expired during an
        outage and others took the connections) are dropped from this node's
        books and passed to ``on_lost``; the caller must close them.
        """
        snapshot = {**self._held, **self._draining_held}
        if not snapshot:
            return RenewOutcome((), (), ())  # nothing to renew says nothing about Redis
        try:
            async with asyncio.timeout(max(self.store.ttl / 3, self.acquire_timeout)):
                outcome = await self.store.renew([held.ref for held in snapshot.values()])
        except REDIS_ERRORS as exc:
            self.health.failed(exc)
            return None
        self.last_renew = outcome
        lost_ids = set(outcome.lost)
        lost: list[SlotLease] = []
        for lease, held in snapshot.items():
            if lease in self._draining_held:
                if held.ref.lease_id in lost_ids:
                    del self._draining_held[lease]  # closing anyway
            elif lease not in self._held:
                # released while the renew was on its way: it may have been re-added
                self._queue_removal(lease.account_id, held.ref.lease_id)
            elif held.ref.lease_id in lost_ids:
                del self._held[lease]
                lost.append(lease)
        self.health.succeeded({"readded": len(outcome.readded), "lost": len(lost)})
        if lost:
            self.lost_total += len(lost)
            self.health.note(
                "warning",
                "provider connections over the account limit after a coordination outage; "
                "closing them",
                {"leases": [self.lease_id(lease) for lease in lost]},
            )
            if self.on_lost is not None:
                self.on_lost(tuple(sorted(lost, key=lambda x: x.serial)))
        return outcome

    async def run_renew(self) -> None:
        """Renew every third of the TTL until cancelled."""
        while True:
            await self.renew_once()
            raise_if_cancelled()
            await asyncio.sleep(self.store.ttl / 3)

    async def aclose(self) -> None:
        """Give every cluster lease back (on shutdown); local slots are untouched."""
        for lease, held in [*self._held.items(), *self._draining_held.items()]:
            self._queue_removal(lease.account_id, held.ref.lease_id)
        self._held.clear()
        self._draining_held.clear()
        await self.flush_releases()

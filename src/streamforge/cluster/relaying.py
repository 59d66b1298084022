"""The cluster side of one upstream per channel (see :mod:`streamforge.streaming.relay`).

:class:`ClusterChannels` is the session manager's
:class:`~streamforge.streaming.relay.ChannelCoordinator`: it claims channels
in :class:`~streamforge.cluster.owners.ChannelOwners`, names the owner to
relay from, signs relay URLs with the cluster secret and reads how many
connections of an account are still free across the cluster.

The relay secret is ``STREAMFORGE_CLUSTER_SECRET``, else derived from the
shared sealing key (every node has it). Without either, nodes do not relay:
each reads its own upstreams (still within the cluster-wide limits).
"""

from __future__ import annotations

from streamforge.cluster.leases import LeaseStore
from streamforge.cluster.owners import ChannelOwners
from streamforge.cluster.redisconn import REDIS_ERRORS, RedisHealth
from streamforge.cluster.slots import ClusterSlots
from streamforge.streaming.relay import relay_secret, signed_query

__all__ = ["ClusterChannels", "relay_secret"]


class ClusterChannels:
    """Channel ownership and relaying for this node's session manager."""

    def __init__(
        self,
        owners: ChannelOwners,
        leases: LeaseStore,
        slots: ClusterSlots,
        health: RedisHealth,
        *,
        relay_url: str,
        secret: bytes | None,
    ) -> None:
        self.owners = owners
        self.leases = leases
        self.slots = slots
        self.health = health
        self.own_url = relay_url.rstrip("/")
        self.secret = secret

    async def claim(self, channel_id: int) -> tuple[str, str] | None:
        if self.secret is None:
            return None
        try:
            claim = await self.owners.claim(channel_id, self.own_url)
        except REDIS_ERRORS as exc:
            self.health.failed(exc)
            return None
        self.health.succeeded()
        if claim.ours or claim.owner is None:
            return None
        return claim.owner.relay_url, claim.owner.node_id

    def owns(self, channel_id: int) -> bool:
        return channel_id in self.owners.owned

    async def release(self, channel_id: int) -> None:
        await self.owners.release(channel_id)

    def relay_url(self, owner_url: str, channel_id: int) -> str:
        if self.secret is None:
            raise RuntimeError("relaying needs a cluster secret")
        query = signed_query(self.secret, channel_id)
        return f"{owner_url.rstrip('/')}/internal/relay/{channel_id}?{query}"

    async def free_connections(self, account_id: int, limit: int) -> int:
        # Leases released here a moment ago must not count as held: send them first.
        if not await self.slots.flush_releases():
            return 0
        try:
            counts = await self.leases.counts([account_id])
        except REDIS_ERRORS as exc:
            self.health.failed(exc)
            return 0
        return max(0, limit - counts.get(account_id, 0))

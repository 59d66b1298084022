"""All cluster parts of one node, started and stopped together.

The runtime builds a :class:`Cluster` only when ``STREAMFORGE_REDIS_URL`` is
set (the settings then guarantee a PostgreSQL database)::

    cluster = await Cluster.start(settings, events=runtime.events, relay_url=url)
    manager = SessionManager(..., slots=cluster.slots)   # instead of AccountSlots()
    ...
    await cluster.aclose()

``start`` connects, registers the node (refusing a node id that another live
process uses) and spawns the heartbeat, lease renew/release, leader and owner
renew tasks under one :class:`~streamforge.tasks.TaskOwner`. ``aclose`` stops
them, gives back the leases, the owner records and the lead, deregisters the
node and closes the connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from streamforge.cluster.leader import LeaderLease
from streamforge.cluster.leases import LeaseHolder, LeaseStore
from streamforge.cluster.node import NodeIdentity, NodeInfo, NodeRegistry
from streamforge.cluster.owners import ChannelOwners
from streamforge.cluster.redisconn import (
    DEFAULT_PREFIX,
    EventSink,
    RedisHealth,
    connect,
    redact_url,
)
from streamforge.cluster.slots import ClusterSlots, LostCallback
from streamforge.errors import ConfigError
from streamforge.settings import Settings
from streamforge.tasks import TaskOwner


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What ``streamforge cluster status`` shows."""

    node: NodeIdentity
    redis_up: bool
    leader: str | None
    nodes: tuple[NodeInfo, ...]
    leases: dict[int, tuple[LeaseHolder, ...]]


class Cluster:
    """This node's membership of the cluster."""

    def __init__(
        self,
        redis: Redis,
        identity: NodeIdentity,
        *,
        ttl: float,
        relay_url: str | None = None,
        events: EventSink | None = None,
        prefix: str = DEFAULT_PREFIX,
        where: str = "Redis",
        on_lost_leases: LostCallback | None = None,
    ) -> None:
        self.redis = redis
        self.identity = identity
        self.health = RedisHealth(events, where)
        self.registry = NodeRegistry(
            redis, identity, ttl=ttl, relay_url=relay_url, prefix=prefix, health=self.health
        )
        self.leases = LeaseStore(redis, ttl=ttl, prefix=prefix)
        self.slots = ClusterSlots(self.leases, identity, health=self.health, on_lost=on_lost_leases)
        self.leader = LeaderLease(redis, identity, ttl=ttl, prefix=prefix, health=self.health)
        self.owners = ChannelOwners(redis, identity, ttl=ttl, prefix=prefix, health=self.health)
        self._tasks = TaskOwner("cluster")

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        events: EventSink | None = None,
        relay_url: str | None = None,
        on_lost_leases: LostCallback | None = None,
    ) -> Cluster:
        """Connect to ``settings.redis_url``, register this node and start the tasks."""
        if settings.redis_url is None:
            raise ConfigError("STREAMFORGE_REDIS_URL: not set; cluster mode is off")
        settings.ensure_data_dir()
        identity = NodeIdentity.create(settings.data_dir, settings.node_name)
        redis = connect(settings.redis_url)
        cluster = cls(
            redis,
            identity,
            ttl=settings.lease_ttl,
            relay_url=relay_url,
            events=events,
            where=redact_url(settings.redis_url),
            on_lost_leases=on_lost_leases,
        )
        await cluster.begin()
        return cluster

    async def begin(self) -> None:
        """Register the node and spawn the background tasks."""
        try:
            await self.registry.register()
        except BaseException:
            await self.redis.aclose()
            raise
        self._tasks.spawn(self.registry.run(), "heartbeat")
        self.slots.start(self._tasks)
        self._tasks.spawn(self.leader.run(), "leader")
        self.owners.start(self._tasks)

    async def status(self, account_ids: Iterable[int] | None = None) -> ClusterStatus:
        """Live nodes, the leader and the leases per account (raises if Redis is down)."""
        return ClusterStatus(
            node=self.identity,
            redis_up=self.health.up,
            leader=await self.leader.leader(),
            nodes=tuple(await self.registry.live_nodes()),
            leases=await self.leases.snapshot(account_ids),
        )

    async def aclose(self) -> None:
        """Stop the tasks, hand everything back and disconnect."""
        await self._tasks.close()
        await self.slots.aclose()
        await self.owners.release_all()
        await self.leader.release()
        await self.registry.deregister()
        await self.redis.aclose()

"""Which node owns a channel: the one that reads it from the provider.

In a cluster a channel is read upstream by one node only; the other nodes'
viewers are relayed from it. The owner record ``<prefix>owner:<channel id>``
holds JSON ``{"node", "instance", "relay_url"}`` with a TTL:

* :meth:`ChannelOwners.claim` takes it with ``SET NX PX`` — exactly one node
  wins — and otherwise returns the current owner, so the caller relays from
  ``relay_url`` instead of opening the provider;
* while the session lives, the renew task extends all of this node's
  records in one round-trip (compare-and-``PEXPIRE``, so only records that
  are still ours). A record that expired during a Redis outage is taken back
  when free; one that another node took meanwhile is reported lost;
* :meth:`ChannelOwners.release` deletes the record when the session ends
  (compare-and-delete); a node that dies loses its records within the TTL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from streamforge.cluster.node import NodeIdentity
from streamforge.cluster.redisconn import (
    DEFAULT_PREFIX,
    REDIS_ERRORS,
    RedisHealth,
    raise_if_cancelled,
)
from streamforge.tasks import TaskOwner

# KEYS owner records; ARGV[1] ttl ms, then our value per key. Returns lost indexes.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  local mine = ARGV[i + 1]
  local current = redis.call('GET', key)
  if current == mine then
    redis.call('PEXPIRE', key, ARGV[1])
  elseif not current then
    redis.call('SET', key, mine, 'PX', ARGV[1])
  else
    table.insert(lost, i)
  end
end
return lost
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class OwnerRecord:
    """Who reads a channel upstream, and where other nodes relay it from."""

    channel_id: int
    node_id: str
    instance: str
    relay_url: str

    def encode(self) -> str:
        return json.dumps(
            {"node": self.node_id, "instance": self.instance, "relay_url": self.relay_url},
            sort_keys=True,
        )

    @classmethod
    def decode(cls, channel_id: int, raw: str) -> OwnerRecord | None:
        try:
            data = json.loads(raw)
            return cls(channel_id, str(data["node"]), str(data["instance"]), str(data["relay_url"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Claim:
    """The result of :meth:`ChannelOwners.claim`: the owner, and whether it is us."""

    owner: OwnerRecord | None
    ours: bool


class ChannelOwners:
    """This node's channel ownerships and everyone's owner records."""

    def __init__(
        self,
        redis: Redis,
        identity: NodeIdentity,
        *,
        ttl: float,
        prefix: str = DEFAULT_PREFIX,
        health: RedisHealth | None = None,
        on_lost: Callable[[tuple[int, ...]], None] | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"owner TTL must be positive, got {ttl}")
        self._redis = redis
        self.identity = identity
        self.ttl = ttl
        self._prefix = prefix
        self._health = health or RedisHealth()
        self.on_lost = on_lost
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._owned: dict[int, OwnerRecord] = {}

    @property
    def _px(self) -> int:
        return max(1, round(self.ttl * 1000))

    def key(self, channel_id: int) -> str:
        return f"{self._prefix}owner:{channel_id}"

    @property
    def owned(self) -> tuple[int, ...]:
        """Channels this node owns, as far as it knows."""
        return tuple(sorted(self._owned))

    async def claim(self, channel_id: int, relay_url: str) -> Claim:
        """Become the owner of ``channel_id`` unless another node is.

        Raises the Redis error when Redis is unreachable (the caller decides:
        without coordination a session should not open the provider).
        """
        mine = OwnerRecord(channel_id, self.identity.node_id, self.identity.instance, relay_url)
        key = self.key(channel_id)
        if await self._redis.set(key, mine.encode(), nx=True, px=self._px):
            self._owned[channel_id] = mine
            return Claim(mine, True)
        current = await self.owner(channel_id)
        if current is not None and current.instance == self.identity.instance:
            self._owned[channel_id] = current
            return Claim(current, True)
        return Claim(current, False)

    async def owner(self, channel_id: int) -> OwnerRecord | None:
        """The current owner of ``channel_id``, or None."""
        raw = await self._redis.get(self.key(channel_id))
        return None if raw is None else OwnerRecord.decode(channel_id, str(raw))

    async def owners(self, channel_ids: Iterable[int]) -> dict[int, OwnerRecord]:
        """Owner records of several channels in one round-trip."""
        chosen = sorted(set(channel_ids))
        if not chosen:
            return {}
        values = await self._redis.mget([self.key(cid) for cid in chosen])
        found: dict[int, OwnerRecord] = {}
        for channel_id, raw in zip(chosen, values, strict=True):
            record = None if raw is None else OwnerRecord.decode(channel_id, str(raw))
            if record is not None:
                found[channel_id] = record
        return found

    async def renew_once(self) -> tuple[int, ...] | None:
        """Extend every record this node owns; returns the channels lost to
        another node (also passed to ``on_lost``), or None if Redis is down."""
        snapshot = dict(self._owned)
        if not snapshot:
            return ()
        ids = list(snapshot)
        try:
            lost_at = await self._renew(
                keys=[self.key(cid) for cid in ids],
                args=[self._px, *(snapshot[cid].encode() for cid in ids)],
            )
        except REDIS_ERRORS as exc:
            self._health.failed(exc)
            return None
        self._health.succeeded()
        lost = tuple(ids[int(index) - 1] for index in lost_at)
        for channel_id in lost:
            if self._owned.get(channel_id) == snapshot[channel_id]:
                del self._owned[channel_id]
        for channel_id, record in snapshot.items():
            if channel_id not in self._owned and channel_id not in lost:
                # released while the renew was on its way: it may have been set again
                await self._drop(channel_id, record)
        if lost and self.on_lost is not None:
            self.on_lost(lost)
        return lost

    async def run(self) -> None:
        """Renew every third of the TTL until cancelled."""
        while True:
            await self.renew_once()
            raise_if_cancelled()
            await asyncio.sleep(self.ttl / 3)

    def start(self, tasks: TaskOwner) -> None:
        tasks.spawn(self.run(), "owner-renew")

    async def release(self, channel_id: int) -> None:
        """Stop owning ``channel_id`` (the session ended); silent if Redis is gone."""
        record = self._owned.pop(channel_id, None)
        if record is not None:
            await self._drop(channel_id, record)

    async def _drop(self, channel_id: int, record: OwnerRecord) -> None:
        try:
            await self._release(keys=[self.key(channel_id)], args=[record.encode()])
        except REDIS_ERRORS as exc:
            self._health.failed(exc)

    async def release_all(self) -> None:
        for channel_id in list(self._owned):
            await self.release(channel_id)

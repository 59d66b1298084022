"""Account connection leases in Redis: never more than ``max_connections``.

Each provider account has one sorted set ``<prefix>lease:<account id>``.
Its members are lease ids (``<node id>.<boot>:<serial>``, see
:mod:`streamforge.cluster.node`), each scored by the millisecond at which it
expires on the Redis server's clock. Every operation is one Lua script, so it
runs atomically inside Redis:

* **acquire** drops the expired members, counts the rest and adds the new id
  only if the count is below the cap — two nodes can never both take the
  last connection;
* **renew** extends all of a node's leases in one round-trip. A lease that
  is gone (it expired while Redis was unreachable, or Redis restarted empty)
  is added back *if the cap still allows it*; otherwise it is reported as
  lost, and the node must close that connection;
* **release** removes ids (one pipeline for many).

The set key itself expires together with its last member, so an account
nobody streams leaves nothing behind. A node that dies stops renewing and its
leases drop out of every count within one TTL.

The cap travels with each call (it is a property of the account that may
change); a lower cap never evicts live leases, it only refuses new ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from streamforge.cluster.node import node_of
from streamforge.cluster.redisconn import DEFAULT_PREFIX

# KEYS[1] lease set; ARGV lease id, cap, ttl ms. Returns 1 if held now, else 0.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

# KEYS one lease set per lease (repeats allowed); ARGV[1] ttl ms, then pairs of
# (lease id, cap). Returns {re-added ids, lost ids}; the others were extended.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local readded, lost = {}, {}
local swept = {}
for i, key in ipairs(KEYS) do
  local id, cap = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  if not swept[key] then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    swept[key] = true
  end
  local held = redis.call('ZSCORE', key, id)
  if held or redis.call('ZCARD', key) < cap then
    redis.call('ZADD', key, now + ttl, id)
    redis.call('PEXPIRE', key, ttl)
    if not held then
      table.insert(readded, id)
    end
  else
    table.insert(lost, id)
  end
end
return {readded, lost}
"""

# KEYS lease sets; returns {server ms, then per key a flat member/score list}.
_SNAPSHOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
for _, key in ipairs(KEYS) do
  table.insert(out, redis.call('ZRANGE', key, '(' .. now, '+inf', 'BYSCORE', 'WITHSCORES'))
end
return out
"""


@dataclass(frozen=True, slots=True)
class LeaseRef:
    """One lease as a node knows it: the account, its id, the cap it was taken under."""

    account_id: int
    lease_id: str
    cap: int


@dataclass(frozen=True, slots=True)
class RenewOutcome:
    """What one renew did: ids extended, ids added back, ids lost (over the cap)."""

    renewed: tuple[str, ...]
    readded: tuple[str, ...]
    lost: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """One live lease in a :meth:`LeaseStore.snapshot`."""

    lease_id: str
    node_id: str
    expires_in: float


class LeaseStore:
    """The Redis side of account leases. Stateless: a node's own bookkeeping is
    :class:`streamforge.cluster.slots.ClusterSlots`. Redis errors propagate."""

    def __init__(self, redis: Redis, *, ttl: float, prefix: str = DEFAULT_PREFIX) -> None:
        if ttl <= 0:
            raise ValueError(f"lease TTL must be positive, got {ttl}")
        self._redis = redis
        self.ttl = ttl
        self._prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._snapshot = redis.register_script(_SNAPSHOT)

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    def key(self, account_id: int) -> str:
        return f"{self._prefix}lease:{account_id}"

    async def acquire(self, account_id: int, lease_id: str, cap: int) -> bool:
        """Take one connection of ``account_id`` if fewer than ``cap`` are leased.

        Taking a lease id that is already held just extends it.
        """
        if cap < 1:
            raise ValueError(f"connection limit must be at least 1, got {cap}")
        granted = await self._acquire(
            keys=[self.key(account_id)], args=[lease_id, cap, self.ttl_ms]
        )
        return int(granted) == 1

    async def renew(self, leases: Sequence[LeaseRef]) -> RenewOutcome:
        """Extend ``leases`` by one TTL in one round-trip (re-adding lost ones within the cap)."""
        if not leases:
            return RenewOutcome((), (), ())
        args: list[str | int] = [self.ttl_ms]
        for lease in leases:
            args += [lease.lease_id, lease.cap]
        readded, lost = await self._renew(
            keys=[self.key(lease.account_id) for lease in leases], args=args
        )
        back, gone = set(readded), set(lost)
        renewed = tuple(lease.lease_id for lease in leases if lease.lease_id not in back | gone)
        return RenewOutcome(renewed, tuple(readded), tuple(lost))

    async def release(self, leases: Iterable[tuple[int, str]]) -> None:
        """Remove ``(account id, lease id)`` pairs; ids not held are ignored."""
        by_account: dict[int, list[str]] = {}
        for account_id, lease_id in leases:
            by_account.setdefault(account_id, []).append(lease_id)
        if not by_account:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for account_id, ids in by_account.items():
                pipe.zrem(self.key(account_id), *ids)
            await pipe.execute()

    async def account_ids(self) -> list[int]:
        """Accounts that have at least one lease set in Redis."""
        found: set[int] = set()
        head = f"{self._prefix}lease:"
        async for key in self._redis.scan_iter(f"{head}*"):
            tail = str(key)[len(head) :]
            if tail.isdigit():
                found.add(int(tail))
        return sorted(found)

    async def snapshot(
        self, account_ids: Iterable[int] | None = None
    ) -> dict[int, tuple[LeaseHolder, ...]]:
        """Live leases per account (all accounts with leases when not given),
        read atomically on the Redis clock; holders soonest-expiring first."""
        chosen = sorted(set(account_ids)) if account_ids is not None else await self.account_ids()
        if not chosen:
            return {}
        reply = await self._snapshot(keys=[self.key(aid) for aid in chosen], args=[])
        now = int(reply[0])
        result: dict[int, tuple[LeaseHolder, ...]] = {}
        for account_id, flat in zip(chosen, reply[1:], strict=True):
            holders = tuple(
                LeaseHolder(str(member), node_of(str(member)), (int(score) - now) / 1000)
                for member, score in zip(flat[::2], flat[1::2], strict=True)
            )
            result[account_id] = holders
        return result

    async def counts(self, account_ids: Iterable[int] | None = None) -> dict[int, int]:
        """``{account id: live leases}`` across the cluster."""
        return {aid: len(held) for aid, held in (await self.snapshot(account_ids)).items()}

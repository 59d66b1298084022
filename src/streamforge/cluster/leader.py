"""One leader among the nodes: a Redis key taken with ``SET NX PX``.

The key ``<prefix>leader:<role>`` holds the leader's instance id
(``<node id>.<boot>``). Every node runs :meth:`LeaderLease.run`: the leader
extends the key — through a compare-and-``PEXPIRE`` script, so only while it
still holds its own value — and the others try ``SET NX`` at the same
period. On shutdown the leader deletes the key (compare-and-delete) so that
another node takes over at its next try.

Timing, with ``ttl`` the lease TTL: the key lives ``2/3 · ttl`` after each
renew and every node acts every ``ttl/6``. A leader that dies (or is cut off
from Redis) is therefore replaced within ``2/3 · ttl + ttl/6 < ttl``.

:attr:`LeaderLease.is_leader` is conservative: it turns False as soon as the
key *may* have expired, counted from when the last successful renew was
*sent* (the server cannot have set an earlier expiry), minus a small margin
for clock-rate drift. So two nodes never both believe they lead, as long as
their monotonic clocks run at roughly the same rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis

from streamforge.cluster.node import NodeIdentity, node_of
from streamforge.cluster.redisconn import (
    DEFAULT_PREFIX,
    REDIS_ERRORS,
    RedisHealth,
    raise_if_cancelled,
)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_DRIFT = 0.05


class LeaderLease:
    """Contend for, hold and give back the leadership of ``role``."""

    def __init__(
        self,
        redis: Redis,
        identity: NodeIdentity,
        *,
        ttl: float,
        role: str = "leader",
        prefix: str = DEFAULT_PREFIX,
        health: RedisHealth | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"leader TTL must be positive, got {ttl}")
        self._redis = redis
        self.identity = identity
        self.ttl = ttl
        self.key = f"{prefix}leader:{role}"
        self._health = health or RedisHealth()
        self.on_change = on_change
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._valid_until = 0.0
        self._was_leader = False

    @property
    def key_ttl(self) -> float:
        """Seconds the key lives after each take or renew."""
        return self.ttl * 2 / 3

    @property
    def period(self) -> float:
        """Seconds between two tries (leader renews, others try to take over)."""
        return self.ttl / 6

    @property
    def is_leader(self) -> bool:
        """Whether this node holds the lead right now (conservatively)."""
        return time.monotonic() < self._valid_until

    def _notify(self) -> None:
        now = self.is_leader
        if now != self._was_leader:
            self._was_leader = now
            if self.on_change is not None:
                self.on_change(now)

    async def step(self) -> bool:
        """One try: renew if we lead, otherwise take the key if it is free."""
        px = max(1, round(self.key_ttl * 1000))
        sent = time.monotonic()
        try:
            if self._valid_until > 0 and int(
                await self._renew(keys=[self.key], args=[self.identity.instance, px])
            ):
                held = True
            else:
                held = bool(await self._redis.set(self.key, self.identity.instance, nx=True, px=px))
        except REDIS_ERRORS as exc:
            self._health.failed(exc)
            self._notify()
            return self.is_leader
        self._health.succeeded()
        self._valid_until = sent + self.key_ttl * (1 - _DRIFT) if held else 0.0
        self._notify()
        return self.is_leader

    async def run(self) -> None:
        """Contend and hold until cancelled (then call :meth:`release`)."""
        while True:
            await self.step()
            raise_if_cancelled()
            await asyncio.sleep(self.period)

    async def release(self) -> None:
        """Give the lead away now if we hold it; silent when Redis is gone."""
        was = self._valid_until > 0
        self._valid_until = 0.0
        self._notify()
        if not was:
            return
        try:
            await self._release(keys=[self.key], args=[self.identity.instance])
        except REDIS_ERRORS as exc:
            self._health.failed(exc)

    async def leader(self) -> str | None:
        """The node id of the current leader (any node's view), or None."""
        value = await self._redis.get(self.key)
        return None if value is None else node_of(str(value))

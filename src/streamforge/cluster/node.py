"""A node's identity and the registry of live nodes.

Identity: the node id is 16 hex digits generated once and kept in the file
``node-id`` in the data dir (created ``0600``, like everything there). It is
per node on purpose — the database's ``app_state`` is shared by all nodes.
Each start of the process also draws a fresh *boot* token; together they form
the :attr:`NodeIdentity.instance`, which is what lease ids, the leader key
and owner records carry. A node that crashes and restarts at once is then a
new instance, and the leases of its previous life cannot be mistaken for its
own: they simply expire.

Two processes started on copies of the same data dir would share a node id;
:meth:`NodeRegistry.register` notices a live record of another instance and
refuses to start (each node needs its own data dir).

Registry: one key ``<prefix>node:<node id>`` per live node, holding a JSON
record (id, name, instance, relay URL, start time) and a TTL that the
heartbeat renews — only while the key still holds this instance's record.
A node that dies disappears from :meth:`NodeRegistry.live_nodes` within the
TTL.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from streamforge.cluster.redisconn import (
    DEFAULT_PREFIX,
    REDIS_ERRORS,
    RedisHealth,
    raise_if_cancelled,
)
from streamforge.errors import ConfigError
from streamforge.filemodes import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, tighten

NODE_ID_FILE = "node-id"
_NODE_ID = re.compile(r"^[0-9a-f]{16}$")


def load_node_id(data_dir: Path) -> str:
    """The node id kept in ``data_dir/node-id``; generated and stored on first use."""
    path = data_dir / NODE_ID_FILE
    for _attempt in range(2):
        try:
            tighten(path)
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            fresh = secrets.token_hex(8)
            data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            except FileExistsError:
                continue  # another process created it meanwhile: read theirs
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(fresh + "\n")
            return fresh
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"node id file {path} cannot be read ({exc})") from None
        if not _NODE_ID.match(text):
            raise ConfigError(f"node id file {path} is corrupt (expected 16 hex digits)")
        return text
    raise ConfigError(f"node id file {path} cannot be created")


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this process is in the cluster."""

    node_id: str
    name: str
    boot: str

    @classmethod
    def create(cls, data_dir: Path, name: str | None = None) -> NodeIdentity:
        """The identity of this process: stored node id, ``name`` (default: hostname)."""
        return cls(load_node_id(data_dir), name or socket.gethostname(), secrets.token_hex(4))

    @property
    def instance(self) -> str:
        """``<node id>.<boot>``: this node in this run of the process."""
        return f"{self.node_id}.{self.boot}"


def node_of(instance_or_lease: str) -> str:
    """The node id at the front of an instance or lease id."""
    return instance_or_lease.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One live node as the registry shows it."""

    node_id: str
    name: str
    instance: str
    relay_url: str | None
    started_at: float
    expires_in: float

    @classmethod
    def parse(cls, raw: str, ttl_ms: int) -> NodeInfo | None:
        try:
            data = json.loads(raw)
            return cls(
                node_id=str(data["id"]),
                name=str(data["name"]),
                instance=str(data["instance"]),
                relay_url=None if data.get("relay_url") is None else str(data["relay_url"]),
                started_at=float(data["started_at"]),
                expires_in=max(ttl_ms, 0) / 1000,
            )
        except (ValueError, KeyError, TypeError):
            return None


class NodeIdInUseError(ConfigError):
    """Another live process runs with this node id (a copied data dir)."""


_HEARTBEAT = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""

_DEREGISTER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class NodeRegistry:
    """This node's heartbeat record, and the list of live nodes."""

    def __init__(
        self,
        redis: Redis,
        identity: NodeIdentity,
        *,
        ttl: float,
        relay_url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        health: RedisHealth | None = None,
    ) -> None:
        self._redis = redis
        self.identity = identity
        self.ttl = ttl
        self._prefix = prefix
        self._health = health or RedisHealth()
        self._record = json.dumps(
            {
                "id": identity.node_id,
                "name": identity.name,
                "instance": identity.instance,
                "relay_url": relay_url,
                "started_at": round(time.time(), 3),
            },
            sort_keys=True,
        )
        self._key = f"{prefix}node:{identity.node_id}"
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._deregister = redis.register_script(_DEREGISTER)
        self.conflict: NodeInfo | None = None

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    async def register(self) -> None:
        """Publish this node's record.

        If another instance's record holds the key, wait up to one TTL for it
        to expire (the previous run of this node, crashed); if it is renewed
        meanwhile, raise :class:`NodeIdInUseError`. Redis being unreachable
        raises its error: a node does not start in cluster mode without it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ttl * 1.5
        while True:
            if await self._redis.set(self._key, self._record, nx=True, px=self._ttl_ms):
                return
            raw = await self._redis.get(self._key)
            if raw == self._record:
                return
            other = NodeInfo.parse(str(raw), self._ttl_ms) if raw is not None else None
            if loop.time() > deadline:
                instance = other.instance if other is not None else "?"
                raise NodeIdInUseError(
                    f"node id {self.identity.node_id} is in use by another live node "
                    f"({instance}); give each node its own STREAMFORGE_DATA_DIR"
                )
            await asyncio.sleep(min(0.25, self.ttl / 8))

    async def heartbeat(self) -> bool:
        """Renew this node's record once; False when Redis is unreachable or the
        key belongs to another instance (then :attr:`conflict` says whose)."""
        try:
            outcome = await self._heartbeat(keys=[self._key], args=[self._record, self._ttl_ms])
            if int(outcome) == 0:
                raw = await self._redis.get(self._key)
                self.conflict = NodeInfo.parse(str(raw), self._ttl_ms) if raw else None
                return False
        except REDIS_ERRORS as exc:
            self._health.failed(exc)
            return False
        self.conflict = None
        self._health.succeeded()
        return True

    async def run(self) -> None:
        """Heartbeat every third of the TTL until cancelled."""
        while True:
            await self.heartbeat()
            raise_if_cancelled()
            await asyncio.sleep(self.ttl / 3)

    async def deregister(self) -> None:
        """Remove this node's record (on shutdown); silent if Redis is gone."""
        try:
            await self._deregister(keys=[self._key], args=[self._record])
        except REDIS_ERRORS as exc:
            self._health.failed(exc)

    async def live_nodes(self) -> list[NodeInfo]:
        """Every node whose record has not expired, by name."""
        keys: list[str] = [key async for key in self._redis.scan_iter(f"{self._prefix}node:*")]
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            replies = await pipe.execute()
        nodes: list[NodeInfo] = []
        for raw, pttl in zip(replies[::2], replies[1::2], strict=True):
            if raw is None:
                continue
            info = NodeInfo.parse(str(raw), int(pttl))
            if info is not None:
                nodes.append(info)
        return sorted(nodes, key=lambda node: (node.name, node.node_id))

"""Account connection leases on a real Redis: the cap holds across nodes, always."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from streamforge.cluster.leases import LeaseRef, LeaseStore
from streamforge.cluster.node import NodeIdentity
from streamforge.cluster.redisconn import RedisHealth, connect
from streamforge.cluster.slots import ClusterSlots
from streamforge.streaming.slots import SlotError, SlotLease
from streamforge.tasks import TaskOwner
from tests.redisfix import RedisServer, wait_until

TTL = 1.0


class Events:
    """Collects cluster events the way the event log receives them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, Any]]] = []

    def record(
        self, level: str, category: str, message: str, details: Any = None
    ) -> tuple[str, str]:
        self.seen.append((level, category, message, dict(details or {})))
        return level, message

    def levels(self) -> list[str]:
        return [level for level, *_ in self.seen]


@pytest.fixture
async def redis(redis_srv: RedisServer) -> AsyncIterator[Redis]:
    client = connect(redis_srv.url, timeout=0.5)
    yield client
    await client.aclose()


class Node:
    """One simulated StreamForge node: its own Redis client, slots and tasks."""

    def __init__(self, url: str, root: Path, name: str, events: Events | None = None) -> None:
        self.redis = connect(url, timeout=0.5)
        self.identity = NodeIdentity.create(root / name, name)
        self.health = RedisHealth(events)
        self.lost: list[SlotLease] = []
        self.slots = ClusterSlots(
            LeaseStore(self.redis, ttl=TTL),
            self.identity,
            health=self.health,
            on_lost=self.lost.extend,
        )
        self.tasks = TaskOwner(f"node-{name}")

    async def take(self, account_id: int, limit: int) -> SlotLease | None:
        """What the session does: local slot, then the cluster lease before connecting."""
        lease = self.slots.try_acquire(account_id, limit, holder=self.identity.name)
        if lease is None:
            return None
        if await self.slots.confirm(lease, limit):
            return lease
        self.slots.release(lease)  # the policy's close path after ACCOUNT_LIMIT
        return None

    async def stop(self) -> None:
        await self.tasks.close()
        await self.redis.aclose()


@pytest.fixture
async def make_node(redis_srv: RedisServer, tmp_path: Path) -> AsyncIterator[Callable[..., Node]]:
    made: list[Node] = []

    def make(name: str, events: Events | None = None) -> Node:
        node = Node(redis_srv.url, tmp_path, name, events)
        made.append(node)
        return node

    yield make
    for node in made:
        await node.stop()


async def test_acquire_respects_the_cap_and_release_frees(redis: Redis) -> None:
    store = LeaseStore(redis, ttl=TTL)
    assert await store.acquire(7, "a.1:1", 2)
    assert await store.acquire(7, "b.1:1", 2)
    assert not await store.acquire(7, "c.1:1", 2)
    assert await store.acquire(7, "a.1:1", 2)  # re-taking a held lease only extends it
    assert await store.counts([7]) == {7: 2}
    await store.release([(7, "a.1:1")])
    assert await store.acquire(7, "c.1:1", 2)
    snap = await store.snapshot()
    assert sorted(h.node_id for h in snap[7]) == ["b", "c"]
    assert all(0 < h.expires_in <= TTL for h in snap[7])
    with pytest.raises(ValueError, match="at least 1"):
        await store.acquire(7, "d.1:1", 0)


async def test_cap_never_exceeded_under_concurrent_acquires(
    make_node: Callable[..., Node],
) -> None:
    nodes = [make_node(f"n{i}") for i in range(20)]
    caps = {account: account for account in range(1, 6)}  # account N allows N connections
    granted = await asyncio.gather(
        *(node.take(account, cap) for node in nodes for account, cap in caps.items() for _ in "xy")
    )
    counts = await nodes[0].slots.store.counts(caps)
    assert counts == caps  # every account filled exactly to its cap, never beyond
    per_account = {a: sum(1 for n in nodes for _ in n.slots.confirmed(a)) for a in caps}
    assert per_account == caps
    assert sum(lease is not None for lease in granted) == sum(caps.values())

    # Churn: random releases and re-acquires from all nodes at once, checked after each wave.
    rng = random.Random(7)
    for _wave in range(5):
        for node in nodes:
            for lease in node.slots.confirmed():
                if rng.random() < 0.5:
                    node.slots.release(lease)
        await asyncio.gather(*(n.slots.flush_releases() for n in nodes))
        await asyncio.gather(
            *(node.take(account, cap) for node in nodes for account, cap in caps.items())
        )
        counts = await nodes[0].slots.store.counts(caps)
        assert all(counts.get(a, 0) <= cap for a, cap in caps.items())
        local = {a: sum(len(n.slots.confirmed(a)) for n in nodes) for a in caps}
        assert all(local[a] <= cap for a, cap in caps.items())
        assert counts == caps  # enough demand: full again after each wave


async def test_a_dead_nodes_leases_expire_within_the_ttl(
    make_node: Callable[..., Node],
) -> None:
    alive, dead = make_node("alive"), make_node("dead")
    alive.slots.start(alive.tasks)  # only the live node renews
    assert await alive.take(1, 2) is not None
    assert await dead.take(1, 2) is not None
    assert await alive.take(1, 2) is None  # full

    loop = asyncio.get_running_loop()
    started = loop.time()

    async def dead_one_gone() -> bool:
        holders = (await alive.slots.store.snapshot([1]))[1]
        return {h.node_id for h in holders} == {alive.identity.node_id}

    await wait_until(dead_one_gone, within=5)
    assert loop.time() - started <= TTL + 0.5
    # ...while renewing kept the live node's lease for several TTLs.
    await asyncio.sleep(0)  # let the renew task run at least once more

    async def renewed_past_ttl() -> bool:
        return loop.time() - started > 2.5 * TTL

    await wait_until(renewed_past_ttl, within=5)
    assert await alive.slots.store.counts([1]) == {1: 1}
    assert alive.slots.last_renew is not None
    assert alive.slots.last_renew.lost == ()
    assert await alive.take(1, 2) is not None  # the dead node's connection is free again


async def test_release_goes_out_at_once_and_twice_is_an_error(
    make_node: Callable[..., Node],
) -> None:
    node, other = make_node("a"), make_node("b")
    node.slots.start(node.tasks)
    lease = await node.take(3, 1)
    assert lease is not None
    assert await other.take(3, 1) is None
    node.slots.release(lease)
    with pytest.raises(SlotError):
        node.slots.release(lease)

    async def other_gets_it() -> bool:
        return await other.take(3, 1) is not None

    took = await wait_until(other_gets_it, within=2)
    assert took < TTL / 2  # freed by the release task, not by expiry


async def test_released_while_confirming_is_not_kept(make_node: Callable[..., Node]) -> None:
    node = make_node("a")
    lease = node.slots.try_acquire(4, 1)
    assert lease is not None
    confirming = node.tasks.spawn(node.slots.confirm(lease, 1), "confirm")
    node.slots.release(lease)  # the session ended before Redis answered
    assert await confirming is False
    assert node.slots.confirmed() == ()
    await node.slots.flush_releases()
    assert await node.slots.store.counts([4]) == {4: 0}


async def test_renew_reconciles_after_redis_loses_everything(
    make_node: Callable[..., Node], redis: Redis
) -> None:
    a, b = make_node("a"), make_node("b")
    la = await a.take(5, 2)
    lb = await b.take(5, 2)
    assert la is not None
    assert lb is not None
    await redis.flushall()  # a restart without persistence
    # While the leases were gone, a third node took one of the two connections.
    c = make_node("c")
    assert await c.take(5, 2) is not None
    first = await a.slots.renew_once()
    second = await b.slots.renew_once()
    assert first is not None
    assert second is not None
    assert first.readded == (a.slots.lease_id(la),)
    assert second.lost == (b.slots.lease_id(lb),)
    assert b.lost == [lb]  # b must close that connection
    assert b.slots.confirmed() == ()
    assert await redis.zcard("streamforge:lease:5") == 2
    b.slots.release(lb)  # the normal close path still works for a lost lease


async def test_redis_killed_and_restarted_mid_run(
    make_node: Callable[..., Node], redis_srv: RedisServer
) -> None:
    events = Events()
    caps = {1: 2, 2: 3}
    nodes = [make_node(f"n{i}", events) for i in range(6)]
    for node in nodes:
        node.slots.start(node.tasks)
    before = await asyncio.gather(*(n.take(a, c) for n in nodes for a, c in caps.items()))
    held_before = sum(lease is not None for lease in before)
    assert held_before == sum(caps.values())

    redis_srv.stop()
    refused = await asyncio.gather(*(n.take(a, c) for n in nodes for a, c in caps.items()))
    assert refused == [None] * len(refused)  # nothing new is opened without a lease
    assert all(n.slots.try_acquire(1, 99) is not None for n in nodes[:1])  # local stays usable

    async def all_noticed() -> bool:
        return all(not n.health.up for n in nodes)

    await wait_until(all_noticed, within=5)
    warnings = [e for e in events.seen if e[0] == "warning"]
    assert len(warnings) == len(nodes)  # one per node and outage, however many failures
    assert all(e[1] == "cluster" for e in warnings)

    # Down for longer than the TTL: every lease is gone when Redis comes back empty.
    await asyncio.sleep(TTL * 1.2)
    redis_srv.start()

    async def reconciled() -> bool:
        counts = await nodes[0].slots.store.counts(caps)
        return all(n.health.up for n in nodes) and counts == caps

    await wait_until(reconciled, within=5)
    assert events.levels().count("info") == len(nodes)
    counts = await nodes[0].slots.store.counts(caps)
    local = {a: sum(len(n.slots.confirmed(a)) for n in nodes) for a in caps}
    assert local == caps
    assert counts == caps
    assert all(n.lost == [] for n in nodes)  # nobody took them meanwhile: all re-added
    assert await nodes[0].take(1, 2) is None  # and the cap still holds


async def test_renew_is_one_round_trip_for_many_leases(redis: Redis) -> None:
    store = LeaseStore(redis, ttl=TTL)
    refs = [LeaseRef(account % 7, f"n.1:{account}", 100) for account in range(300)]
    for ref in refs:
        assert await store.acquire(ref.account_id, ref.lease_id, ref.cap)
    await store.renew(refs[:1])  # load the script once

    async def calls() -> dict[str, int]:
        stats = await redis.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    before = await calls()
    outcome = await store.renew(refs)
    after = await calls()
    assert len(outcome.renewed) == 300
    assert outcome.readded == outcome.lost == ()
    client_commands = {"evalsha", "eval", "script", "zadd", "info"}
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in client_commands}
    assert delta["evalsha"] == 1  # one request for all 300 leases ...
    assert delta["eval"] == delta["script"] == 0
    assert delta["zadd"] == 300  # ... whose script extended each of them


async def test_a_draining_connection_keeps_its_cluster_lease_until_its_socket_closes(
    make_node: Callable[..., Node],
) -> None:
    """The provider still counts a closing socket: so does the cluster, and the
    node's own next connection of the account waits for it instead of overlapping."""
    node, other = make_node("a"), make_node("b")
    node.slots.start(node.tasks)
    lease = await node.take(4, 1)
    assert lease is not None
    await node.slots.connect(lease, 1)  # the socket opened
    node.slots.release(lease)  # the policy closed the attempt; the socket is draining
    assert node.slots.draining(4) == 1
    await node.slots.renew_once()  # renewed while it drains
    assert await node.slots.store.counts([4]) == {4: 1}
    assert await other.take(4, 1) is None
    node.slots.closed(lease)  # the socket is gone: so is the lease, at once
    again = node.slots.try_acquire(4, 1, holder="a")
    assert again is not None
    assert await node.slots.confirm(again, 1)  # pending removal sent before acquiring
    assert await other.take(4, 1) is None

"""Leader election and channel owner records on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from streamforge.cluster.leader import LeaderLease
from streamforge.cluster.node import NodeIdentity
from streamforge.cluster.owners import ChannelOwners
from streamforge.cluster.redisconn import connect
from streamforge.tasks import TaskOwner
from tests.redisfix import RedisServer, wait_until

TTL = 1.0


@pytest.fixture
async def clients(redis_srv: RedisServer) -> AsyncIterator[list[Redis]]:
    made = [connect(redis_srv.url, timeout=0.5) for _ in range(5)]
    yield made
    for client in made:
        await client.aclose()


def identities(root: Path, count: int) -> list[NodeIdentity]:
    return [NodeIdentity.create(root / f"n{i}", f"n{i}") for i in range(count)]


async def test_exactly_one_leader_and_failover_within_the_ttl(
    clients: list[Redis], tmp_path: Path
) -> None:
    changes: list[tuple[str, bool]] = []

    def watcher(name: str) -> Callable[[bool], None]:
        return lambda now: changes.append((name, now))

    ttl = 2.0  # a dead leader is replaced within 5/6 of it; the rest is scheduling slack
    contenders = [
        LeaderLease(client, ident, ttl=ttl, on_change=watcher(ident.name))
        for client, ident in zip(clients, identities(tmp_path, 5), strict=True)
    ]
    tasks = {c.identity.name: TaskOwner(c.identity.name) for c in contenders}
    for contender in contenders:
        tasks[contender.identity.name].spawn(contender.run(), "leader")

    def leaders() -> list[LeaderLease]:
        return [c for c in contenders if c.is_leader]

    async def one_leader() -> bool:
        return len(leaders()) == 1

    await wait_until(one_leader, within=5)
    # Stays exactly one over several renew periods.
    for _ in range(20):
        assert len(leaders()) <= 1
        await asyncio.sleep(ttl / 20)
    first = leaders()[0]
    assert await first.leader() == first.identity.node_id

    # The leader stops renewing (its process hangs or dies): replaced within the TTL.
    loop = asyncio.get_running_loop()
    await tasks[first.identity.name].close()
    stopped = loop.time()

    async def someone_else_leads() -> bool:
        assert not (first.is_leader and len(leaders()) > 1)
        return any(c.is_leader for c in contenders if c is not first)

    await wait_until(someone_else_leads, within=5, interval=0.01)
    assert loop.time() - stopped <= ttl
    assert not first.is_leader
    second = leaders()[0]
    assert (second.identity.name, True) in changes

    # A clean shutdown hands over at the next try, long before the key would expire.
    await tasks[second.identity.name].close()
    await second.release()
    released = loop.time()

    async def a_third_leads() -> bool:
        return any(c.is_leader for c in contenders if c not in (first, second))

    await wait_until(a_third_leads, within=5, interval=0.01)
    assert loop.time() - released <= ttl / 6 + 0.3
    for owner in tasks.values():
        await owner.close()


async def test_leader_that_loses_redis_steps_down(
    clients: list[Redis], tmp_path: Path, redis_srv: RedisServer
) -> None:
    lead = LeaderLease(clients[0], identities(tmp_path, 1)[0], ttl=TTL)
    assert await lead.step()
    redis_srv.stop()
    assert await lead.step()  # still within the key's life: still the leader

    async def stepped_down() -> bool:
        return not await lead.step()

    took = await wait_until(stepped_down, within=5)
    assert took <= lead.key_ttl
    redis_srv.start()

    async def leads_again() -> bool:
        return await lead.step()

    await wait_until(leads_again, within=5)


async def test_owner_claim_is_exclusive(clients: list[Redis], tmp_path: Path) -> None:
    owners = [
        ChannelOwners(client, ident, ttl=TTL)
        for client, ident in zip(clients, identities(tmp_path, 5), strict=True)
    ]
    claims = await asyncio.gather(
        *(o.claim(42, f"http://127.0.0.1:{6000 + i}") for i, o in enumerate(owners))
    )
    winners = [claim for claim in claims if claim.ours]
    assert len(winners) == 1
    winner = winners[0].owner
    assert winner is not None
    assert all(claim.owner == winner for claim in claims)
    assert (await owners[0].owners([42, 43])) == {42: winner}
    again = next(o for o in owners if o.identity.node_id == winner.node_id)
    assert (await again.claim(42, winner.relay_url)).ours  # claiming what we own is fine


async def test_owner_records_live_while_renewed_and_go_with_their_node(
    clients: list[Redis], tmp_path: Path
) -> None:
    a_ident, b_ident = identities(tmp_path, 2)
    lost: list[tuple[int, ...]] = []
    a = ChannelOwners(clients[0], a_ident, ttl=TTL, on_lost=lost.append)
    b = ChannelOwners(clients[1], b_ident, ttl=TTL)
    assert (await a.claim(1, "http://127.0.0.1:7001")).ours
    assert (await a.claim(2, "http://127.0.0.1:7001")).ours
    tasks = TaskOwner("a")
    a.start(tasks)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def past_three_ttls() -> bool:
        return loop.time() - started > 3 * TTL

    await wait_until(past_three_ttls, within=10)
    assert set(await b.owners([1, 2])) == {1, 2}  # renewed all along
    await a.release(2)
    claim = await b.claim(2, "http://127.0.0.1:7002")  # released: free for b at once
    assert claim.ours
    assert claim.owner is not None
    assert claim.owner.node_id == b_ident.node_id
    assert (await b.owner(2)) == claim.owner

    await tasks.close()  # node a dies
    died = loop.time()

    async def b_can_take_over() -> bool:
        return (await b.claim(1, "http://127.0.0.1:7002")).ours

    await wait_until(b_can_take_over, within=5)
    assert loop.time() - died <= TTL + 0.5
    assert await a.renew_once() == (1,)  # a comes back: it learns it lost channel 1
    assert lost == [(1,)]
    assert a.owned == ()

"""Node identity in the data dir and the registry of live nodes on a real Redis."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from streamforge.cluster.node import (
    NodeIdentity,
    NodeIdInUseError,
    NodeRegistry,
    load_node_id,
    node_of,
)
from streamforge.cluster.redisconn import connect, redact_url
from streamforge.errors import ConfigError
from streamforge.tasks import TaskOwner
from tests.redisfix import RedisServer, wait_until


@pytest.fixture
async def redis(redis_srv: RedisServer) -> AsyncIterator[Redis]:
    client = connect(redis_srv.url, timeout=0.5)
    yield client
    await client.aclose()


def test_node_id_is_created_private_and_stays(tmp_path: Path) -> None:
    first = load_node_id(tmp_path)
    path = tmp_path / "node-id"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 16
    assert load_node_id(tmp_path) == first
    path.chmod(0o644)
    assert load_node_id(tmp_path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_corrupt_node_id_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "node-id").write_text("not-an-id\n")
    with pytest.raises(ConfigError, match="node-id is corrupt"):
        load_node_id(tmp_path)


def test_each_start_is_a_new_instance_of_the_same_node(tmp_path: Path) -> None:
    a = NodeIdentity.create(tmp_path, "tuner-a")
    b = NodeIdentity.create(tmp_path, "tuner-a")
    assert a.node_id == b.node_id
    assert a.instance != b.instance
    assert node_of(a.instance) == a.node_id
    assert node_of(f"{a.instance}:7") == a.node_id


def test_redis_password_is_redacted() -> None:
    assert redact_url("redis://:hunter2@10.0.0.5:6380/1") == "redis://:***@10.0.0.5:6380/1"
    assert "hunter2" not in redact_url("redis://sf:hunter2@host/0")
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def test_registry_lists_live_nodes_and_forgets_dead_ones(
    redis: Redis, tmp_path: Path
) -> None:
    nodes = [NodeIdentity.create(tmp_path / f"n{i}", f"tuner-{i}") for i in range(3)]
    registries = [
        NodeRegistry(redis, node, ttl=1.0, relay_url=f"http://127.0.0.1:{5000 + i}")
        for i, node in enumerate(nodes)
    ]
    for registry in registries:
        await registry.register()
    live = await registries[0].live_nodes()
    assert [n.name for n in live] == ["tuner-0", "tuner-1", "tuner-2"]
    assert live[1].relay_url == "http://127.0.0.1:5001"
    assert live[1].instance == nodes[1].instance
    assert all(0 < n.expires_in <= 1.0 for n in live)

    # tuner-0 and tuner-1 keep beating; tuner-2 died.
    async def only_two_left() -> bool:
        assert await registries[0].heartbeat()
        assert await registries[1].heartbeat()
        return [n.name for n in await registries[0].live_nodes()] == ["tuner-0", "tuner-1"]

    took = await wait_until(only_two_left, within=5)
    assert took <= 1.0 + 0.5
    await registries[1].deregister()
    assert [n.name for n in await registries[0].live_nodes()] == ["tuner-0"]


async def test_heartbeat_puts_back_a_record_lost_in_an_outage(redis: Redis, tmp_path: Path) -> None:
    registry = NodeRegistry(redis, NodeIdentity.create(tmp_path, "tuner-a"), ttl=1.0)
    await registry.register()
    await redis.flushall()  # what a Redis restart without persistence looks like
    assert await registry.live_nodes() == []
    assert await registry.heartbeat()
    assert [n.name for n in await registry.live_nodes()] == ["tuner-a"]


async def test_a_copied_data_dir_is_refused(redis: Redis, tmp_path: Path) -> None:
    first = NodeRegistry(redis, NodeIdentity.create(tmp_path, "a"), ttl=1.0)
    twin = NodeRegistry(redis, NodeIdentity.create(tmp_path, "a-copy"), ttl=1.0)
    await first.register()
    tasks = TaskOwner("test")
    waiting = tasks.spawn(twin.register(), "twin-register")

    async def twin_refused() -> bool:
        await first.heartbeat()
        return waiting.done()

    await wait_until(twin_refused, within=5)
    with pytest.raises(NodeIdInUseError, match="STREAMFORGE_DATA_DIR"):
        waiting.result()
    assert not await twin.heartbeat()
    assert twin.conflict is not None
    assert twin.conflict.instance == first.identity.instance
    await tasks.close()


async def test_a_restarted_node_takes_over_its_crashed_record(redis: Redis, tmp_path: Path) -> None:
    crashed = NodeRegistry(redis, NodeIdentity.create(tmp_path, "a"), ttl=1.0)
    await crashed.register()
    restarted = NodeRegistry(redis, NodeIdentity.create(tmp_path, "a"), ttl=1.0)
    await restarted.register()  # waits for the crashed record to expire
    assert [n.instance for n in await restarted.live_nodes()] == [restarted.identity.instance]

"""Cluster account leases under contention: 50 nodes, 20 accounts, one Redis.

Run: ``.venv/bin/python bench/bench_leases.py [--seconds 60] [--nodes 50] [--accounts 20]``

A private ``redis-server`` (127.0.0.1, free port, no persistence) is started
for the run. Every simulated node is what a StreamForge node would be: its
own Redis connection pool, its own :class:`~streamforge.cluster.slots.ClusterSlots`
(local slots + cluster leases) with its renew and release tasks. Each node
runs ``--workers`` viewers that zap: pick an account at random, take the local
slot, await :meth:`ClusterSlots.confirm` (timed), hold the connection for
50-500 ms, release, pause 0-50 ms (100-300 ms after a refusal). Account *i* allows ``1 + i % 4``
connections, so demand is several times the supply.

Checked and reported:

* limit violations, which must be 0 — by an independent observer that reads
  every account's sorted set atomically (``MULTI``: ``TIME`` + ``ZCOUNT``
  of unexpired members) every 20 ms, and by the nodes' own books (sum over
  nodes of confirmed leases per account, sampled at the same moments);
* lease acquire latency (``confirm``: one ``EVALSHA`` round-trip) median/p99;
* Redis load: commands/s from the ``total_commands_processed`` delta (this
  counts the calls made inside the scripts too), ``EVALSHA`` calls/s from
  ``INFO commandstats`` (one per acquire or renew), the sampled
  ``instantaneous_ops_per_sec`` and the server's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from _common import HOST, cpu_seconds, free_port, machine_line, report
from streamforge.cluster.leases import LeaseStore
from streamforge.cluster.node import NodeIdentity
from streamforge.cluster.redisconn import REDIS_ERRORS, connect
from streamforge.cluster.slots import ClusterSlots
from streamforge.tasks import TaskOwner


class RedisProcess:
    """A private redis-server for the run."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sf-bench-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def __enter__(self) -> RedisProcess:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--bind", HOST, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    granted: int = 0
    refused: int = 0
    local_full: int = 0


async def wait_ready(redis: Redis, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if await redis.ping():
                return
        except REDIS_ERRORS as exc:
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not start") from exc
        await asyncio.sleep(0.05)


async def viewer(
    slots: ClusterSlots, caps: dict[int, int], rng: random.Random, tally: Tally, stop: float
) -> None:
    loop = asyncio.get_running_loop()
    accounts = list(caps)
    while loop.time() < stop:
        account = rng.choice(accounts)
        cap = caps[account]
        lease = slots.try_acquire(account, cap, holder="bench")
        if lease is None:
            tally.local_full += 1
            await asyncio.sleep(rng.uniform(0, 0.05))
            continue
        started = time.perf_counter()
        ok = await slots.confirm(lease, cap)
        tally.latencies.append(time.perf_counter() - started)
        if ok:
            tally.granted += 1
            await asyncio.sleep(rng.uniform(0.05, 0.5))
        else:
            tally.refused += 1  # a session would fail over to another account's stream
        slots.release(lease)
        await asyncio.sleep(rng.uniform(0, 0.05) if ok else rng.uniform(0.1, 0.3))


async def commandstats(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def run(args: argparse.Namespace, url: str, redis_pid: int) -> int:
    observer = connect(url, timeout=2.0)
    await wait_ready(observer)
    caps = {account: 1 + account % 4 for account in range(1, args.accounts + 1)}
    root = Path(tempfile.mkdtemp(prefix="sf-bench-nodes-"))
    nodes: list[tuple[Redis, ClusterSlots, TaskOwner]] = []
    for i in range(args.nodes):
        client = connect(url, timeout=2.0)
        slots = ClusterSlots(
            LeaseStore(client, ttl=args.ttl),
            NodeIdentity.create(root / f"n{i}", f"node-{i}"),
            acquire_timeout=2.0,
        )
        tasks = TaskOwner(f"node-{i}")
        slots.start(tasks)
        nodes.append((client, slots, tasks))
    store = nodes[0][1].store
    tally = Tally()
    rng = random.Random(args.seed)
    loop = asyncio.get_running_loop()
    print(
        f"{args.nodes} nodes x {args.workers} viewers, {args.accounts} accounts "
        f"(caps 1-4, {sum(caps.values())} connections), TTL {args.ttl} s, {args.seconds} s",
        flush=True,
    )
    print(machine_line(), flush=True)

    info0 = await observer.info("stats")
    calls0 = await commandstats(observer)
    cpu0 = cpu_seconds(redis_pid)
    t0 = loop.time()
    stop = t0 + args.seconds
    for _client, slots, tasks in nodes:
        for w in range(args.workers):
            tasks.spawn(viewer(slots, caps, random.Random(rng.random()), tally, stop), f"v{w}")

    samples = 0
    redis_violations = 0
    own_violations = 0
    worst = 0.0
    used: list[float] = []
    inst_ops: list[int] = []
    next_info = t0 + 1
    keys = [store.key(a) for a in caps]
    while loop.time() < stop:
        # One MULTI: every set and the server clock at the same instant.
        async with observer.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.zrange(key, 0, -1, withscores=True)
            pipe.time()
            *sets, (seconds, micros) = await pipe.execute()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        counts = [sum(1 for _member, score in members if score > now_ms) for members in sets]
        own = {a: sum(len(s.confirmed(a)) for _c, s, _t in nodes) for a in caps}
        samples += 1
        for (account, cap), count in zip(caps.items(), counts, strict=True):
            worst = max(worst, int(count) / cap)
            if int(count) > cap:
                redis_violations += 1
            if own[account] > cap:
                own_violations += 1
        used.append(sum(int(c) for c in counts) / sum(caps.values()))
        if loop.time() >= next_info:
            inst_ops.append(int((await observer.info("stats"))["instantaneous_ops_per_sec"]))
            next_info += 1
        await asyncio.sleep(0.02)
    for _client, _slots, tasks in nodes:
        await tasks.close()
    elapsed = loop.time() - t0
    info1 = await observer.info("stats")
    calls1 = await commandstats(observer)
    cpu1 = cpu_seconds(redis_pid)

    print(f"observer samples: {samples} (x {len(caps)} accounts)")
    print(f"limit violations (Redis sets, independent observer): {redis_violations}")
    print(f"limit violations (nodes' own books):                  {own_violations}")
    print(f"highest observed use of a cap: {worst:.0%}; mean use of all caps: "
          f"{statistics.mean(used):.0%}")  # fmt: skip
    print(f"confirm: {tally.granted} granted, {tally.refused} refused (cluster full); "
          f"{tally.local_full} refused locally (node's own slots full)")  # fmt: skip
    report("lease acquire (confirm, one EVALSHA)", tally.latencies)
    commands = int(info1["total_commands_processed"]) - int(info0["total_commands_processed"])
    evalsha = calls1.get("evalsha", 0) - calls0.get("evalsha", 0)
    print(f"Redis commands/s (total_commands_processed, incl. inside scripts): "
          f"{commands / elapsed:,.0f}")  # fmt: skip
    print(f"EVALSHA calls/s: {evalsha / elapsed:,.0f}")
    if inst_ops:
        print(f"instantaneous_ops_per_sec: median {statistics.median(inst_ops):,.0f}, "
              f"max {max(inst_ops):,}")  # fmt: skip
    print(f"redis-server CPU: {cpu1 - cpu0:.1f} s over {elapsed:.0f} s "
          f"({(cpu1 - cpu0) / elapsed:.0%} of one core)")  # fmt: skip
    print(machine_line(), flush=True)
    for client, slots, _tasks in nodes:
        await slots.aclose()
        await client.aclose()
    await observer.aclose()
    shutil.rmtree(root, ignore_errors=True)
    return 1 if redis_violations or own_violations else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="viewers per node")
    parser.add_argument("--ttl", type=float, default=10.0, help="lease TTL in seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with RedisProcess() as server:
        assert server.proc is not None
        raise SystemExit(asyncio.run(run(args, server.url, server.proc.pid)))


if __name__ == "__main__":
    main()

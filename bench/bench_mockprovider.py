"""Benchmark of the mock Xtream provider (run: .venv/bin/python bench/bench_mockprovider.py).

The provider runs as a subprocess (its own core) with a 60,000-stream synthetic
catalogue; the client side is aiohttp in this process. Prints median/p99 for:

* ``get_live_streams`` of 60k streams, first call and cached calls;
* time to first TS byte of a live stream;
* delivered rate of N concurrent 8 Mbit/s streams, as a ratio of the nominal rate;
* how fast a client leaving a stalled stream is noticed (close logged by the panel).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from streamforge.mockprovider import Account, Catalog, Fault, FaultKind, MockProviderProcess
from streamforge.mockprovider.media import MediaLibrary

N_STREAMS = 60_000
SEED = 1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, values: list[float], unit: str = "ms", scale: float = 1000.0) -> None:
    print(
        f"{name:<44} median {statistics.median(values) * scale:9.2f} {unit}   "
        f"p99 {pct(values, 0.99) * scale:9.2f} {unit}   (n={len(values)})"
    )


async def bench_api(base: str, creds: dict[str, str], repeats: int) -> None:
    url = f"{base}/player_api.php"
    params = {**creds, "action": "get_live_streams"}
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        async with session.get(url, params=params) as resp:
            body = await resp.read()
        cold = time.perf_counter() - start
        count = len(json.loads(body))
        warm = []
        for _ in range(repeats):
            start = time.perf_counter()
            async with session.get(url, params=params) as resp:
                await resp.read()
            warm.append(time.perf_counter() - start)
    print(
        f"get_live_streams: {count} streams, {len(body) / 1e6:.1f} MB; first call "
        f"{cold * 1000:.0f} ms"
    )
    report("get_live_streams (cached)", warm)
    print(f"{'cold / cached median ratio':<44} {cold / statistics.median(warm):9.1f}x")


async def bench_first_byte(base: str, user: str, stream_id: int, repeats: int) -> None:
    url = f"{base}/live/{user}/{user}/{stream_id}.ts"
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(repeats):
            start = time.perf_counter()
            async with session.get(url) as resp:
                await resp.content.readexactly(188)
            times.append(time.perf_counter() - start)
    report("time to first TS byte", times)


async def one_stream(
    session: aiohttp.ClientSession, url: str, warmup: float, window: float
) -> float:
    async with session.get(url) as resp:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while loop.time() - t0 < warmup:
            await resp.content.read(1 << 16)
        total = 0
        t1 = loop.time()
        while loop.time() - t1 < window:
            total += len(await resp.content.read(1 << 16))
        return total / (loop.time() - t1)


async def bench_throughput(
    base: str, user: str, ids: list[int], nominal: float, window: float
) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    one_stream(session, f"{base}/live/{user}/{user}/{i}.ts", 1.5, window),
                    name=f"bench-stream:{i}",
                )
                for i in ids
            ]
        rates = [t.result() for t in tasks]
    ratios = [r / nominal for r in rates]
    total_mbit = sum(rates) * 8 / 1e6
    print(f"{len(ids)} concurrent 8 Mbit/s streams: aggregate {total_mbit:.1f} Mbit/s")
    report("delivered / nominal rate per stream", ratios, unit="x", scale=1.0)


async def bench_disconnect(
    proc: MockProviderProcess, user: str, stream_id: int, repeats: int
) -> None:
    control = proc.control
    control.set_fault(stream_id, Fault(FaultKind.STALL))
    port = urlsplit(proc.base_url).port or 80
    delays = []
    for _ in range(repeats):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /live/{user}/{user}/{stream_id}.ts HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        before = control.stats().total_closed
        closed_at = time.time()
        writer.close()
        await writer.wait_closed()
        stats = await asyncio.to_thread(
            control.wait_for, lambda s, b=before: s.total_closed > b, 5.0
        )
        delays.append(stats.closes()[-1].at - closed_at)
    control.recover(stream_id)
    report("stalled client leaving -> close logged", delays)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=8, help="concurrent 8 Mbit/s streams")
    parser.add_argument("--window", type=float, default=3.0, help="seconds measured per stream")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    user = "bench"
    account = Account(user, user, max_connections=10_000)
    catalog = Catalog.synthetic(N_STREAMS, seed=SEED, accounts=[account])
    high = [s.stream_id for s in catalog.streams if s.profile == "high"][: args.streams]
    sd = next(s.stream_id for s in catalog.streams if s.profile == "sd")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.json"
        config.write_text(
            json.dumps(
                {
                    "synthetic": {"n_streams": N_STREAMS, "seed": SEED},
                    "accounts": [{"username": user, "password": user, "max_connections": 10_000}],
                }
            )
        )
        media = MediaLibrary(Path(tmp) / "media")
        nominal = media.load_sync("high").byte_rate
        media.load_sync("sd")
        for name in ("hd", "fhd"):
            media.load_sync(name)
        with MockProviderProcess(["--config", str(config)], cache_dir=media.cache_dir) as proc:
            await bench_api(proc.base_url, {"username": user, "password": user}, args.repeats)
            await bench_first_byte(proc.base_url, user, sd, args.repeats)
            await bench_throughput(proc.base_url, user, high, nominal, args.window)
            await bench_disconnect(proc, user, sd, args.repeats)


if __name__ == "__main__":
    asyncio.run(main())

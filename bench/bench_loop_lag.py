"""Event-loop lag under load (run: .venv/bin/python bench/bench_loop_lag.py).

One StreamForge (the real app on uvicorn, in this process, so its loop monitor
is read directly) serves ``--sessions`` channel sessions (20) streaming from a
mock provider, each read by one client; meanwhile, on the same event loop, a
60,000-stream channel sync of a second account, a 2,000-channel x 7-day guide
import (a file source, ~290,000 programmes) and the match run that follows the
sync (as the runtime's after-sync hook does) all happen at once.

Processes: two mock providers as children (``live`` — a config catalogue of
the streamed channels, ``big`` — ``Catalog.synthetic(60000)``), StreamForge in
this process, and the clients in a spawned child (aiohttp readers that count
bytes and the largest gap between two chunks they received).

Figures: the loop lag samples of StreamForge's :class:`LoopMonitor` over the
loaded window (p50 / p99 / max, its default 25 ms sampling interval), the
``streamforge_event_loop_lag_seconds`` histogram's count and sum from
``/metrics``, the failovers (total and by stall) during the window from
``/metrics``, the ``system`` loop warnings recorded, what the clients saw
(delivered rate per session, worst gap), how long each load took, and the load
average before and after. Targets: p99 < 20 ms, max < 100 ms, 0 failovers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import faulthandler
import gc
import json
import logging
import multiprocessing
import multiprocessing.connection
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    MockServerProcess,
    add_account,
    build_runtime,
    machine_line,
    pct,
    serve_app,
)
from bench_xmltv_parse import write_guide
from streamforge.interpreter import (
    SERVING_SWITCH_INTERVAL,
    InterpreterState,
    tune_for_serving,
)
from streamforge.loop_monitor import LoopMonitor
from streamforge.mockprovider import MediaLibrary
from streamforge.runtime import Runtime

USER = "bench"
BIG_USER = "user"  # Catalog.synthetic's account
READ_SIZE = 1 << 16
TARGET_P99 = 0.020
TARGET_MAX = 0.100


# --------------------------------------------------------------------------- the client child
async def _clients(urls: list[str], conn: multiprocessing.connection.Connection) -> None:
    counts = [0] * len(urls)
    gaps = [0.0] * len(urls)
    failed: list[str] = []
    first = asyncio.Event()
    started = [0]

    async def reader(i: int, url: str, http: aiohttp.ClientSession) -> None:
        last = 0.0
        try:
            async with http.get(url) as resp:
                if resp.status != 200:
                    failed.append(f"{url.rsplit('/', 1)[-1]}: HTTP {resp.status}")
                    return
                while chunk := await resp.content.read(READ_SIZE):
                    now = time.perf_counter()
                    if counts[i]:
                        gaps[i] = max(gaps[i], now - last)
                    else:
                        started[0] += 1
                        if started[0] == len(urls):
                            first.set()
                    last = now
                    counts[i] += len(chunk)
        except aiohttp.ClientError as exc:
            failed.append(type(exc).__name__)

    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tasks = [
            loop.create_task(reader(i, u, http), name=f"reader:{i}") for i, u in enumerate(urls)
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await first.wait()
        conn.send(("reading", started[0], failed[:5]))
        await asyncio.to_thread(conn.recv)  # "measure": forget the tune phase
        gaps = [0.0] * len(urls)
        base = list(counts)
        t0 = time.perf_counter()
        await asyncio.to_thread(conn.recv)  # "stop"
        seconds = time.perf_counter() - t0
        per_client = [b - a for a, b in zip(base, counts, strict=True)]
        conn.send(("done", seconds, per_client, list(gaps), failed[:5]))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _client_main(urls: list[str], conn: multiprocessing.connection.Connection) -> None:
    asyncio.run(_clients(urls, conn))


# --------------------------------------------------------------------------- diagnosis
class StackSampler:
    """Diagnosis (``--stacks``): a thread that, whenever the loop's heartbeat is
    older than ``late`` seconds, records where the loop thread is (through
    :mod:`faulthandler`, which holds no reference to the loop thread's frames). A
    loop thread waiting for the GIL shows the line it will resume at; one doing
    blocking work shows that work."""

    def __init__(self, late: float = 0.05, every: float = 0.01) -> None:
        self.late = late
        self.every = every
        self.beat = time.monotonic()
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        main = threading.main_thread().ident or 0
        self._header = f"Thread 0x{main:016x}"
        self._thread = threading.Thread(target=self._watch, name="bench-stacks", daemon=True)

    async def heartbeat(self) -> None:
        while True:
            self.beat = time.monotonic()
            await asyncio.sleep(self.every)

    def _watch(self) -> None:
        with tempfile.TemporaryFile("w+") as dump:
            while not self._stop.wait(self.every):
                if time.monotonic() - self.beat <= self.late:
                    continue
                dump.seek(0)
                dump.truncate()
                faulthandler.dump_traceback(dump, all_threads=True)
                dump.flush()
                dump.seek(0)
                blocks = dump.read().split("\n\n")
                for block in blocks:
                    lines = block.strip().splitlines()
                    if not lines or lines[0].startswith("Current thread"):
                        continue
                    main = lines[0].startswith(self._header)
                    frames = [
                        line.strip().replace("File ", "").replace('"', "")
                        for line in lines[1 : 7 if main else 4]
                    ]
                    if not main and frames and "threading.py" in frames[0]:
                        continue  # an idle worker waiting for work
                    where = " <- ".join(Path(f).name for f in frames)
                    self.counts[("loop: " if main else "worker: ") + where] += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1)

    def print(self, top: int = 25) -> None:
        total = sum(self.counts.values())
        print(
            f"loop thread while the loop was late ({total} samples of {self.every * 1000:.0f} ms):"
        )
        for stack, count in self.counts.most_common(top):
            print(f"  {count:5d}  {stack}")


# --------------------------------------------------------------------------- setup
def live_config(path: Path, sessions: int, profile: str) -> list[int]:
    """The ``live`` mock's catalogue: one stream (and guide channel) per session."""
    ids = list(range(1, sessions + 1))
    path.write_text(
        json.dumps(
            {
                "accounts": [
                    {
                        "username": USER,
                        "password": USER,
                        "max_connections": 1000,
                        "exp_date": 4_102_444_800,
                    }
                ],
                "categories": [{"category_id": 1, "name": "UK | Bench"}],
                "streams": [
                    {
                        "stream_id": i,
                        "name": f"UK: Live {i} HD",
                        "category_id": 1,
                        "epg_channel_id": f"live{i}.uk",
                        "profile": profile,
                        "num": i,
                    }
                    for i in ids
                ],
                "guide_channels": [
                    {"epg_id": f"live{i}.uk", "display_name": f"Live {i}"} for i in ids
                ],
            }
        )
    )
    return ids


async def prepare(runtime: Runtime, live: str, big: str, ids: list[int], guide: Path) -> list[str]:
    """Live account synced, its guide imported and matched; the big account and
    the big guide source added but not yet synced/imported. Returns GuideNumbers."""
    await add_account(runtime, "live", live, USER, USER)
    await runtime.channel_sync.sync("live")
    await runtime.db.write(runtime.epg.add, "live-guide", from_account="live")
    await runtime.epg.refresh("live-guide")
    await runtime.matching.arun()
    numbers = []
    for i in ids:
        view = await runtime.db.run(runtime.channels.get, f"live{i}.uk")
        if view.guide_number is None:
            raise RuntimeError(f"live{i}.uk got no GuideNumber")
        numbers.append(view.guide_number)
    await add_account(runtime, "big", big, BIG_USER, "pass")
    await runtime.db.write(runtime.epg.add, "big-guide", file=str(guide))
    return numbers


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """Every sample line of StreamForge's ``/metrics`` (name with labels -> value)."""
    async with http.get(f"{base}/metrics") as resp:
        text = await resp.text()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def failovers(metrics: dict[str, float], reason: str | None = None) -> float:
    prefix = "streamforge_failovers_total{"
    return sum(
        v
        for k, v in metrics.items()
        if k.startswith(prefix) and (reason is None or f'reason="{reason}"' in k)
    )


# --------------------------------------------------------------------------- the run
async def loads(runtime: Runtime) -> dict[str, float]:
    """The sync (then the match, like the after-sync hook) and the guide import, at once."""
    durations: dict[str, float] = {}
    t0 = time.perf_counter()

    async def sync_then_match() -> None:
        report = await runtime.channel_sync.sync("big")
        durations["sync"] = time.perf_counter() - t0
        durations["synced_streams"] = report.streams
        start = time.perf_counter()
        summary = await runtime.matching.arun()
        durations["match"] = time.perf_counter() - start
        durations["matched_streams"] = summary.mapped_streams

    async def guide_import() -> None:
        summary = await runtime.epg.refresh("big-guide")
        durations["import"] = time.perf_counter() - t0
        durations["programmes"] = summary["programmes"]

    await asyncio.gather(sync_then_match(), guide_import())
    durations["all"] = time.perf_counter() - t0
    return durations


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--streams", type=int, default=60_000, help="streams of the big sync")
    parser.add_argument("--channels", type=int, default=2_000, help="channels of the big guide")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--profile", default="hd", help="mock media profile of the sessions")
    parser.add_argument("--tail", type=float, default=3.0, help="seconds measured after the loads")
    parser.add_argument(
        "--slow-callbacks",
        type=float,
        default=0.0,
        metavar="MS",
        help="diagnosis: asyncio debug mode, log every callback that ran longer than MS",
    )
    parser.add_argument(
        "--stacks",
        action="store_true",
        help="diagnosis: sample where the loop thread is whenever the loop is --late ms late",
    )
    parser.add_argument(
        "--untuned",
        action="store_true",
        help="experiment: leave the interpreter as it starts (no interpreter.tune_for_serving)",
    )
    parser.add_argument(
        "--late",
        type=float,
        default=50.0,
        metavar="MS",
        help="diagnosis: with --stacks, how late the loop must be to be sampled (50 ms)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        metavar="S",
        help="experiment: sys.setswitchinterval(S) (CPython's default is 0.005)",
    )
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    print(f"GIL switch interval at start {sys.getswitchinterval() * 1000:g} ms", flush=True)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("streamforge").setLevel(logging.ERROR)
    if args.slow_callbacks:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = args.slow_callbacks / 1000
    load_before = machine_line()
    print(load_before, flush=True)
    media = MediaLibrary()
    await asyncio.to_thread(media.load_sync, args.profile)
    with tempfile.TemporaryDirectory(prefix="sf-bench-loop-") as tmp:
        guide = Path(tmp) / "guide.xml"
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        with guide.open("wb") as handle:
            programmes = write_guide(handle, args.channels, args.days, random.Random(1), start)
        print(
            f"guide: {args.channels} channels, {programmes} programmes, "
            f"{guide.stat().st_size / 1e6:.0f} MB",
            flush=True,
        )
        config = Path(tmp) / "live.json"
        ids = live_config(config, args.sessions, args.profile)
        with (
            MockServerProcess(["--config", str(config)], cache_dir=media.cache_dir) as live,
            MockServerProcess(["--synthetic", str(args.streams)], cache_dir=media.cache_dir) as big,
        ):
            runtime = build_runtime(Path(tmp) / "sf", epg_days_ahead=args.days + 1)
            try:
                await run(runtime, live.base_url, big.base_url, ids, guide, args)
            finally:
                await runtime.aclose()
    print(f"before: {load_before}")
    print(f"after:  {machine_line()}")


async def run(
    runtime: Runtime,
    live: str,
    big: str,
    ids: list[int],
    guide: Path,
    args: argparse.Namespace,
) -> None:
    numbers = await prepare(runtime, live, big, ids, guide)
    # The runtime's monitor with its default interval, keeping every sample of the run.
    runtime.loop_monitor = LoopMonitor(
        runtime.events, runtime.streams.metrics.loop_lag, keep=1_000_000
    )
    sampler = StackSampler(late=args.late / 1000) if args.stacks else None
    async with serve_app(runtime) as base, aiohttp.ClientSession() as http:
        if not args.untuned:
            # as `streamforge serve` does before it accepts requests
            tune_for_serving(switch_interval=args.switch_interval or SERVING_SWITCH_INTERVAL)
        tuned = InterpreterState.current()
        print(
            f"interpreter: gc thresholds {tuned.thresholds}, {gc.get_freeze_count()} objects "
            f"frozen, GIL switch interval {tuned.switch_interval * 1000:g} ms",
            flush=True,
        )
        runtime.loop_monitor.start(runtime.tasks)
        if sampler is not None:
            runtime.tasks.spawn(sampler.heartbeat(), name="bench-heartbeat")
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        urls = [f"{base}/auto/v{n}" for n in numbers]
        proc = ctx.Process(target=_client_main, args=(urls, child), name="bench-clients")
        proc.start()
        try:
            if not await asyncio.to_thread(parent.poll, 90):
                raise TimeoutError("clients did not start")
            _tag, reading, failed = parent.recv()
            print(f"{reading}/{len(urls)} sessions streaming {failed or ''}", flush=True)
            await asyncio.sleep(3.0)  # let the sessions settle before measuring
            before = await scrape(http, base)
            runtime.loop_monitor.clear()
            assert runtime.events.flush()
            warned_before = len(runtime.events.query(category="system", level="warning"))
            parent.send("measure")
            under_load = machine_line()
            if sampler is not None:
                sampler.start()
            durations = await loads(runtime)
            if sampler is not None:
                sampler.stop()
            loaded_samples = runtime.loop_monitor.samples()
            await asyncio.sleep(args.tail)  # the tail: is the loop quiet again?
            parent.send("stop")
            if not await asyncio.to_thread(parent.poll, 30):
                raise TimeoutError("clients did not report")
            _tag, seconds, per_client, gaps, failed = parent.recv()
            after = await scrape(http, base)
            samples = runtime.loop_monitor.samples()
        finally:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            parent.close()
            child.close()
        assert runtime.events.flush()
        warnings = runtime.events.query(category="system", level="warning")
    if sampler is not None:
        sampler.print()
    report(durations, samples, loaded_samples, before, after, seconds, per_client, gaps, failed)
    print(f"load while the loads started: {under_load}")
    print(f"loop warnings recorded: {len(warnings) - warned_before}")
    for warning in warnings[: len(warnings) - warned_before]:
        print(f"  {warning.timestamp:%H:%M:%S} {warning.message} {warning.details}")


def report(
    durations: dict[str, float],
    samples: list[float],
    loaded: list[float],
    before: dict[str, float],
    after: dict[str, float],
    seconds: float,
    per_client: list[int],
    gaps: list[float],
    failed: list[str],
) -> None:
    print(
        f"loads: sync of {int(durations['synced_streams'])} streams "
        f"{durations['sync']:.1f} s, then match ({int(durations['matched_streams'])} mappings) "
        f"{durations['match']:.1f} s; guide import of {int(durations['programmes'])} programmes "
        f"{durations['import']:.1f} s; all {durations['all']:.1f} s"
    )
    for label, values in (("during the loads", loaded), ("loads + tail", samples)):
        print(
            f"loop lag {label:<17} p50 {pct(values, 0.5) * 1000:7.1f} ms   "
            f"p99 {pct(values, 0.99) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms   "
            f"(n={len(values)}, > 20 ms: {sum(v > 0.02 for v in values)}, "
            f"> 100 ms: {sum(v > 0.1 for v in values)})"
        )
    name = "streamforge_event_loop_lag_seconds"
    count = after[f"{name}_count"] - before[f"{name}_count"]
    total = after[f"{name}_sum"] - before[f"{name}_sum"]
    over = {
        le: count - (after[f'{name}_bucket{{le="{le}"}}'] - before[f'{name}_bucket{{le="{le}"}}'])
        for le in ("0.02", "0.1")
    }
    print(
        f"/metrics {name}: {int(count)} observations, mean {total / count * 1000:.1f} ms, "
        f"> 20 ms: {int(over['0.02'])}, > 100 ms: {int(over['0.1'])}"
    )
    total_failovers = failovers(after) - failovers(before)
    stall_failovers = failovers(after, "stall") - failovers(before, "stall")
    print(f"failovers during the window: {int(total_failovers)} (stall: {int(stall_failovers)})")
    rates = [b * 8 / seconds / 1e6 for b in per_client]
    print(
        f"clients: {len(per_client)} sessions over {seconds:.1f} s, "
        f"{min(rates):.2f}-{max(rates):.2f} Mbit/s each, worst gap between chunks "
        f"{max(gaps) * 1000:.0f} ms (median of the per-client worst {pct(gaps, 0.5) * 1000:.0f} ms)"
        + (f", FAILED {failed}" if failed else "")
    )
    p99, worst = pct(loaded, 0.99), max(samples)
    verdicts = [
        f"p99 < {TARGET_P99 * 1000:.0f} ms: {'met' if p99 < TARGET_P99 else 'MISSED'} "
        f"({p99 / TARGET_P99:.2f} of budget)",
        f"max < {TARGET_MAX * 1000:.0f} ms: {'met' if worst < TARGET_MAX else 'MISSED'} "
        f"({worst / TARGET_MAX:.2f} of budget)",
        f"0 failovers: {'met' if total_failovers == 0 else 'MISSED'}",
    ]
    print("targets: " + "; ".join(verdicts))


if __name__ == "__main__":
    asyncio.run(main())

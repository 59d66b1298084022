"""Channel sync of a 60,000-stream account (run: .venv/bin/python bench/bench_sync.py).

The mock provider runs as a child process (``Catalog.synthetic(60000)``, its
own core) so that its work and memory stay out of the figures. StreamForge
runs in this process: each run builds a fresh runtime on a new SQLite file,
adds the account (one ``get_user_info`` round trip, not timed) and times
``runtime.channel_sync.sync()`` — fetching categories and the 60k-stream
JSON, parsing, quality detection and the bulk upsert.

Figures: wall time of the first sync (median of ``--runs`` fresh DBs), the
time spent per stage (from the sync's progress callback), the peak RSS of
this process during a sync (``VmHWM`` reset before each run, and the growth
over the RSS before it), the tracemalloc peak of a separate traced sync
(tracing slows Python down, so it is never timed), and the time of a re-sync
of the unchanged catalogue. It also reports the longest time the event loop
was blocked during the sync (a 10 ms ticker's worst overshoot): while the
loop is blocked, no live stream is served. Targets: sync under 5 s and
under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import tracemalloc
from pathlib import Path

from _common import (
    Summary,
    add_account,
    build_runtime,
    cpu_seconds,
    machine_line,
    mb,
    peak_rss_bytes,
    report,
    reset_peak_rss,
    rss_bytes,
)
from streamforge.mockprovider import MockProviderProcess
from streamforge.runtime import Runtime

N_STREAMS = 60_000
ACCOUNT = "bench"
TARGET_SECONDS = 5.0
TARGET_BYTES = 300e6


class LoopLag:
    """Measures how long the event loop was blocked: a ticker asks for 10 ms sleeps
    and records the largest overshoot. A sync that runs its CPU work on the loop
    thread stalls every live stream for that long."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._loop = asyncio.get_running_loop()
        self._since = self._loop.time()
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self._since = self._loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, self._loop.time() - self._since - 0.01)

    def __enter__(self) -> LoopLag:
        self._since = self._loop.time()
        self._task = self._loop.create_task(self._tick(), name="bench-loop-lag")
        return self

    def __exit__(self, *_exc: object) -> None:
        # A block that lasted until the end has not been seen by the ticker yet.
        self.worst = max(self.worst, self._loop.time() - self._since - 0.01)
        if self._task is not None:
            self._task.cancel()


class StageClock:
    """Records when each sync stage was first reported."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def __call__(self, stage: str, _done: int, _total: int) -> None:
        self.marks.setdefault(stage, time.perf_counter() - self.start)


async def one_sync(
    base_url: str, data_dir: Path, *, traced: bool = False, resync: bool = False
) -> dict[str, float]:
    runtime: Runtime = build_runtime(data_dir)
    try:
        await add_account(runtime, ACCOUNT, base_url, "user", "pass")
        gc.collect()
        if not reset_peak_rss():
            print("note: VmHWM cannot be reset here; peak RSS is the process's lifetime peak")
        before = rss_bytes()
        if traced:
            tracemalloc.start()
        cpu0 = cpu_seconds()
        with LoopLag() as lag:
            await asyncio.sleep(0)  # let the ticker take its first reading
            clock = StageClock()
            report_ = await runtime.channel_sync.sync(ACCOUNT, progress=clock)
            wall = time.perf_counter() - clock.start
        result = {
            "wall": wall,
            "loop_lag": lag.worst,
            "cpu": cpu_seconds() - cpu0,
            "rss_before": float(before),
            "peak_rss": float(peak_rss_bytes()),
            "streams": float(report_.streams),
            "added": float(report_.added),
            **{f"stage_{k}": v for k, v in clock.marks.items()},
        }
        if traced:
            _current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            result["tracemalloc_peak"] = float(peak)
        if resync:
            start = time.perf_counter()
            cpu0 = cpu_seconds()
            again = await runtime.channel_sync.sync(ACCOUNT)
            result["resync"] = time.perf_counter() - start
            result["resync_cpu"] = cpu_seconds() - cpu0
            result["resync_unchanged"] = float(again.unchanged)
            result["resync_changed"] = float(again.added + again.updated + again.removed)
        return result
    finally:
        await runtime.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="timed syncs, each on a fresh DB")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="sf-bench-sync-") as tmp,
        MockProviderProcess(["--synthetic", str(N_STREAMS)]) as mock,
    ):
        runs = []
        for i in range(args.runs):
            runs.append(await one_sync(mock.base_url, Path(tmp) / f"run{i}", resync=True))
        traced = await one_sync(mock.base_url, Path(tmp) / "traced", traced=True)
    first = runs[0]
    print(
        f"sync of {int(first['streams'])} streams ({int(first['added'])} new) "
        f"from the mock provider, {len(runs)} runs on fresh SQLite DBs"
    )
    walls = [r["wall"] for r in runs]
    wall = report("first sync wall time", walls, unit="s", scale=1.0)
    report("first sync CPU time of this process", [r["cpu"] for r in runs], unit="s", scale=1.0)
    report(
        "longest event-loop block during the sync",
        [r["loop_lag"] for r in runs],
        unit="s",
        scale=1.0,
    )
    for stage, label in (
        ("stage_streams", "categories fetched (stage 'streams' begins)"),
        ("stage_store", "streams fetched+parsed (stage 'store' begins)"),
        ("stage_done", "stored (stage 'done')"),
    ):
        if all(stage in r for r in runs):
            report(f"  t at {label}", [r[stage] for r in runs], unit="s", scale=1.0)
    peaks = [r["peak_rss"] for r in runs]
    growth = [r["peak_rss"] - r["rss_before"] for r in runs]
    print(
        f"{'peak RSS of the process during sync':<46} median {mb(Summary.of(peaks).median)}"
        f"   max {mb(max(peaks))}"
    )
    print(
        f"{'peak RSS growth over RSS before sync':<46} median {mb(Summary.of(growth).median)}"
        f"   max {mb(max(growth))}"
    )
    print(f"{'tracemalloc peak of one sync (untimed run)':<46} {mb(traced['tracemalloc_peak'])}")
    resync = report(
        "re-sync of the unchanged catalogue", [r["resync"] for r in runs], unit="s", scale=1.0
    )
    report("re-sync CPU time of this process", [r["resync_cpu"] for r in runs], unit="s", scale=1.0)
    print(
        f"{'re-sync: unchanged / changed rows':<46} {int(runs[0]['resync_unchanged'])} / "
        f"{int(runs[0]['resync_changed'])}"
    )
    print(machine_line())

    def verdict(median: float, worst: float, budget: float) -> str:
        if worst < budget:
            return "met"
        return "median met, max missed" if median < budget else "MISSED"

    print(
        f"target: sync < {TARGET_SECONDS:.0f} s -> median {wall.median / TARGET_SECONDS:.2f} of "
        f"budget ({verdict(wall.median, wall.maximum, TARGET_SECONDS)}); peak RSS < "
        f"{TARGET_BYTES / 1e6:.0f} MB -> {max(peaks) / TARGET_BYTES:.2f} of budget "
        f"({verdict(Summary.of(peaks).median, max(peaks), TARGET_BYTES)}); "
        f"re-sync / first sync {resync.median / wall.median:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())

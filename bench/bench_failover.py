"""Failover gap per failure type (run: .venv/bin/python bench/bench_failover.py).

Setup: the mock provider (``Catalog.demo()``) and a whole StreamForge (runtime
on a fresh SQLite file, accounts alpha and beta synced, alpha's guide
imported, matching run, the real app served by uvicorn) share this process
and its event loop, all on 127.0.0.1. Channel ``bbcone.uk`` is pinned to the
failover order alpha/101 (primary, fhd) → alpha/102 (hd) → beta/201 (sd).
The circuit-breaker threshold is raised to 100 so that every trial walks the
same path (with the default of 3, a backup that fails in every trial would be
skipped from the fourth trial on, which measures the breaker, not failover).

One trial = a fresh session: a client (aiohttp, reading ``/auto/v{n}``)
tunes, plays the primary for a moment, the fault is injected on the open
primary connection (``MockProvider.set_fault`` with ``after=0``; for the
"backup answers …" kinds the first backup is made to fail first, then the
primary ends with EOF), the client keeps reading until the switched stream
has delivered for 0.2 s, then leaves; the next trial starts once the mock's open
connections have dropped to 0 and every fault is recovered.

Three figures per trial:

* ``gap_ms`` of StreamForge's ``failover`` event — from the failure being
  detected to the first valid data of the winning backup (the policy clock);
* the session's ``last_gap_ms`` — from the failure being detected to the
  next byte published to clients (includes the splicer's cut to a keyframe);
* the client-observed gap — the largest time between two consecutive chunks
  received by the client from 50 ms before the fault to the end of the trial.
  For a stall this contains the stall detection time (``stall_timeout``).

The noise floor is the largest inter-arrival gap before the fault (the mock
paces every 40 ms and sends a GOP burst on connect). Tune-phase kinds
(fault on the primary before tuning) report the tune's ``gap_ms`` and the
client's time to first byte next to a healthy tune. NFR: switch < 2 s; with
healthy backups on loopback, aim < 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from _common import (
    Summary,
    add_account,
    build_runtime,
    machine_line,
    order_channel,
    serve_app,
    wait_until,
    xtream_id,
)
from streamforge.events import Event
from streamforge.mockprovider import Catalog, Fault, FaultKind, MediaLibrary, MockProvider
from streamforge.runtime import Runtime

PACKET = 188
PRIMARY, BACKUP, SECOND = ("alpha", 101), ("alpha", 102), ("beta", 201)
TRIAL_TIMEOUT = 15.0
#: Seconds of playback kept after a switch, so the gap around it is bounded by later data.
AFTER_SWITCH = 0.2


@dataclass(frozen=True)
class Kind:
    """One failure type: faults set before tuning, on the backup, and on the playing primary."""

    name: str
    reason: str
    primary: Fault | None = None
    backup: Fault | None = None
    at_tune: Fault | None = None


MID_STREAM = (
    Kind("eof", "end_of_stream", primary=Fault(FaultKind.EOF)),
    Kind("reset", "read_error", primary=Fault(FaultKind.RESET)),
    Kind("garbage", "invalid_content", primary=Fault(FaultKind.GARBAGE)),
    Kind(
        "eof, backup answers 503",
        "end_of_stream",
        primary=Fault(FaultKind.EOF),
        backup=Fault(FaultKind.STATUS, status=503),
    ),
    Kind(
        "eof, backup refuses",
        "end_of_stream",
        primary=Fault(FaultKind.EOF),
        backup=Fault(FaultKind.REFUSE),
    ),
    Kind(
        "eof, backup answers HTML",
        "end_of_stream",
        primary=Fault(FaultKind.EOF),
        backup=Fault(FaultKind.HTML),
    ),
    # Hedged rounds: the first backup hangs; the third stream (beta) is healthy.
    Kind(
        "eof, backup hangs (no headers)",
        "end_of_stream",
        primary=Fault(FaultKind.EOF),
        backup=Fault(FaultKind.SLOW_HEADERS, delay=30.0),
    ),
    Kind(
        "eof, backup headers, no data",
        "end_of_stream",
        primary=Fault(FaultKind.EOF),
        backup=Fault(FaultKind.STALL),
    ),
    Kind(
        "eof, backup trickles",
        "end_of_stream",
        primary=Fault(FaultKind.EOF),
        backup=Fault(FaultKind.DRIP, rate=8),
    ),
)
STALL = Kind("stall", "stall", primary=Fault(FaultKind.STALL))
AT_TUNE = (
    Kind("tune: primary refuses", "connection_error", at_tune=Fault(FaultKind.REFUSE)),
    Kind("tune: primary answers 503", "http_error", at_tune=Fault(FaultKind.STATUS, status=503)),
    Kind("tune: primary answers HTML", "invalid_content", at_tune=Fault(FaultKind.HTML)),
)


class ArrivalClient:
    """Reads a tuned channel and records when each chunk arrived."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url
        self.started = time.monotonic()
        self.arrivals: list[tuple[float, int]] = []
        self.total = 0
        self.status = 0
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bench-client")

    async def _run(self) -> None:
        try:
            async with self._http.get(self._url) as response:
                self.status = response.status
                async for chunk in response.content.iter_any():
                    self.total += len(chunk)
                    self.arrivals.append((time.monotonic(), self.total))
        except aiohttp.ClientError:
            pass
        finally:
            self.ended.set()

    def bytes_since(self, t: float) -> int:
        return self.total - next((n for at, n in reversed(self.arrivals) if at < t), 0)

    def largest_gap(self, since: float, until: float = float("inf")) -> float:
        times = [at for at, _n in self.arrivals if since <= at <= until]
        before = [at for at, _n in self.arrivals if at < since]
        if before:
            times.insert(0, before[-1])
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class Bench:
    runtime: Runtime
    provider: MockProvider
    base_url: str
    number: str
    http: aiohttp.ClientSession
    failovers: list[dict[str, Any]] = field(default_factory=list)

    def on_event(self, event: Event) -> None:
        details = event.details
        if event.category == "stream" and "gap_ms" in details and "phase" in details:
            self.failovers.append(dict(details) | {"at": time.monotonic()})


@contextlib.asynccontextmanager
async def bench_stack(
    data_dir: Path, media: MediaLibrary, **overrides: Any
) -> AsyncIterator[Bench]:
    async with MockProvider(Catalog.demo(), host="127.0.0.1", port=0, media=media) as mp:
        runtime = build_runtime(data_dir, breaker_threshold=100, **overrides)
        for name in ("alpha", "beta"):
            await add_account(runtime, name, mp.base_url, name, f"{name}-secret")
            await runtime.channel_sync.sync(name)
        runtime.epg.add("alpha-guide", from_account="alpha")
        await runtime.epg.refresh("alpha-guide")
        await asyncio.to_thread(runtime.matching.run)
        number = order_channel(
            runtime, "bbcone.uk", [xtream_id(runtime, a, s) for a, s in (PRIMARY, BACKUP, SECOND)]
        )
        async with serve_app(runtime) as base, aiohttp.ClientSession() as http:
            bench = Bench(runtime, mp, base, number, http)
            unsubscribe = runtime.events.subscribe(bench.on_event)
            try:
                yield bench
            finally:
                unsubscribe()
        runtime.close()


@dataclass
class Trial:
    event_gap: float
    session_gap: float | None
    client_gap: float
    noise: float
    ttfb: float = 0.0
    reason: str = ""
    to_stream: str = ""


async def settle(b: Bench) -> None:
    b.provider.recover()
    await b.provider.wait_for(lambda st: not st.open, timeout=TRIAL_TIMEOUT)
    await wait_until(
        lambda: not b.runtime.streams.sessions, within=TRIAL_TIMEOUT, what="sessions ended"
    )


async def tune(b: Bench) -> tuple[ArrivalClient, float]:
    client = ArrivalClient(b.http, f"{b.base_url}/auto/v{b.number}")
    client.start()
    await wait_until(
        lambda: client.total >= PACKET or client.ended.is_set(),
        within=TRIAL_TIMEOUT,
        what="first byte",
    )
    if client.ended.is_set() or client.status != 200:
        raise RuntimeError(f"tune failed: HTTP {client.status}")
    return client, client.arrivals[0][0] - client.started


async def mid_stream_trial(b: Bench, kind: Kind, steady: float) -> Trial:
    await settle(b)
    client, _ttfb = await tune(b)
    try:
        await b.provider.wait_for(lambda st: st.open_connections(stream_id=PRIMARY[1]) == 1)
        playing_since = time.monotonic()
        await wait_until(
            lambda: time.monotonic() - playing_since >= steady and client.total >= PACKET * 50,
            within=TRIAL_TIMEOUT,
            what="steady playback",
        )
        if kind.backup is not None:
            b.provider.set_fault(BACKUP[1], kind.backup)
        seen = len(b.failovers)
        fault_at = time.monotonic()
        assert kind.primary is not None
        b.provider.set_fault(PRIMARY[1], kind.primary)
        await wait_until(
            lambda: len(b.failovers) > seen,
            within=TRIAL_TIMEOUT,
            what=f"failover after {kind.name}",
        )
        event = b.failovers[seen]
        switched_at = float(event["at"])
        await wait_until(
            lambda: (
                client.bytes_since(switched_at) >= PACKET * 20
                and time.monotonic() - switched_at >= AFTER_SWITCH
            ),
            within=TRIAL_TIMEOUT,
            what="data after the switch",
        )
        noise = client.largest_gap(playing_since, fault_at - 0.05)
        gap = client.largest_gap(fault_at - 0.05)
        sessions = b.runtime.streams.sessions
        session_gap = sessions[0].last_gap_ms if sessions else None
        return Trial(
            event_gap=float(event["gap_ms"]) / 1000,
            session_gap=None if session_gap is None else session_gap / 1000,
            client_gap=gap,
            noise=noise,
            reason=str(event["reason"]),
            to_stream=str(event["to_stream"]),
        )
    finally:
        await client.stop()


async def tune_trial(b: Bench, kind: Kind | None) -> Trial:
    await settle(b)
    seen = len(b.failovers)
    if kind is not None and kind.at_tune is not None:
        b.provider.set_fault(PRIMARY[1], kind.at_tune)
    client, ttfb = await tune(b)
    try:
        gap = 0.0
        reason = to = ""
        if kind is not None:
            await wait_until(
                lambda: len(b.failovers) > seen,
                within=TRIAL_TIMEOUT,
                what=f"tune failover after {kind.name}",
            )
            event = b.failovers[seen]
            gap, reason, to = (
                float(event["gap_ms"]) / 1000,
                str(event["reason"]),
                str(event["to_stream"]),
            )
        return Trial(
            event_gap=gap,
            session_gap=None,
            client_gap=0.0,
            noise=0.0,
            ttfb=ttfb,
            reason=reason,
            to_stream=to,
        )
    finally:
        await client.stop()


def fmt(values: list[float]) -> str:
    s = Summary.of(values)
    return f"{s.median * 1000:7.0f} {s.p99 * 1000:7.0f}"


def print_mid(name: str, trials: list[Trial]) -> None:
    sessions = [t.session_gap for t in trials if t.session_gap is not None]
    reasons = sorted({t.reason for t in trials})
    print(
        f"{name:<30} {fmt([t.event_gap for t in trials])}  "
        f"{fmt(sessions) if sessions else '      -       -'}  "
        f"{fmt([t.client_gap for t in trials])}  {fmt([t.noise for t in trials])}  "
        f"{len(trials):3d}  {','.join(reasons)} -> {sorted({t.to_stream for t in trials})[0]}",
        flush=True,
    )


MID_HEADER = (
    f"{'failure (mid-stream)':<30} {'event gap_ms':>15}  {'last_gap_ms':>15}  "
    f"{'client gap ms':>15}  {'noise floor ms':>15}    n  reason -> to\n"
    f"{'':<30} {'median     p99':>15}  {'median     p99':>15}  "
    f"{'median     p99':>15}  {'median     p99':>15}"
)


async def run_kinds(
    b: Bench,
    kinds: tuple[Kind, ...],
    trials: int,
    steady: float,
    out: dict[str, list[Trial]],
    label: Callable[[Kind], str],
) -> None:
    for kind in kinds:
        results = [await mid_stream_trial(b, kind, steady) for _ in range(trials)]
        out[label(kind)] = results
        print_mid(label(kind), results)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20, help="trials per failure type")
    parser.add_argument(
        "--steady",
        type=float,
        default=0.3,
        help="seconds of playback on the primary before the fault",
    )
    parser.add_argument(
        "--skip-stall-3s",
        action="store_true",
        help="leave out the stall runs at the default stall_timeout=3 s",
    )
    args = parser.parse_args()
    # Failover events are logged as warnings; they are counted here, not printed.
    logging.getLogger("streamforge").setLevel(logging.ERROR)
    print(machine_line(), flush=True)
    media = MediaLibrary()
    await asyncio.to_thread(lambda: [media.load_sync(p) for p in ("fhd", "hd", "sd", "high")])
    started = time.monotonic()
    mid: dict[str, list[Trial]] = {}
    with tempfile.TemporaryDirectory(prefix="sf-bench-failover-") as tmp:
        async with bench_stack(Path(tmp) / "default", media) as b:
            print(
                f"stall_timeout={b.runtime.settings.stall_timeout} s, failover_budget="
                f"{b.runtime.settings.failover_budget} s, hedge_delay="
                f"{b.runtime.settings.hedge_delay} s, outage_limit="
                f"{b.runtime.settings.outage_limit} s, header_timeout="
                f"{b.runtime.settings.header_timeout} s, {args.trials} trials per type\n"
            )
            print(MID_HEADER)
            await run_kinds(b, MID_STREAM, args.trials, args.steady, mid, lambda k: k.name)
            if not args.skip_stall_3s:
                await run_kinds(
                    b,
                    (STALL,),
                    args.trials,
                    args.steady,
                    mid,
                    lambda k: "stall (stall_timeout 3 s)",
                )
            print()
            print(
                f"{'tune-phase failure':<30} {'event gap_ms':>15}  {'client TTFB ms':>15}"
                f"    n  reason\n{'':<30} {'median     p99':>15}  {'median     p99':>15}"
            )
            healthy = [await tune_trial(b, None) for _ in range(args.trials)]
            print(
                f"{'tune: healthy primary':<30} {'      -       -':>15}  "
                f"{fmt([t.ttfb for t in healthy])}  {len(healthy):3d}",
                flush=True,
            )
            for kind in AT_TUNE:
                results = [await tune_trial(b, kind) for _ in range(args.trials)]
                print(
                    f"{kind.name:<30} {fmt([t.event_gap for t in results])}  "
                    f"{fmt([t.ttfb for t in results])}  {len(results):3d}  "
                    f"{','.join(sorted({t.reason for t in results}))}",
                    flush=True,
                )
            await settle(b)
        print()
        print(MID_HEADER)
        async with bench_stack(Path(tmp) / "stall1", media, stall_timeout=1.0) as b:
            await run_kinds(
                b, (STALL,), args.trials, args.steady, mid, lambda k: "stall (stall_timeout 1 s)"
            )
            await settle(b)
    print()
    healthy_kinds = ("eof", "reset", "garbage")
    worst = max(max(t.client_gap for t in mid[k]) for k in healthy_kinds)
    nfr = max(max(t.client_gap for t in v) for k, v in mid.items() if not k.startswith("stall"))
    print(
        f"NFR: worst client gap with healthy backups {worst * 1000:.0f} ms (aim < 250 ms: "
        f"{'met' if worst < 0.25 else 'MISSED'}); worst client gap of every non-stall kind "
        f"{nfr * 1000:.0f} ms (switch < 2 s: {'met' if nfr < 2 else 'MISSED'})"
    )
    for k, v in mid.items():
        if k.startswith("stall"):
            timeout = 3.0 if "3 s" in k else 1.0
            detect = [t.client_gap - (t.session_gap or 0.0) for t in v]
            switch = Summary.of([t.event_gap for t in v]).median
            print(
                f"{k}: detection (client gap - last_gap_ms) median "
                f"{Summary.of(detect).median * 1000:.0f} ms (stall_timeout {timeout:.0f} s), "
                f"switch after detection median {switch * 1000:.0f} ms"
            )
    print(f"total run time {time.monotonic() - started:.0f} s")
    print(machine_line())


if __name__ == "__main__":
    asyncio.run(main())

"""Benchmark: CPU per channel of the media-aware health checks at 720p and 1080p.

Run: ``.venv/bin/python bench/bench_health.py [--seconds 10] [--gop 25] [--runs 3]``

Encodes, with PyAV, a moving picture (H.264 High profile, x264 ``veryfast``,
CABAC, 25 fps, ``--gop`` frames per keyframe; 4 Mbit/s at 1280x720, 8 Mbit/s
at 1920x1080, a 0.5 s VBV; ``--grain`` texture) with AAC stereo audio into
MPEG-TS in a temporary directory.
Then, per size, it pushes the whole clip through, in 64 KiB chunks stamped
with the media time they would arrive at in real time:

- ``sampler``: :class:`ContentSampler` (keyframe per ~second, audio levels),
  split into the event-loop side (``feed`` + ``poll``, CPU time of the
  calling thread) and the worker side (process CPU time minus the caller's);
- ``clock``: :class:`MediaClock` (thread CPU time), with its throughput;
- ``splicer``: :class:`TsSplicer.push` on the same chunks, the reference the
  clock is to be negligible against.

Printed: the median over ``--runs`` of CPU seconds per media second, as a
percentage of one core per channel, and throughputs in MB/s of CPU time.
End to end (``--e2e``): a StreamForge on 127.0.0.1 against an in-process mock
provider whose catalogue has one channel per trial slot (an ``sd`` primary and
an ``hd`` backup on an account without a connection limit):

- **faults**: per fault type (black, frozen, card, silent, no video, no audio,
  slow 0.6x, drip, stall), ``--trials`` trials (20 by default) spread over
  ``--parallel`` channels per type, all types at once: tune, play 2 s, set the
  fault, and time from setting it to the failover event, which the session
  writes when the backup's first byte is published to the client (on
  loopback that is the client's first byte). Printed per type: median and
  p99, and the margin over the target (content: threshold + 2 s; behind
  live: limit + 0.5 s, plus the fault's own onset: the mock switches media
  faults at the next keyframe, up to 1 s);
- **false failovers**: ``--healthy-channels`` channels play healthy content
  for ``--healthy-minutes`` of wall time each (channel-time = the product,
  e.g. 12 x 2.5 min = 30 min): a third bursty every 4 s, a third every 8 s,
  a third real-time with a fade to black of <= 2 s and a still picture of
  <= 3 s every 20 s; every failover is a false one.

The load average of the machine is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamforge.mockprovider import (
    Account,
    Catalog,
    Category,
    Fault,
    FaultKind,
    MockProvider,
    Stream,
)
from streamforge.mockprovider.catalog import GuideChannel
from streamforge.settings import load_settings
from streamforge.streaming.health import ContentSampler, HealthConfig
from streamforge.streaming.media_clock import MediaClock
from streamforge.ts.splicer import TsSplicer

CHUNK = 65_536
SIZES = {"720p": (1280, 720, 4_000_000), "1080p": (1920, 1080, 8_000_000)}


def encode(
    path: Path, width: int, height: int, bitrate: int, seconds: float, gop: int, grain: int
) -> bytes:
    """A moving test picture with a tone, as H.264 + AAC MPEG-TS."""
    fps = 25
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = bitrate
        # a 0.5 s VBV like a broadcast encoder's: no IDR larger than half a second of bits
        video.options = {
            "preset": "veryfast",
            "g": str(gop),
            "keyint_min": str(gop),
            "maxrate": str(bitrate),
            "bufsize": str(bitrate // 2),
        }
        audio = out.add_stream("aac", rate=48_000)
        audio.layout = "stereo"
        ys, xs = np.mgrid[0:height, 0:width]
        # a gradient with film-grain-like texture, so the bitrate is what a real
        # channel spends (a clean gradient would compress to a tenth of it)
        noise = np.random.default_rng(1).integers(0, max(1, grain), (height, width))
        luma = ((xs + ys) % 200 + noise).astype(np.uint8)
        chroma = np.full((height // 2, width), 128, dtype=np.uint8)
        apts = 0
        for n in range(round(seconds * fps)):
            y = np.roll(luma, 6 * n, axis=1)
            y[(n * 7) % height : (n * 7) % height + 40, :] = 235
            frame = av.VideoFrame.from_ndarray(np.vstack([y, chroma]), format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
            while apts / 48_000 < (n + 1) / fps:
                t = (np.arange(1024) + apts) / 48_000
                wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                aframe = av.AudioFrame.from_ndarray(
                    np.stack([wave, wave]), format="fltp", layout="stereo"
                )
                aframe.sample_rate, aframe.pts = 48_000, apts
                aframe.time_base = Fraction(1, 48_000)
                for packet in audio.encode(aframe):
                    out.mux(packet)
                apts += 1024
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)
    return path.read_bytes()


@dataclass
class Run:
    loop_cpu: float
    worker_cpu: float
    clock_cpu: float
    splicer_cpu: float
    pictures: int
    levels: int
    dropped: int


def one_run(data: bytes, seconds: float, budget: float) -> Run:
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    stamps = [seconds * (i + 1) / len(chunks) for i in range(len(chunks))]

    sampler = ContentSampler(config=HealthConfig(max_pending=100_000, picture_cpu_budget=budget))
    process0, thread0 = time.process_time(), time.thread_time()
    for chunk, now in zip(chunks, stamps, strict=True):
        sampler.feed(chunk, now)
        sampler.poll(now)
        # In real time the worker is long done before the next chunk: wait for it
        # (sleeping costs no CPU), so the CPU budget sees each decode's cost.
        while sampler.pending:
            time.sleep(0.001)
            sampler.poll(now)
    loop_cpu = time.thread_time() - thread0
    worker_cpu = time.process_time() - process0 - loop_cpu
    stats = sampler.stats
    sampler.close()

    clock = MediaClock()
    t0 = time.thread_time()
    for chunk, now in zip(chunks, stamps, strict=True):
        clock.feed(chunk, now)
    clock_cpu = time.thread_time() - t0
    if abs(clock.lag(seconds)) > 1.0:
        raise RuntimeError(f"clock lag {clock.lag(seconds):.2f} s on a real-time feed")

    splicer = TsSplicer()
    t0 = time.thread_time()
    for chunk in chunks:
        splicer.push(chunk)
    splicer_cpu = time.thread_time() - t0
    return Run(
        loop_cpu,
        worker_cpu,
        clock_cpu,
        splicer_cpu,
        stats.pictures_decoded,
        stats.levels_decoded,
        stats.samples_dropped,
    )


# ------------------------------------------------------------------ end to end

FAULTS: dict[str, tuple[Fault, str]] = {
    "black": (Fault(FaultKind.BLACK), "black_seconds"),
    "frozen": (Fault(FaultKind.FROZEN), "frozen_seconds"),
    "card": (Fault(FaultKind.CARD), "frozen_seconds"),
    "silent": (Fault(FaultKind.SILENT), "silence_seconds"),
    "no_video": (Fault(FaultKind.NO_VIDEO), "component"),
    "no_audio": (Fault(FaultKind.NO_AUDIO), "component"),
    "slow_0.6": (Fault(FaultKind.SLOW, factor=0.6), "lag"),
    "drip": (Fault(FaultKind.DRIP), "lag"),
    "stall": (Fault(FaultKind.STALL), "lag"),
}


def _catalog(n: int) -> Catalog:
    streams, guide = [], []
    for i in range(n):
        epg = f"ch{i}.bench"
        streams.append(Stream(1000 + i, f"CH{i} FHD", 1, epg, profile="sd", num=i + 1))
        streams.append(Stream(5000 + i, f"CH{i} HD", 1, epg, profile="hd", num=i + 5000))
        guide.append(GuideChannel(epg, f"Channel {i}"))
    account = Account("bench", "bench-secret", exp_date=4_102_444_800, max_connections=10_000)
    return Catalog((account,), (Category(1, "Bench"),), tuple(streams), tuple(guide))


class _Stack:
    """A runtime + app against ``provider`` with ``n`` channels, primary then backup."""

    def __init__(self, provider: MockProvider, n: int, data_dir: Path) -> None:
        from _common import build_runtime

        self.provider = provider
        self.runtime = build_runtime(data_dir, session_linger=0.0)
        self.n = n
        self.numbers: dict[int, str] = {}
        self.switched: dict[str, list[tuple[float, dict[str, object]]]] = {}
        self.runtime.events.subscribe(self._on_event)

    def _on_event(self, event: object) -> None:
        details = getattr(event, "details", {}) or {}
        if details.get("kind") in {"failover", "exhausted"}:
            name = str(details.get("channel_name"))
            self.switched.setdefault(name, []).append((time.monotonic(), dict(details)))

    async def prepare(self) -> None:
        from _common import add_account, order_channel, xtream_id

        rt = self.runtime
        await add_account(rt, "bench", self.provider.base_url, "bench", "bench-secret")
        await rt.channel_sync.sync("bench")
        rt.epg.add("bench-guide", from_account="bench")
        await rt.epg.refresh("bench-guide")
        await asyncio.to_thread(rt.matching.run)
        for i in range(self.n):
            ids = [xtream_id(rt, "bench", 1000 + i), xtream_id(rt, "bench", 5000 + i)]
            self.numbers[i] = order_channel(rt, f"ch{i}.bench", ids)


async def _play(http: object, url: str, stop: asyncio.Event) -> None:
    import aiohttp

    assert isinstance(http, aiohttp.ClientSession)
    async with http.get(url) as response:
        async for _chunk in response.content.iter_any():
            if stop.is_set():
                return


async def _fault_trials(
    st: _Stack, base: str, http: object, slot: int, fault: Fault, trials: int
) -> list[float]:
    from _common import wait_until

    name = f"Channel {slot}"
    times: list[float] = []
    for _ in range(trials):
        st.switched.pop(name, None)
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            _play(http, f"{base}/auto/v{st.numbers[slot]}", stop), name=f"bench-client-{slot}"
        )
        await asyncio.sleep(2.0)  # play the primary a while (a real viewer, not a condition)
        t0 = time.monotonic()
        st.provider.set_fault(1000 + slot, fault)
        try:
            await wait_until(lambda: name in st.switched, within=60, interval=0.05)
            at, details = st.switched[name][0]
            if details.get("kind") == "failover":
                times.append(at - t0)
        except TimeoutError:
            print(f"  {name}: no failover within 60 s", flush=True)
        stop.set()
        task.cancel()
        st.provider.recover(1000 + slot)
        await wait_until(
            lambda: (
                not any(
                    s.channel.name == name and not s.ended.is_set()
                    for s in st.runtime.streams.sessions
                )
            ),
            within=10,
        )
    return times


async def e2e(args: argparse.Namespace) -> None:
    import aiohttp

    from _common import Summary, serve_app

    logging.getLogger("streamforge").setLevel(logging.ERROR)
    settings = load_settings(keyring=False)
    thresholds = {
        "black_seconds": settings.black_seconds,
        "frozen_seconds": settings.frozen_seconds,
        "silence_seconds": settings.silence_seconds,
        "component": HealthConfig().component_seconds,
        "lag": settings.live_lag_limit,
    }
    per_type = max(1, args.parallel)
    kinds = {k: v for k, v in FAULTS.items() if not args.faults or k in args.faults}
    fault_slots = len(kinds) * per_type if args.trials else 0
    healthy = args.healthy_channels if args.healthy_minutes > 0 else 0
    n = fault_slots + healthy
    with tempfile.TemporaryDirectory(prefix="sf-bench-health-") as tmp:
        async with MockProvider(_catalog(n), host="127.0.0.1", port=0) as provider:
            st = _Stack(provider, n, Path(tmp))
            try:
                await st.prepare()
                async with serve_app(st.runtime) as base, aiohttp.ClientSession() as http:
                    jobs = []
                    if fault_slots:
                        trials = -(-args.trials // per_type)
                        for k, (kind, (fault, _)) in enumerate(kinds.items()):
                            for j in range(per_type):
                                slot = k * per_type + j
                                jobs.append(
                                    (kind, _fault_trials(st, base, http, slot, fault, trials))
                                )
                    healthy_job = _healthy(
                        st, base, http, range(fault_slots, n), args.healthy_minutes
                    )
                    results = await asyncio.gather(healthy_job, *(job for _, job in jobs))
                    false_failovers, channel_minutes = results[0]
                    by_kind: dict[str, list[float]] = {}
                    for (kind, _), times in zip(jobs, results[1:], strict=True):
                        by_kind.setdefault(kind, []).extend(times)
            finally:
                await st.runtime.aclose()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    for kind, times in by_kind.items():
        if not times:
            print(f"{kind:<10} no failover measured")
            continue
        summary = Summary.of(times)
        limit = thresholds[FAULTS[kind][1]]
        target = limit + (0.5 if FAULTS[kind][1] == "lag" else 2.0)
        print(
            f"{kind:<10} fault -> backup's first byte: median {summary.median:6.2f} s  "
            f"p99 {summary.p99:6.2f} s  (n={summary.n}; threshold {limit:g} s, target "
            f"{target:g} s + onset <= 1 s)",
            flush=True,
        )
    if healthy:
        print(
            f"false failovers: {false_failovers} in {channel_minutes:.1f} channel-minutes "
            "of healthy content (bursty 4 s / 8 s, fades to black <= 2 s, stills <= 3 s)"
        )


async def _healthy(
    st: _Stack, base: str, http: object, slots: range, minutes: float
) -> tuple[int, float]:
    if not slots or minutes <= 0:
        return 0, 0.0
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    tasks = []
    for k, slot in enumerate(slots):
        if k % 3 == 0:
            st.provider.set_fault(1000 + slot, Fault(FaultKind.BURSTY, period=4.0))
        elif k % 3 == 1:
            st.provider.set_fault(1000 + slot, Fault(FaultKind.BURSTY, period=8.0))
        tasks.append(
            loop.create_task(
                _play(http, f"{base}/auto/v{st.numbers[slot]}", stop), name=f"bench-healthy-{slot}"
            )
        )
    started = loop.time()
    plain = [slot for k, slot in enumerate(slots) if k % 3 == 2]
    while loop.time() - started < minutes * 60:
        # a fade to black (<= 2 s: set, 1 s, heal at the next keyframe) and a still (<= 3 s)
        for slot in plain:
            st.provider.set_fault(1000 + slot, Fault(FaultKind.BLACK))
        await asyncio.sleep(1.0)
        for slot in plain:
            st.provider.recover(1000 + slot)
        await asyncio.sleep(8.0)
        for slot in plain:
            st.provider.set_fault(1000 + slot, Fault(FaultKind.FROZEN))
        await asyncio.sleep(2.0)
        for slot in plain:
            st.provider.recover(1000 + slot)
        await asyncio.sleep(9.0)
    elapsed = loop.time() - started
    stop.set()
    for task in tasks:
        task.cancel()
    names = {f"Channel {slot}" for slot in slots}
    false = sum(len(v) for k, v in st.switched.items() if k in names)
    return false, elapsed / 60 * len(slots)


def main() -> None:
    if "--e2e" in sys.argv:
        parser = argparse.ArgumentParser(description="end-to-end health benchmark")
        parser.add_argument("--e2e", action="store_true")
        parser.add_argument("--trials", type=int, default=20, help="per fault type (0: none)")
        parser.add_argument("--parallel", type=int, default=4, help="channels per fault type")
        parser.add_argument(
            "--faults", nargs="*", choices=sorted(FAULTS), help="only these fault types"
        )
        parser.add_argument("--healthy-channels", type=int, default=12)
        parser.add_argument("--healthy-minutes", type=float, default=2.5)
        asyncio.run(e2e(parser.parse_args()))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--gop", type=int, default=25, help="frames per keyframe (25 = 1 s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--grain", type=int, default=12, help="texture amplitude: 12 typical, 48 a worst case"
    )
    parser.add_argument(
        "--budget", type=float, default=HealthConfig().picture_cpu_budget, help="0 = unbounded"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (width, height, bitrate) in SIZES.items():
            t0 = time.monotonic()
            path = Path(tmp) / f"{name}.ts"
            data = encode(path, width, height, bitrate, args.seconds, args.gop, args.grain)
            print(f"{name}: {len(data) / 1e6:.1f} MB encoded in {time.monotonic() - t0:.1f} s")
            runs = [one_run(data, args.seconds, args.budget) for _ in range(args.runs)]
            mb = len(data) / 1e6

            def med(values: list[float]) -> float:
                return statistics.median(values)

            loop = med([r.loop_cpu for r in runs])
            worker = med([r.worker_cpu for r in runs])
            clock = med([r.clock_cpu for r in runs])
            splicer = med([r.splicer_cpu for r in runs])
            per = 100.0 / args.seconds
            print(
                f"  sampler: {per * (loop + worker):.2f} % of a core per channel "
                f"(loop {per * loop:.2f} %, worker {per * worker:.2f} %); "
                f"{runs[-1].pictures} pictures, {runs[-1].levels} audio levels, "
                f"{runs[-1].dropped} dropped"
            )
            print(
                f"  clock:   {per * clock:.3f} % of a core, {mb / clock:.0f} MB/s; "
                f"splicer {per * splicer:.3f} %, {mb / splicer:.0f} MB/s "
                f"(clock/splicer {clock / splicer:.2f})"
            )


if __name__ == "__main__":
    main()

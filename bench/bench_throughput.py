"""Fan-out throughput at 8 Mbit/s per client (run: .venv/bin/python bench/bench_throughput.py).

Two 8 Mbit/s feeds are measured:

* ``high`` — the mock's own 8 Mbit/s profile. Its picture compresses to
  about 0.35 Mbit/s and the rest (≈95 % of the packets) is null-packet
  stuffing, which StreamForge's splicer drops by design (null packets carry
  nothing). Through StreamForge a client therefore receives ~0.35 Mbit/s of
  an 8 Mbit/s upstream: this measures ingest + stuffing removal, not 8 Mbit/s
  of fan-out.
* ``dense`` — 8 Mbit/s with ≈7.4 Mbit/s of real payload: a 1280x720 noise
  picture encoded CBR by ffmpeg (libx264, ``nal-hrd=cbr``, AAC, ``muxrate``
  8 Mbit/s), written into the mock's media cache under a custom profile that
  the mock's config file declares, so the mock serves it like any clip. This
  measures fan-out at (nearly) 8 Mbit/s per client.

Three kinds of process, so that each one's CPU and RSS can be read on its own
from ``/proc/<pid>``:

* the **mock provider** — a child (``streamforge.mockprovider serve``) with a
  catalogue of 20 streams per profile and one account allowing 1,000
  connections, always on the same 127.0.0.1 port;
* **StreamForge** — a child serving the real app (uvicorn) over a data dir
  that this process prepared once (account synced, the account's guide
  imported, the 40 channels matched) and then closed;
* the **clients** — a spawned child running N aiohttp readers that count the
  bytes they receive and report their own CPU.

Every measurement starts fresh processes — the baseline a new mock, the
proxied run a new mock and a new StreamForge — so RSS growth is measured
from a clean idle process and not blurred by memory an earlier scenario left
in the allocator.

Scenarios (per profile): 1 channel x 100 clients and 20 channels x 5
clients, first as the baseline with the clients reading the mock directly
(``/live/U/P/ID.ts``), then through StreamForge (``/auto/v{n}``). After a
warm-up the clients measure a ``--window`` of seconds; CPU seconds and RSS
of every process are read at the start and end of that window (skew between
the readings is a few ms). StreamForge's ``/metrics`` counter of bytes read
from providers is read at the same two points.

Figures: delivered rate (and its ratio to the expected rate), CPU seconds
per Gbit delivered (= CPU cores busy per Gbit/s) of the serving process — StreamForge
through the proxy, the mock in the baseline — of the mock and the clients,
and memory per client (the serving process's RSS growth from idle to the
end of the window, divided by the clients; for StreamForge this includes
each session's fan-out ring of up to ``client_buffer_bytes``, 8 MB, so with
one session per 5 clients it is mostly per-session memory). For StreamForge
CPU is also given per Gbit moved (read from the provider + written to
clients), the fair figure for ``high`` where most input is dropped stuffing.
All three processes share the machine's 2 cores, so a run that is CPU-bound
shows a ratio under 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from _common import (
    ChildServer,
    MockServerProcess,
    add_account,
    build_runtime,
    cpu_seconds,
    free_port,
    machine_line,
    rss_bytes,
)
from streamforge.mockprovider import MediaLibrary, MediaProfile, default_profiles
from streamforge.runtime import Runtime

CHANNELS = 20
USER = "bench"
READ_SIZE = 1 << 16
PROFILES = ("high", "dense")
DENSE = MediaProfile(
    "dense",
    1280,
    720,
    fps=25,
    loop_frames=240,
    video_bitrate=7_000_000,
    audio_bitrate=96_000,
    mux_rate=8_000_000,
    service_id=4712,
    pmt_pid=0x0100,
    start_pid=0x0200,
    tone_hz=1000.0,
    hue=0,
)


def make_dense_clip(cache_dir: Path) -> MediaLibrary:
    """Encode the ``dense`` clip with ffmpeg into the media cache (once) and load it."""
    library = MediaLibrary(cache_dir, {**default_profiles(), "dense": DENSE})
    path = library.path_for(DENSE)
    if not path.exists():
        seconds = f"{DENSE.loop_frames / DENSE.fps:g}"
        tmp = path.with_suffix(".ffmpeg.ts")
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={DENSE.width}x{DENSE.height}:rate={DENSE.fps},"
                "noise=alls=30:allf=t+u",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={DENSE.tone_hz:g}:sample_rate=48000",
                "-t",
                seconds,
                "-frames:v",
                str(DENSE.loop_frames),
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                str(DENSE.fps),
                "-keyint_min",
                str(DENSE.fps),
                "-sc_threshold",
                "0",
                "-bf",
                "0",
                "-b:v",
                str(DENSE.video_bitrate),
                "-minrate",
                str(DENSE.video_bitrate),
                "-maxrate",
                str(DENSE.video_bitrate),
                "-bufsize",
                str(DENSE.video_bitrate // 5),
                "-x264-params",
                "nal-hrd=cbr",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                str(DENSE.audio_bitrate),
                "-ac",
                "2",
                "-f",
                "mpegts",
                "-muxrate",
                str(DENSE.mux_rate),
                "-mpegts_service_id",
                str(DENSE.service_id),
                "-mpegts_pmt_start_pid",
                str(DENSE.pmt_pid),
                "-mpegts_start_pid",
                str(DENSE.start_pid),
                str(tmp),
            ],
            check=True,
        )
        tmp.replace(path)
    library.load_sync("dense")
    return library


def payload_rate(clip_data: bytes, seconds: float) -> float:
    """Bytes per second of non-null packets in a loop of ``seconds``."""
    packets = len(clip_data) // 188
    null = sum(
        1
        for i in range(0, len(clip_data), 188)
        if ((clip_data[i + 1] & 0x1F) << 8 | clip_data[i + 2]) == 0x1FFF
    )
    return (packets - null) * 188 / seconds


# --------------------------------------------------------------------------- the client child
async def _swarm(
    urls: list[str], warmup: float, window: float, conn: multiprocessing.connection.Connection
) -> None:
    counts = [0] * len(urls)
    failed: list[str] = []
    settled = [0]
    all_reading = asyncio.Event()

    def settle() -> None:
        settled[0] += 1
        if settled[0] == len(urls):
            all_reading.set()

    async def reader(i: int, url: str, http: aiohttp.ClientSession) -> None:
        try:
            async with http.get(url) as resp:
                if resp.status != 200:
                    failed.append(f"{url.rsplit('/', 1)[-1]}: HTTP {resp.status}")
                    settle()
                    return
                while chunk := await resp.content.read(READ_SIZE):
                    if not counts[i]:
                        settle()
                    counts[i] += len(chunk)
        except aiohttp.ClientError as exc:
            failed.append(type(exc).__name__)
            if not counts[i]:
                settle()

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tasks = [
            asyncio.get_running_loop().create_task(reader(i, u, http), name=f"reader:{i}")
            for i, u in enumerate(urls)
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await all_reading.wait()
        await asyncio.sleep(warmup)  # measurement warm-up, not synchronisation
        t0, c0, b0 = time.perf_counter(), cpu_seconds(), list(counts)
        conn.send(("start", len(failed)))
        await asyncio.sleep(window)  # the measured window itself
        t1, c1 = time.perf_counter(), cpu_seconds()
        per_client = [b - a for a, b in zip(b0, counts, strict=True)]
        conn.send(("done", t1 - t0, c1 - c0, per_client, failed[:5]))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _client_main(
    urls: list[str], warmup: float, window: float, conn: multiprocessing.connection.Connection
) -> None:
    asyncio.run(_swarm(urls, warmup, window, conn))


@dataclass
class Result:
    label: str
    clients: int
    seconds: float
    delivered: int
    nominal_rate: float
    server_cpu: float
    mock_cpu: float
    client_cpu: float
    rss_per_client: float
    min_ratio: float
    failed: list[str]
    proxied: bool
    #: Bytes StreamForge read from providers in the window (its upstream_bytes counter).
    ingested: float = 0.0

    @property
    def gbit(self) -> float:
        return self.delivered * 8 / 1e9

    @property
    def ratio(self) -> float:
        return self.delivered / self.seconds / (self.nominal_rate * self.clients)

    def line(self) -> str:
        rate = self.delivered * 8 / self.seconds / 1e6
        gbit = self.gbit
        return (
            f"{self.label:<38} {rate:7.1f} Mbit/s ({self.ratio:4.2f} of expected, slowest "
            f"client {self.min_ratio:4.2f})  CPU s/Gbit: server {self.server_cpu / gbit:5.2f}"
            f"  mock {self.mock_cpu / gbit:5.2f}  clients {self.client_cpu / gbit:5.2f}"
            f"  RSS/client {self.rss_per_client / 1e3:7.0f} kB"
            + (
                f"  read from provider {self.ingested * 8 / self.seconds / 1e6:.1f} Mbit/s"
                if self.proxied
                else ""
            )
            + (f"  FAILED {self.failed}" if self.failed else "")
        )


async def _no_count() -> float:
    return 0.0


async def measure(
    label: str,
    urls: list[str],
    server_pid: int,
    mock_pid: int,
    nominal: float,
    warmup: float,
    window: float,
    ingested: Callable[[], Awaitable[float]] = _no_count,
) -> Result:
    """Run the client child against ``urls``; the serving process is ``server_pid``.
    ``ingested`` reads StreamForge's counter of bytes read from providers."""
    idle_rss = rss_bytes(server_pid)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_client_main, args=(urls, warmup, window, child), name="bench-clients", daemon=True
    )
    proc.start()
    try:
        if not await asyncio.to_thread(parent.poll, 60 + warmup):
            raise TimeoutError("clients did not start")
        _tag, failed_at_start = parent.recv()
        s0, m0, i0 = cpu_seconds(server_pid), cpu_seconds(mock_pid), await ingested()
        if not await asyncio.to_thread(parent.poll, window + 30):
            raise TimeoutError("clients did not finish")
        _tag, seconds, client_cpu, per_client, failed = parent.recv()
        s1, m1, i1 = cpu_seconds(server_pid), cpu_seconds(mock_pid), await ingested()
        rss = rss_bytes(server_pid)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        parent.close()
        child.close()
    server_cpu = s1 - s0
    return Result(
        label,
        len(urls),
        seconds,
        sum(per_client),
        nominal,
        server_cpu,
        m1 - m0,
        client_cpu,
        (rss - idle_rss) / len(urls),
        min(per_client) / seconds / nominal,
        failed or ([f"{failed_at_start} failed at start"] if failed_at_start else []),
        proxied=server_pid != mock_pid,
        ingested=i1 - i0,
    )


def catalog_config(path: Path) -> dict[str, list[int]]:
    """Write the mock's config: 20 streams per profile, one account; returns the ids."""
    ids = {
        name: list(range(1 + k * 100, 1 + k * 100 + CHANNELS)) for k, name in enumerate(PROFILES)
    }
    every = [(name, i) for name in PROFILES for i in ids[name]]
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
                        "name": f"UK: Bench {i} 4K",
                        "category_id": 1,
                        "epg_channel_id": f"bench{i}.uk",
                        "profile": name,
                        "num": i,
                    }
                    for name, i in every
                ],
                "guide_channels": [
                    {"epg_id": f"bench{i}.uk", "display_name": f"Bench {i}"} for _name, i in every
                ],
                "profiles": {"dense": {k: v for k, v in asdict(DENSE).items() if k != "name"}},
            }
        )
    )
    return ids


async def prepare(runtime: Runtime, base: str, ids: list[int]) -> dict[int, str]:
    """Sync, import the guide, match; returns stream id -> GuideNumber."""
    await add_account(runtime, USER, base, USER, USER)
    await runtime.channel_sync.sync(USER)
    runtime.epg.add("bench-guide", from_account=USER)
    await runtime.epg.refresh("bench-guide")
    await asyncio.to_thread(runtime.matching.run)
    numbers = {}
    for i in ids:
        number = runtime.channels.get(f"bench{i}.uk").guide_number
        if number is None:
            raise RuntimeError(f"bench{i}.uk got no GuideNumber")
        numbers[i] = number
    return numbers


async def upstream_bytes(http: aiohttp.ClientSession, base: str) -> float:
    """StreamForge's ``streamforge_upstream_bytes_total`` from its ``/metrics``."""
    async with http.get(f"{base}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("streamforge_upstream_bytes_total "):
            return float(line.split()[1])
    raise LookupError("streamforge_upstream_bytes_total not in /metrics")


async def scenario(
    name: str,
    streams: list[int],
    numbers: dict[int, str],
    rates: tuple[float, float],
    config: Path,
    cache_dir: Path,
    port: int,
    sf_dir: Path,
    args: argparse.Namespace,
) -> tuple[Result, Result]:
    """One scenario, both ways, each on freshly started processes (clean RSS baselines)."""
    wire, payload = rates
    with MockServerProcess(["--config", str(config)], cache_dir=cache_dir, port=port) as mock:
        direct = await measure(
            f"{name} direct (baseline)",
            [f"{mock.base_url}/live/{USER}/{USER}/{i}.ts" for i in streams],
            mock.pid,
            mock.pid,
            wire,
            args.warmup,
            args.window,
        )
        print(direct.line(), flush=True)
    with (
        MockServerProcess(["--config", str(config)], cache_dir=cache_dir, port=port) as mock,
        ChildServer(sf_dir) as server,
    ):
        async with aiohttp.ClientSession() as http:
            proxied = await measure(
                f"{name} via StreamForge",
                [f"{server.base_url}/auto/v{numbers[i]}" for i in streams],
                server.pid,
                mock.pid,
                payload,
                args.warmup,
                args.window,
                lambda: upstream_bytes(http, server.base_url),
            )
        print(proxied.line(), flush=True)
    return proxied, direct


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--window", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=100, help="clients of scenario 1")
    parser.add_argument("--per-channel", type=int, default=5, help="clients per channel, sc. 2")
    parser.add_argument("--profiles", nargs="+", choices=PROFILES, default=list(PROFILES))
    args = parser.parse_args()
    logging.getLogger("streamforge").setLevel(logging.ERROR)
    print(machine_line(), flush=True)
    media = await asyncio.to_thread(make_dense_clip, MediaLibrary().cache_dir)
    rates: dict[str, tuple[float, float]] = {}
    for name in args.profiles:
        clip = await asyncio.to_thread(media.load_sync, name)
        rates[name] = (clip.byte_rate, payload_rate(clip.data, clip.period))
        print(
            f"profile {name!r}: {clip.byte_rate * 8 / 1e6:.2f} Mbit/s on the wire, "
            f"{rates[name][1] * 8 / 1e6:.2f} Mbit/s without null packets",
            flush=True,
        )
    results: list[tuple[Result, Result]] = []
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sf-bench-throughput-") as tmp:
        config = Path(tmp) / "mock.json"
        sf_dir = Path(tmp) / "sf"
        ids = catalog_config(config)
        with MockServerProcess(
            ["--config", str(config)], cache_dir=media.cache_dir, port=port
        ) as mock:
            runtime = build_runtime(sf_dir)
            try:
                numbers = await prepare(
                    runtime, mock.base_url, [i for name in PROFILES for i in ids[name]]
                )
            finally:
                await runtime.aclose()
        for profile in args.profiles:
            first = ids[profile]
            for name, streams in (
                (f"{profile}: 1 ch x {args.clients}", [first[0]] * args.clients),
                (
                    f"{profile}: {CHANNELS} ch x {args.per_channel}",
                    [i for i in first for _ in range(args.per_channel)],
                ),
            ):
                results.append(
                    await scenario(
                        name,
                        streams,
                        numbers,
                        rates[profile],
                        config,
                        media.cache_dir,
                        port,
                        sf_dir,
                        args,
                    )
                )
    print()
    print(
        "ratio = delivered / expected; expected is the payload rate without null packets "
        "through StreamForge (it drops stuffing) and the wire rate for direct reads"
    )
    for proxied, direct in results:
        print(
            f"{proxied.label.replace(' via StreamForge', ''):<24} StreamForge CPU/Gbit "
            f"{proxied.server_cpu / proxied.gbit:.2f} s vs mock direct "
            f"{direct.server_cpu / direct.gbit:.2f} s (x"
            f"{(proxied.server_cpu / proxied.gbit) / (direct.server_cpu / direct.gbit):.1f}); "
            f"per Gbit in+out {proxied.server_cpu / in_out(proxied):.2f} s; "
            f"all processes {total_cpu(proxied):.2f} vs {total_cpu(direct):.2f} s/Gbit; "
            f"RSS/client {proxied.rss_per_client / 1e3:.0f} vs "
            f"{direct.rss_per_client / 1e3:.0f} kB; delivered {proxied.ratio:.2f} vs "
            f"{direct.ratio:.2f} of expected"
        )
    print(machine_line())


def in_out(result: Result) -> float:
    """Gbit StreamForge moved: read from the provider plus written to clients."""
    return (result.ingested * 8 / 1e9) + result.gbit


def total_cpu(result: Result) -> float:
    """CPU seconds per Gbit of every process involved (the mock is the server directly)."""
    mock = result.mock_cpu if result.proxied else 0.0
    return (result.server_cpu + mock + result.client_cpu) / result.gbit


if __name__ == "__main__":
    asyncio.run(main())

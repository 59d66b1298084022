"""Benchmark: steady-state cost of TsSplicer.push against a plain bytes copy.

Run: ``.venv/bin/python bench/bench_splicer.py [--seconds 10] [--runs 7]``

Encodes a realistic stream with FFmpeg (1280x720 H.264 at 6 Mbit/s + AAC, 25
fps, 2 s GOP) into a temporary directory, remuxes it onto other PIDs and
program number for a "backup", and measures three steady-state paths, each
for several upstream read sizes:

- ``first``: the session's first upstream (identity PID map, zero offset);
- ``rebased``: a backup after a switch (PIDs remapped, timestamps and PCRs
  rebased by a non-zero offset on every PES start and PCR packet);
- ``copy``: the baseline, ``bytearray(chunk)`` for the same chunks.

Each run pushes the whole file once.  Printed per path: the median over the
runs of bits pushed / CPU time of the (single) thread, i.e. throughput per
core, unaffected by other processes competing for the cores; the same with
wall time; the median and p99 of the per-push wall latency; and the ratio of
the CPU-time throughput to the copy's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streamforge.ts.splicer import TsSplicer


def encode(directory: Path, seconds: float) -> tuple[bytes, bytes]:
    primary = directory / "primary.ts"
    backup = directory / "backup.ts"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "50",
            "-b:v", "6M", "-maxrate", "6M", "-bufsize", "3M",
            "-c:a", "aac", "-b:a", "128k",
            "-f", "mpegts", str(primary),
        ],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(primary),
            "-c", "copy", "-mpegts_service_id", "77", "-mpegts_pmt_start_pid", "0x1500",
            "-mpegts_start_pid", "0x300", "-output_ts_offset", "1234.5",
            "-f", "mpegts", str(backup),
        ],
        check=True,
    )  # fmt: skip
    return primary.read_bytes(), backup.read_bytes()


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def timed(step: Callable[[bytes], object], chunks: list[bytes]) -> tuple[float, float, list[float]]:
    """Wall time, CPU time of this thread, and per-push wall latencies."""
    latencies = []
    clock = time.perf_counter
    cpu_start = time.thread_time()
    start = clock()
    for chunk in chunks:
        t0 = clock()
        step(chunk)
        latencies.append(clock() - t0)
    return clock() - start, time.thread_time() - cpu_start, latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def measure(
    name: str, make: Callable[[], Callable[[bytes], object]], chunks: list[bytes], runs: int
) -> float:
    """Print the figures of one path; return its median CPU-time throughput (Gbit/s)."""
    total_bits = sum(len(c) for c in chunks) * 8
    wall_rates, cpu_rates, lat = [], [], []
    for _ in range(runs):
        step = make()
        wall, cpu, latencies = timed(step, chunks)
        wall_rates.append(total_bits / wall / 1e9)
        cpu_rates.append(total_bits / max(cpu, 1e-9) / 1e9)
        lat += latencies
    cpu_rate = statistics.median(cpu_rates)
    print(
        f"  {name:8s} {cpu_rate:8.2f} Gbit/s per core (CPU time)"
        f"  {statistics.median(wall_rates):8.2f} Gbit/s wall"
        f"   push median {statistics.median(lat) * 1e6:7.1f} us  p99 {p99(lat) * 1e6:7.1f} us"
    )
    return cpu_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="16384,65536,262144")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is needed to encode the benchmark stream")
    with tempfile.TemporaryDirectory() as tmp:
        primary, backup = encode(Path(tmp), args.seconds)
    mbit = len(primary) * 8 / args.seconds / 1e6
    print(f"stream: {len(primary) / 1e6:.1f} MB, {mbit:.1f} Mbit/s, {args.runs} runs per figure")

    def first_stream() -> Callable[[bytes], object]:
        splicer = TsSplicer()
        splicer.push(primary[: 188 * 2000])  # learn the session before timing
        return splicer.push

    def rebased_stream() -> Callable[[bytes], object]:
        splicer = TsSplicer()
        splicer.push(primary)
        splicer.switch()
        splicer.push(backup[: 188 * 2000])  # cut over; timing starts in steady state
        return splicer.push

    for size in (int(s) for s in args.sizes.split(",")):
        print(f"read size {size // 1024} KiB:")
        copy = measure("copy", lambda: bytearray, chunks_of(primary, size), args.runs)
        first = measure("first", first_stream, chunks_of(primary, size), args.runs)
        rebased = measure("rebased", rebased_stream, chunks_of(backup, size), args.runs)
        print(f"  ratio to copy: first {first / copy:.3f}, rebased {rebased / copy:.3f}")


if __name__ == "__main__":
    main()

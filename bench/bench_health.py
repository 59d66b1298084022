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
The end-to-end part (the checks inside a live channel session) is not here
yet: it lands with the session integration.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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
        grain = np.random.default_rng(1).integers(0, max(1, grain), (height, width))
        luma = ((xs + ys) % 200 + grain).astype(np.uint8)
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


def main() -> None:
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

"""Benchmark the streaming XMLTV writer on a large synthetic guide.

1,000 channels x 7 days of hourly programmes (168,000 programmes) are
generated lazily, as the database would stream them, and written with
:func:`iter_xmltv` (and once more through :func:`gzip_chunks`).  Reported as
median/p99 over the runs:

* total time to produce the whole document (input generation included),
* the time just to generate the input objects, and so the writer's own share,
* latency until the first chunk,
* peak traced-memory growth (tracemalloc) for the full document and for a
  guide a quarter of the size: a streaming writer shows the same small
  figure for both, i.e. a ratio near 1.

Targets: total < 3 s, first chunk < 100 ms, memory flat.

Run: ``.venv/bin/python bench/bench_xmltv_writer.py [--runs N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from streamforge.outputs.xmltv_writer import (
    ChannelOut,
    EpisodeNum,
    LangText,
    ProgrammeOut,
    gzip_chunks,
    iter_xmltv,
)

START = datetime(2026, 11, 24, tzinfo=UTC)
TITLES = ("Evening News", "Tom & Jerry", "الأخبار", "חדשות", "Film: <The Return> 🎬", "Sport")


def channels(count: int) -> Iterator[ChannelOut]:
    for index in range(count):
        yield ChannelOut(
            id=f"channel{index}.example",
            display_names=(LangText(f"Channel {index} HD", "en"),),
            icon=f"http://img.example/{index}.png",
        )


def programmes(count: int, days: int) -> Iterator[ProgrammeOut]:
    # Hourly slots: 24 programmes per channel-day, 1,000 x 7 -> 168,000.
    hour = timedelta(hours=1)
    slot_starts = [(START + n * hour, START + (n + 1) * hour) for n in range(24 * days)]
    for index in range(count):
        channel_id = f"channel{index}.example"
        for slot, (start, stop) in enumerate(slot_starts):
            title = TITLES[(index + slot) % len(TITLES)]
            yield ProgrammeOut(
                channel=channel_id,
                start=start,
                stop=stop,
                titles=(LangText(title, "en"),),
                descs=(LangText(f"Episode {slot} of {title}: a description & more.", "en"),),
                categories=(LangText("News", "en"),),
                episode_nums=(EpisodeNum(f"0.{slot % 20}.", "xmltv_ns"),),
            )


def run_once(channel_count: int, days: int, gzip: bool) -> tuple[float, float, int, int]:
    """Return (total s, first chunk s, bytes, programmes)."""
    produced = {"programmes": 0}

    def counted() -> Iterator[ProgrammeOut]:
        for programme in programmes(channel_count, days):
            produced["programmes"] += 1
            yield programme

    started = time.perf_counter()
    stream = iter_xmltv(channels(channel_count), counted())
    if gzip:
        stream = gzip_chunks(stream)
    first = next(stream)
    first_at = time.perf_counter() - started
    size = len(first)
    for chunk in stream:
        size += len(chunk)
    return time.perf_counter() - started, first_at, size, produced["programmes"]


def peak_memory(channel_count: int, days: int) -> int:
    """Peak traced bytes while writing (input generation included)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    for _chunk in iter_xmltv(channels(channel_count), programmes(channel_count, days)):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base


def input_only(channel_count: int, days: int) -> float:
    """Seconds spent only creating the input dataclasses (the caller's cost)."""
    started = time.perf_counter()
    for _channel in channels(channel_count):
        pass
    for _programme in programmes(channel_count, days):
        pass
    return time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()

    baseline = statistics.median(input_only(args.channels, args.days) for _ in range(args.runs))
    print(f"input generation alone: median {baseline:.3f} s (included in the totals below)")
    for gzip in (False, True):
        totals: list[float] = []
        firsts: list[float] = []
        size = count = 0
        for _ in range(args.runs):
            total, first, size, count = run_once(args.channels, args.days, gzip)
            totals.append(total)
            firsts.append(first)
        label = "xml.gz" if gzip else "xml   "
        print(
            f"{label} {args.channels} channels, {count} programmes, {size / 1e6:.1f} MB: "
            f"total median {statistics.median(totals):.3f} s p99 {pct(totals, 0.99):.3f} s "
            f"(target < 3 s, {statistics.median(totals) / 3.0:.2f}x of budget); "
            f"first chunk median {statistics.median(firsts) * 1e3:.2f} ms "
            f"p99 {pct(firsts, 0.99) * 1e3:.2f} ms (target < 100 ms); "
            f"writer share {statistics.median(totals) - baseline:.3f} s, "
            f"{count / (statistics.median(totals) - baseline):,.0f} programmes/s"
        )

    full = peak_memory(args.channels, args.days)
    quarter = peak_memory(max(1, args.channels // 4), args.days)
    print(
        f"peak traced memory growth: full guide {full / 1024:.0f} KiB, quarter guide "
        f"{quarter / 1024:.0f} KiB, ratio {full / max(quarter, 1):.2f} (flat = ~1)"
    )


if __name__ == "__main__":
    main()

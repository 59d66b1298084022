"""XMLTV import throughput and memory: 2,000 channels x 7 days (~300,000 programmes).

Run: ``.venv/bin/python bench/bench_xmltv_parse.py [--channels 2000] [--days 7] [--repeats 3]``

A guide is generated into a temporary directory (plain XML and a gzip copy),
with programmes of 20 to 40 minutes, titles, sub-titles, descriptions,
categories, episode numbers, ratings and credits, the way commercial guides
look. Each file is parsed with :class:`~streamforge.epg.xmltv_parse.XmltvReader`
(window disabled so every programme is yielded).

Prints, per file: median/p99 parse time over the repeats, programmes/s and
MB/s, then peak memory of one run: the Python heap (tracemalloc) and the
growth of the resident set (sampled from ``/proc/self/statm``, which also
covers libxml2's C allocations), next to the file size, plus the gzip/plain
time ratio.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from streamforge.epg.xmltv_parse import ProgrammeRecord, XmltvReader
from streamforge.epg.xmltv_time import format_xmltv_time

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
WORDS = [
    "the",
    "of",
    "night",
    "city",
    "house",
    "secret",
    "last",
    "world",
    "life",
    "river",
    "storm",
    "garden",
    "king",
    "queen",
    "doctor",
    "summer",
    "winter",
    "island",
    "road",
    "family",
    "murder",
    "love",
    "war",
    "island",
    "kitchen",
]


def write_guide(
    handle: BinaryIO, channels: int, days: int, rng: random.Random, start: datetime = NOW
) -> int:
    """Write the guide from ``start`` on; returns the number of programmes."""
    handle.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n')
    handle.write(b'<tv generator-info-name="streamforge-bench">\n')
    for c in range(channels):
        handle.write(
            f'  <channel id="ch{c}.bench"><display-name lang="en">Channel {c}</display-name>'
            f"<display-name>{100 + c}</display-name>"
            f'<icon src="http://img.example/{c}.png"/></channel>\n'.encode()
        )
    count = 0
    end = start + timedelta(days=days)
    for c in range(channels):
        moment = start
        while moment < end:
            stop = moment + timedelta(minutes=rng.choice((30, 45, 60, 90, 120)))
            title = " ".join(rng.choices(WORDS, k=3)).title()
            desc = " ".join(rng.choices(WORDS, k=25))
            handle.write(
                f'  <programme start="{format_xmltv_time(moment)}" '
                f'stop="{format_xmltv_time(stop)}" channel="ch{c}.bench">'
                f'<title lang="en">{title}</title>'
                f'<sub-title lang="en">Episode {count % 13}</sub-title>'
                f'<desc lang="en">{desc}.</desc>'
                f"<credits><actor>A. Actor</actor><presenter>P. Host</presenter></credits>"
                f'<category lang="en">Drama</category>'
                f'<episode-num system="xmltv_ns">{count % 9}.{count % 13}.</episode-num>'
                f'<rating system="VCHIP"><value>TV-PG</value></rating>'
                f"</programme>\n".encode()
            )
            moment = stop
            count += 1
    handle.write(b"</tv>\n")
    return count


def _resident() -> int:
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def parse_once(path: Path) -> tuple[float, int]:
    """Parse the whole file; returns (seconds, programmes)."""
    started = time.perf_counter()
    programmes = 0
    for record in XmltvReader(path, now=NOW, window=None):
        programmes += isinstance(record, ProgrammeRecord)
    return time.perf_counter() - started, programmes


def memory_once(path: Path) -> tuple[int, int]:
    """(tracemalloc peak, resident-set growth) of one parse."""
    baseline = _resident()
    resident_peak = baseline
    tracemalloc.start()
    for index, _ in enumerate(XmltvReader(path, now=NOW, window=None)):
        if index % 5000 == 0:
            resident_peak = max(resident_peak, _resident())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, resident_peak - baseline


def report(label: str, path: Path, repeats: int) -> float:
    """Time and measure one file; returns the median time."""
    size = path.stat().st_size
    times = []
    programmes = 0
    for _ in range(repeats):
        seconds, programmes = parse_once(path)
        times.append(seconds)
    times.sort()
    median = statistics.median(times)
    p99 = times[max(0, int(len(times) * 0.99) - 1)] if len(times) > 1 else times[0]
    heap, resident = memory_once(path)
    print(
        f"{label}: {size / 1e6:.1f} MB, {programmes} programmes; parse median {median:.2f} s, "
        f"p99 {p99:.2f} s ({programmes / median:,.0f} programmes/s, {size / 1e6 / median:.1f} MB/s)"
    )
    print(
        f"{label}: peak Python heap {heap / 1e6:.1f} MB, resident growth {resident / 1e6:.1f} MB "
        f"(file is {size / 1e6:.0f} MB)"
    )
    return median


def main(argv: list[str] | None = None) -> int:
    """Generate the guide, parse it plain and gzipped, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="sf-bench-") as tmp:
        plain = Path(tmp) / "guide.xml"
        started = time.perf_counter()
        with plain.open("wb") as handle:
            count = write_guide(handle, args.channels, args.days, rng)
        print(f"generated {count} programmes in {time.perf_counter() - started:.1f} s")
        packed = Path(tmp) / "guide.bin"  # gzip under a neutral name: detected by content
        with plain.open("rb") as source, gzip.open(packed, "wb", compresslevel=1) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
        plain_time = report("plain", plain, args.repeats)
        gzip_time = report("gzip ", packed, args.repeats)
        print(f"gzip/plain time ratio: {gzip_time / plain_time:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

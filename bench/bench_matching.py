"""Matching throughput: 60,000 provider streams against 5,000 guide channels.

Run: ``.venv/bin/python bench/bench_matching.py [--streams 60000] [--channels 5000]``

The guide and the streams are generated from a fixed seed: guide channels are
brand + genre (+ number, + region, + ``+1``) names with one to three display
names; streams are drawn from the guide's channels (and from channels the
guide lacks) and decorated the way panels do (``UK:``, ``|US|``, ``[DE]``,
``FHD``, ``HEVC``, ``ᴴᴰ``…), spread over five accounts, some with an
``epg_channel_id``. The target is under 10 s on two cores.

Prints the median of the full run (index build + matching) over the repeats,
per-stream latency median/p99, and peak memory (tracemalloc peak of the
Python heap during one run, and the growth of the process's max RSS).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
import tracemalloc

from streamforge.matching.matcher import (
    ChannelMatcher,
    GuideChannel,
    ProviderStream,
    match_streams,
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


BRANDS = _words(
    """Sky BBC ITV Fox CNN ESPN HBO Discovery Nat Geo Eurosport TNT Canal RTL ZDF Sat
Pro Kabel Nick Disney Cartoon Comedy History Paramount MTV VH Bravo Syfy Lifetime Food
Travel Golf Tennis Premier Star Zee Sony Colors Rai Mediaset TVE Antena Telemundo Univision
Globo Record SBT Band TV Polsat TVN Nova Prima Markiza Duna Pink Arena HRT RTS TRT Show Kanal
Star Channel Alpha Mega Skai Ant Open Dubai Abu MBC Rotana OSN BeIN SuperSport DStv Astro
Hotstar Asianet Sun Gemini Maa Zee Jaya Vijay Kairali Surya Udaya Star Plus Life Ok Bindass
Movies Now Romedy Mnx Pix Epic Sab Hungama Pogo Sonic Discovery Kids Animax Boomerang Baby
First Gospel God Daystar Trinity Ewtn Hope Angel Peace Noor Iqra Quran Sunna Huda Madani
Ary Geo Hum Express Dunya Samaa Aaj Dawn Bol Neo Ptv Qtv Atn Ntv Rtv Boishakhi Channel Gazi
Somoy Jamuna Ekattor Independent Maasranga Deepto Nagorik Bangla Vision Sangsad Desh"""
)

GENRES = _words(
    """News Sports Movies Cinema Action Comedy Drama Family Kids Music Docs Life Style
Food Travel Science History Nature Crime Thriller Horror Classic Gold Max Plus Prime One
Two Three Extra Premiere Select Showcase Arena Football Cricket Golf Racing Fight Boxing
Wrestling Events Live World International Africa Asia Europe America Latino Arabia"""
)

REGIONS = ["East", "West", "London", "North", "South", "Scotland"]
PREFIXES = ["UK: ", "|US| ", "[DE] ", "US - ", "DE | ", "FR: ", "AR: ", "IN: ", "", "VIP: "]
TAGS = ["", " HD", " FHD", " 4K", " SD", " HEVC", " ᴴᴰ", " 1080p", " HD ◉", " UHD 50FPS"]


def make_guide(count: int, rng: random.Random) -> list[GuideChannel]:
    """``count`` distinct guide channels with one to three display names."""
    names: dict[str, None] = {}
    while len(names) < count:
        name = f"{rng.choice(BRANDS)} {rng.choice(GENRES)}"
        roll = rng.random()
        if roll < 0.25:
            name += f" {rng.randint(1, 9)}"
        elif roll < 0.35:
            name += f" {rng.choice(REGIONS)}"
        if rng.random() < 0.08:
            name += " +1"
        names.setdefault(name, None)
    guide = []
    for index, name in enumerate(names):
        display = [name]
        if rng.random() < 0.4:
            display.append(f"{name} HD")
        if rng.random() < 0.2:
            display.append(str(100 + index))
        guide.append(GuideChannel(f"{name.replace(' ', '').replace('+', 'plus')}.{index}", display))
    return guide


def make_streams(guide: list[GuideChannel], count: int, rng: random.Random) -> list[ProviderStream]:
    """``count`` decorated provider streams over five accounts."""
    streams = []
    for index in range(count):
        if rng.random() < 0.15:
            base = f"{rng.choice(BRANDS)} {rng.choice(GENRES)} {rng.choice(GENRES)}"
            epg = None
        else:
            channel = rng.choice(guide)
            base = channel.display_names[0]
            epg = channel.id if rng.random() < 0.2 else None
            if rng.random() < 0.1:  # a typo
                cut = rng.randrange(len(base))
                base = base[:cut] + base[cut + 1 :]
        account = index % 5
        name = f"{rng.choice(PREFIXES)}{base}{rng.choice(TAGS)}"
        streams.append(ProviderStream(index, name, epg, account, account, None))
    return streams


def run(guide: list[GuideChannel], streams: list[ProviderStream]) -> tuple[float, float, int]:
    """One full matching run; returns (wall seconds, CPU seconds, number of mappings)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    outcome = match_streams(guide, streams)
    return time.perf_counter() - started, time.process_time() - cpu_started, len(outcome.matches)


def latencies(guide: list[GuideChannel], streams: list[ProviderStream]) -> list[float]:
    """Per-stream matching time in microseconds (cold index, so caches fill as in real use)."""
    matcher = ChannelMatcher(guide)
    samples = []
    for stream in streams:
        started = time.perf_counter()
        match_streams(matcher, [stream])
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main(argv: list[str] | None = None) -> int:
    """Generate, match, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=60_000)
    parser.add_argument("--channels", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    guide = make_guide(args.channels, rng)
    streams = make_streams(guide, args.streams, rng)
    names = sum(len(channel.display_names) for channel in guide)
    print(f"guide: {len(guide)} channels / {names} display names; streams: {len(streams)}")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    cpu_times = []
    mapped = 0
    for _ in range(args.repeats):
        seconds, cpu_seconds, mapped = run(guide, streams)
        times.append(seconds)
        cpu_times.append(cpu_seconds)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    median = statistics.median(times)
    print(
        f"full run (index + match): median {median:.2f} s over {args.repeats} runs "
        f"(min {min(times):.2f}, max {max(times):.2f}); mapped {mapped}/{len(streams)}"
    )
    print(
        f"CPU time: median {statistics.median(cpu_times):.2f} s "
        "(wall time exceeds it when other processes compete for the cores)"
    )
    print(
        f"target 10 s: ratio {median / 10:.2f} of the budget; "
        f"{len(streams) / median:,.0f} streams/s"
    )

    samples = sorted(latencies(guide, streams))
    p99 = samples[int(len(samples) * 0.99) - 1]
    print(f"per-stream latency: median {statistics.median(samples):.1f} us, p99 {p99:.1f} us")

    tracemalloc.start()
    run(guide, streams)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak Python heap during a run (tracemalloc): {peak / 1e6:.1f} MB")
    print(
        f"max RSS growth over the timed runs: {(rss_after - rss_before) / 1024:.1f} MB "
        f"(max RSS {rss_after / 1024:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Plex-facing outputs over HTTP (run: .venv/bin/python bench/bench_outputs.py).

The database is a benchmark fixture filled directly with SQLAlchemy Core bulk
inserts (one account, its provider streams, one guide source, guide channels
with GuideNumbers, one mapping per channel, and a week of programmes) — no
provider, no sync, no matching. The real app then serves it with uvicorn on
127.0.0.1 from a *child process*, so the server's RSS and CPU are read from
``/proc/<pid>`` apart from this process, which only runs the aiohttp client.

1. ``/epg.xml`` for 1,000 channels x 7 days (≈170,000 programmes):
   time to first body byte and full body time over ``--epg-runs`` requests,
   the body size and programme count, the server's RSS before/after and its
   peak (``VmHWM``), and its CPU seconds per request.
2. 1,000 more channels (no programmes) are added, then ``/lineup.json`` and
   ``/playlist.m3u`` for 2,000 channels are timed over ``--small-runs``
   requests each (target: under 50 ms), with the server's CPU per request
   (``/proc`` ticks of 10 ms, so single requests read as 0, 10, 20 ms …;
   the median is still meaningful on a busy machine, where wall time is not).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import Connection

from _common import (
    ChildServer,
    build_runtime,
    cpu_seconds,
    machine_line,
    mb,
    peak_rss_bytes,
    report,
    rss_bytes,
)
from streamforge.db.models import (
    Account,
    ChannelMapping,
    Programme,
    XmltvChannel,
    XmltvSource,
    XtreamChannel,
)

GUIDE_CHANNELS = 1_000
LINEUP_CHANNELS = 2_000
DAYS = 7
#: Programme lengths in minutes, cycled; they average an hour (≈168 per channel-week).
LENGTHS = (30, 60, 90, 45, 75, 60)
GENRES = ("News", "Sport", "Drama", "Documentary", "Comedy", "Film", "Kids", "Music")
_CHUNK = 20_000
TARGET_SMALL = 0.050


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _bulk(conn: Connection, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _CHUNK):
        conn.execute(insert(_table(model)), rows[start : start + _CHUNK])


def _ids(conn: Connection, model: Any) -> list[int]:
    return [int(i) for i in conn.execute(select(model.id).order_by(model.id)).scalars()]


def add_channels(
    conn: Connection, account_id: int, source_id: int, first: int, count: int, now: datetime
) -> list[int]:
    """``count`` provider streams, guide channels (GuideNumber ``first+i+1``) and mappings."""
    numbers = range(first, first + count)
    _bulk(
        conn,
        XtreamChannel,
        [
            {
                "account_id": account_id,
                "stream_id": 10_000 + i,
                "name": f"UK: Bench Channel {i + 1} HD",
                "icon": f"http://logos.invalid/{i}.png",
                "epg_channel_id": f"bench{i + 1}.uk",
                "category_id": str(1 + i % 8),
                "qualities": {
                    "tier": "HD" if i % 3 else "FHD",
                    "rank": 2,
                    "tags": [],
                    "base_name": f"Bench Channel {i + 1}",
                    "country": "UK",
                    "category": f"UK | {GENRES[i % len(GENRES)]}",
                },
                "added_at": now,
            }
            for i in numbers
        ],
    )
    _bulk(
        conn,
        XmltvChannel,
        [
            {
                "source_id": source_id,
                "xmltv_id": f"bench{i + 1}.uk",
                "display_name": f"Bench Channel {i + 1}",
                "display_names": [f"Bench Channel {i + 1}", f"BENCH {i + 1}"],
                "icon": f"http://logos.invalid/guide/{i}.png",
                "lcn": str(i + 1),
                "is_enabled": True,
                "guide_number": str(i + 1),
            }
            for i in numbers
        ],
    )
    xtream_ids = _ids(conn, XtreamChannel)[first : first + count]
    guide_ids = _ids(conn, XmltvChannel)[first : first + count]
    _bulk(
        conn,
        ChannelMapping,
        [
            {
                "xmltv_channel_id": g,
                "xtream_channel_id": x,
                "match_confidence": 1.0,
                "is_manual": False,
                "is_primary": True,
                "stream_priority": 0,
            }
            for g, x in zip(guide_ids, xtream_ids, strict=True)
        ],
    )
    return guide_ids


def add_programmes(conn: Connection, guide_ids: list[int], now: datetime) -> int:
    """A week of back-to-back programmes for each guide channel; returns how many."""
    origin = now.replace(minute=0, second=0, microsecond=0)
    end = origin + timedelta(days=DAYS)
    total = 0
    rows: list[dict[str, Any]] = []
    for n, channel_id in enumerate(guide_ids):
        start, k = origin, n
        while start < end:
            stop = start + timedelta(minutes=LENGTHS[k % len(LENGTHS)])
            genre = GENRES[(n + k) % len(GENRES)]
            rows.append(
                {
                    "xmltv_channel_id": channel_id,
                    "start": start,
                    "stop": stop,
                    "title": f"{genre} Hour {k % 97}",
                    "sub_title": f"Episode {k % 13 + 1}" if k % 2 else None,
                    "description": f"A {genre.lower()} programme on channel {n + 1}, part {k}. "
                    "Presenters discuss the day's events with guests & experts.",
                    "categories": [genre],
                    "episode_num": [["xmltv_ns", f"{k % 5}.{k % 13}.0/1"]] if k % 2 else [],
                    "icon": None,
                    "rating": [["VCHIP", "TV-PG"]] if k % 4 == 0 else [],
                    "previously_shown": k % 3 == 0,
                    "is_new": k % 7 == 0,
                    "extra": {},
                }
            )
            start, k = stop, k + 1
        if len(rows) >= _CHUNK:
            _bulk(conn, Programme, rows)
            total += len(rows)
            rows = []
    _bulk(conn, Programme, rows)
    return total + len(rows)


def populate(data_dir: Path) -> tuple[int, Any]:
    """Create the DB with 1,000 guided channels; returns (programmes, a closure adding 1,000)."""
    runtime = build_runtime(data_dir)
    now = datetime.now(UTC)
    try:
        with runtime.db.engine.begin() as conn:
            conn.execute(
                insert(_table(Account)),
                [
                    {
                        "name": "bench",
                        "server_url": "http://127.0.0.1:9",
                        "username": "bench",
                        "password_encrypted": b"not-a-real-secret",
                        "status": "Active",
                        "is_active": True,
                        "max_connections": 4,
                        "allowed_output_formats": ["ts"],
                        "created_at": now,
                    }
                ],
            )
            conn.execute(
                insert(_table(XmltvSource)),
                [
                    {
                        "name": "bench-guide",
                        "kind": "url",
                        "location": "http://127.0.0.1:9/g.xml",
                        "is_active": True,
                        "last_report": {},
                        "created_at": now,
                    }
                ],
            )
            account_id = int(conn.execute(select(func.max(Account.id))).scalar_one())
            source_id = int(conn.execute(select(func.max(XmltvSource.id))).scalar_one())
            guide_ids = add_channels(conn, account_id, source_id, 0, GUIDE_CHANNELS, now)
            programmes = add_programmes(conn, guide_ids, now)
    finally:
        runtime.close()

    def add_rest() -> None:
        more = build_runtime(data_dir)
        try:
            with more.db.engine.begin() as conn:
                add_channels(
                    conn,
                    account_id,
                    source_id,
                    GUIDE_CHANNELS,
                    LINEUP_CHANNELS - GUIDE_CHANNELS,
                    now,
                )
        finally:
            more.close()

    return programmes, add_rest


async def fetch(
    http: aiohttp.ClientSession, url: str, count_tag: bytes = b""
) -> tuple[float, float, int, int]:
    """(time to first body byte, full time, body bytes, occurrences of ``count_tag``)."""
    start = time.perf_counter()
    first = 0.0
    size = tags = 0
    tail = b""
    async with http.get(url) as resp:
        resp.raise_for_status()
        async for chunk in resp.content.iter_any():
            if not first:
                first = time.perf_counter() - start
            size += len(chunk)
            if count_tag:
                window = tail + chunk
                tags += window.count(count_tag)
                tail = window[-(len(count_tag) - 1) :]
    return first, time.perf_counter() - start, size, tags


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epg-runs", type=int, default=10)
    parser.add_argument("--small-runs", type=int, default=50)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="sf-bench-outputs-") as tmp:
        data_dir = Path(tmp)
        t0 = time.perf_counter()
        programmes, add_rest = await asyncio.to_thread(populate, data_dir)
        print(
            f"fixture: {GUIDE_CHANNELS} channels, {programmes} programmes inserted in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        with ChildServer(data_dir) as server:
            pid = server.pid
            async with aiohttp.ClientSession() as http:
                rss_start = rss_bytes(pid)
                await fetch(http, f"{server.base_url}/lineup.json")
                rss_before = rss_bytes(pid)
                ttfb, full, cpu = [], [], []
                size = count = 0
                for _ in range(args.epg_runs):
                    c0 = cpu_seconds(pid)
                    first, total, size, count = await fetch(
                        http, f"{server.base_url}/epg.xml", b"<programme "
                    )
                    cpu.append(cpu_seconds(pid) - c0)
                    ttfb.append(first)
                    full.append(total)
                rss_after = rss_bytes(pid)
                peak = peak_rss_bytes(pid)
                print(f"/epg.xml: {count} programmes, {size / 1e6:.1f} MB per body")
                report("/epg.xml time to first byte", ttfb)
                epg_full = report("/epg.xml full body", full, unit="s", scale=1.0)
                report("/epg.xml server CPU per request", cpu, unit="s", scale=1.0)
                print(
                    f"{'/epg.xml throughput (median)':<46} "
                    f"{size / epg_full.median / 1e6:.1f} MB/s, "
                    f"{count / epg_full.median:.0f} programmes/s"
                )
                print(
                    f"{'server RSS: idle / before / after epg runs':<46} {mb(rss_start)} / "
                    f"{mb(rss_before)} / {mb(rss_after)} (growth {mb(rss_after - rss_before)}"
                    f"); peak {mb(peak)}",
                    flush=True,
                )

                await asyncio.to_thread(add_rest)
                for path in ("/lineup.json", "/playlist.m3u"):
                    times, cpu = [], []
                    first_body = 0
                    for _ in range(args.small_runs):
                        c0 = cpu_seconds(pid)
                        _first, total, body, _n = await fetch(http, f"{server.base_url}{path}")
                        cpu.append(cpu_seconds(pid) - c0)
                        times.append(total)
                        first_body = body
                    s = report(f"{path} ({LINEUP_CHANNELS} ch, {first_body / 1e3:.0f} kB)", times)
                    report(f"{path} server CPU per request", cpu)
                    print(
                        f"{'':<46} target < {TARGET_SMALL * 1000:.0f} ms: median "
                        f"{s.median / TARGET_SMALL:.2f} of budget, p99 "
                        f"{s.p99 / TARGET_SMALL:.2f} "
                        f"({'met' if s.p99 < TARGET_SMALL else 'MISSED at p99'})",
                        flush=True,
                    )
                print(f"{'server RSS at the end':<46} {mb(rss_bytes(pid))}")
    print(machine_line())


if __name__ == "__main__":
    asyncio.run(main())

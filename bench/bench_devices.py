"""Per-device outputs over HTTP (run: .venv/bin/python bench/bench_devices.py).

The fixture of ``bench_outputs.py`` (1,000 guide channels with a week of
programmes, filled with bulk inserts) is served by the real app in a child
process; with the default ``channels_per_device`` of 480 that is three devices
(480, 480, 40 channels). Timed over ``--runs`` requests each, after one
request that persists the split and one that renders the guide into the cache:

* ``/devices/2/lineup.json`` (480 channels);
* ``/devices/2/epg.xml`` warm (480 channels x 7 days, served from the cache);
* ``/lineup.json`` (device 1, 480 channels) for comparison.

Prints the load average before and after, since the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp

from _common import ChildServer, machine_line, report
from bench_outputs import fetch, populate


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="sf-bench-devices-") as tmp:
        data_dir = Path(tmp)
        programmes, _add_rest = await asyncio.to_thread(populate, data_dir)
        print(f"fixture: 1000 channels, {programmes} programmes", flush=True)
        with ChildServer(data_dir) as server:
            base = server.base_url
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/devices/3/lineup.json") as resp:
                    resp.raise_for_status()
                    print(f"device 3: {len(await resp.json())} channels", flush=True)
                _f, cold, size, count = await fetch(
                    http, f"{base}/devices/2/epg.xml", b"<programme "
                )
                print(
                    f"/devices/2/epg.xml cold: {cold:.2f} s, {size / 1e6:.1f} MB, "
                    f"{count} programmes",
                    flush=True,
                )
                print(_load(), flush=True)
                for name, url in (
                    ("/devices/2/lineup.json (480 channels)", f"{base}/devices/2/lineup.json"),
                    ("/devices/2/epg.xml warm (480 channels)", f"{base}/devices/2/epg.xml"),
                    ("/lineup.json (device 1, 480 channels)", f"{base}/lineup.json"),
                ):
                    times = []
                    for _ in range(args.runs):
                        start = time.perf_counter()
                        await fetch(http, url)
                        times.append(time.perf_counter() - start)
                    report(name, times)
                print(_load(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

"""Start time of the ``streamforge`` command: what a user waits for at a prompt.

Builds a populated data dir once (untimed): the mock provider serves a
synthetic catalogue of ``--streams`` streams on account ``user``, which is
added, synced, given the panel's own guide and matched; ``--events`` events are
recorded. Then each command runs ``--runs`` times as a fresh
``python -m streamforge`` child process on that data dir, and the median and
maximum wall time and the median CPU time (user + system: less sensitive to a
busy machine than wall time) are printed per command:

* ``--version`` and ``--help`` (target: under 0.3 s),
* ``account list``, ``events`` and ``channel list`` (read-only, target: under 1 s).

Everything binds to 127.0.0.1. Run from the repository root::

    .venv/bin/python bench/bench_cli.py
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import add_account, build_runtime, machine_line
from streamforge.mockprovider import Catalog, MockProviderThread

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--version",),
    ("--help",),
    ("account", "list"),
    ("events",),
    ("channel", "list"),
)


def populate(data_dir: Path, streams: int, events: int) -> None:
    """Account ``bench`` synced from a synthetic panel, its guide imported and matched."""
    logging.getLogger("streamforge").setLevel(logging.ERROR)  # the events, not figures
    with MockProviderThread(Catalog.synthetic(streams), host="127.0.0.1", port=0) as panel:
        runtime = build_runtime(data_dir)
        try:
            asyncio.run(add_account(runtime, "bench", panel.base_url, "user", "pass"))
            if asyncio.run(runtime.sync_jobs.run("bench")) is None:
                raise RuntimeError(f"sync failed: {runtime.sync_jobs.status('bench').error}")
            runtime.epg.add("guide", from_account="bench")
            asyncio.run(runtime.catalog.refresh_guide("guide"))
            runtime.matching.run()
            for index in range(events):
                runtime.events.record(
                    "warning", "stream", "failover", {"reason": "stall", "n": index}
                )
        finally:
            runtime.close()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    args: tuple[str, ...], env: dict[str, str], runs: int
) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system) of each run."""
    durations: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        cpu_before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "streamforge", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        durations.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - cpu_before)
        if done.returncode != 0:
            raise RuntimeError(f"streamforge {' '.join(args)}: {done.stderr.decode()[-500:]}")
    return durations, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="Runs per command (default 10).")
    parser.add_argument("--streams", type=int, default=2000, help="Catalogue size (2000).")
    parser.add_argument("--events", type=int, default=500, help="Events recorded (500).")
    options = parser.parse_args()
    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        populate(data_dir, options.streams, options.events)
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("STREAMFORGE_")
        }
        env.update(STREAMFORGE_DATA_DIR=str(data_dir), STREAMFORGE_KEYRING="false")
        for args in COMMANDS:
            durations, cpu = time_command(args, env, options.runs)
            name = "streamforge " + " ".join(args)
            print(
                f"{name:<28} median {statistics.median(durations) * 1000:7.0f} ms   "
                f"max {max(durations) * 1000:7.0f} ms   "
                f"CPU median {statistics.median(cpu) * 1000:6.0f} ms   (n={len(durations)})",
                flush=True,
            )
    print(machine_line(), flush=True)


if __name__ == "__main__":
    main()

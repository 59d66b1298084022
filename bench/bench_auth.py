"""Unauthenticated load on the admin API (run: .venv/bin/python bench/bench_auth.py).

StreamForge runs in a child process (so its RSS is its own) over a fresh data
dir with an admin password. Two attacks, one after the other:

1. One ``--body-mb`` (200) MB JSON body is posted to ``/api/v1/accounts``,
   once announced with ``Content-Length`` and without credentials, once
   streamed (chunked) with valid credentials.
2. ``--clients`` (40) concurrent clients send wrong ``Authorization: Basic``
   headers to ``/api/v1/status`` as fast as answers come back, for
   ``--seconds`` (15). Meanwhile ``/healthz`` and ``/discover.json`` (what Plex
   polls) are timed every 100 ms from another client.

Figures: the server's RSS before, its peak during each attack (sampled every
20 ms from ``/proc``) and the growth; the answers by status; the ``/healthz``
and ``/discover.json`` latencies (median / p99 / max). Before the hardening
(issue 14): RSS 2.6 GB and ``/healthz`` 12 s under 40 bad clients; one
200 MB body +534 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from _common import (
    ADMIN_PASSWORD,
    ChildServer,
    build_runtime,
    machine_line,
    mb,
    report,
    rss_bytes,
)

BAD = ("admin", "not-the-password")


class RssSampler:
    """The peak RSS of ``pid`` while running (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.02)

    def stop(self) -> None:
        self._stop.set()


async def _timed(http: httpx.AsyncClient, path: str, until: float) -> list[float]:
    times: list[float] = []
    while time.monotonic() < until:
        start = time.monotonic()
        answer = await http.get(path, timeout=60)
        answer.raise_for_status()
        times.append(time.monotonic() - start)
        await asyncio.sleep(0.1)
    return times


async def _attacker(http: httpx.AsyncClient, until: float, seen: collections.Counter[int]) -> None:
    while time.monotonic() < until:
        try:
            answer = await http.get("/api/v1/status", auth=BAD, timeout=60)
        except httpx.TransportError as exc:
            seen[-1] += 1
            print(f"  transport error: {type(exc).__name__}")
            continue
        seen[answer.status_code] += 1


async def bad_clients(base: str, pid: int, clients: int, seconds: float) -> None:
    print(f"\n== {clients} concurrent clients with a wrong password, {seconds:.0f} s")
    before = rss_bytes(pid)
    sampler = RssSampler(pid)
    sampling = asyncio.get_running_loop().create_task(sampler.run(), name="rss")
    seen: collections.Counter[int] = collections.Counter()
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    until = time.monotonic() + seconds
    async with (
        httpx.AsyncClient(base_url=base, limits=limits) as attack,
        httpx.AsyncClient(base_url=base) as probe,
    ):
        attackers = [
            asyncio.get_running_loop().create_task(_attacker(attack, until, seen), name="attack")
            for _ in range(clients)
        ]
        health, discover = await asyncio.gather(
            _timed(probe, "/healthz", until), _timed(probe, "/discover.json", until)
        )
        await asyncio.gather(*attackers)
    sampler.stop()
    await sampling
    print(f"  answers: {dict(sorted(seen.items()))}")
    print(
        f"  server RSS: before {mb(before)}, peak {mb(sampler.peak)}, "
        f"growth {mb(sampler.peak - before)}"
    )
    report("/healthz during the attack", health)
    report("/discover.json during the attack", discover)


async def _body(size: int) -> AsyncIterator[bytes]:
    block = b"[" + b" " * (1024 * 1024 - 1)
    sent = 0
    while sent < size:
        yield block
        sent += len(block)


async def big_body(base: str, pid: int, size_mb: int) -> None:
    size = size_mb * 1024 * 1024
    cases: list[tuple[str, httpx.BasicAuth | None, bool]] = [
        ("announced, no credentials", None, True),
        ("streamed (chunked), valid credentials", httpx.BasicAuth("admin", ADMIN_PASSWORD), False),
    ]
    for label, auth, announce in cases:
        print(f"\n== one {size_mb} MB JSON body to /api/v1/accounts: {label}")
        before = rss_bytes(pid)
        sampler = RssSampler(pid)
        sampling = asyncio.get_running_loop().create_task(sampler.run(), name="rss")
        headers = {"Content-Type": "application/json"}
        if announce:
            headers["Content-Length"] = str(size)
        start = time.monotonic()
        async with httpx.AsyncClient(base_url=base) as http:
            try:
                answer = await http.post(
                    "/api/v1/accounts",
                    content=_body(size),
                    headers=headers,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    timeout=120,
                )
                outcome = f"{answer.status_code} {answer.text[:80]}"
            except httpx.TransportError as exc:
                # The server answered early and closed the connection mid-upload.
                outcome = f"connection closed by the server mid-upload ({type(exc).__name__})"
        elapsed = time.monotonic() - start
        sampler.stop()
        await sampling
        print(f"  answer: {outcome} after {elapsed * 1000:.0f} ms")
        print(
            f"  server RSS: before {mb(before)}, peak {mb(sampler.peak)}, "
            f"growth {mb(sampler.peak - before)}"
        )


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="sf-bench-auth-") as tmp:
        data = Path(tmp)
        build_runtime(data).close()
        with ChildServer(data) as server:
            print(f"StreamForge pid {server.pid} at {server.base_url}")
            # The bodies first: after the attack, 127.0.0.1 is rate-limited for a minute.
            await big_body(server.base_url, server.pid, args.body_mb)
            await bad_clients(server.base_url, server.pid, args.clients, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--body-mb", type=int, default=200)
    args = parser.parse_args()
    print(machine_line())
    asyncio.run(main_async(args))
    print(f"\nafter: {machine_line()}")


if __name__ == "__main__":
    main()

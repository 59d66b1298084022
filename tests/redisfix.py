"""A throwaway Redis server for the tests (and the lease benchmark).

Debian's ``redis-server`` runs on 127.0.0.1 on a free port, without
persistence (``--save '' --appendonly no``), its working dir a temp dir that
is removed afterwards. :meth:`RedisServer.stop` kills the process (like a
crash) and :meth:`RedisServer.start` brings it back on the same port, empty,
so tests can take Redis away in the middle of a run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from tests.netutil import free_port


class RedisServer:
    """One private ``redis-server`` process on 127.0.0.1."""

    def __init__(self, binary: str, workdir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (on the same port as before) and wait until it accepts."""
        if self.running:
            return
        cmd = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self._proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server (SIGKILL: no goodbye, like a crash) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait(10)


def redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Yield a started private Redis server; killed and cleaned up afterwards."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("redis-server not found (install Debian's redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="sf-redis-"))
    server = RedisServer(binary, workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- fixtures
# Imported by tests/conftest.py so that one server serves the whole session.
@pytest.fixture(scope="session")
def redis_session_server() -> Iterator[RedisServer]:
    try:
        with redis_server() as server:
            yield server
    except (RuntimeError, OSError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no redis-server available: {exc}")


@pytest.fixture
def redis_srv(redis_session_server: RedisServer) -> RedisServer:
    """The session's Redis server, running (restarted if a test killed it) and empty."""
    redis_session_server.start()
    with SyncRedis.from_url(redis_session_server.url, socket_timeout=5) as client:
        client.flushall()
    return redis_session_server


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], within: float = 10.0, interval: float = 0.02
) -> float:
    """Await ``predicate()`` until it holds; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await predicate():
        if loop.time() - started > within:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)
    return loop.time() - started

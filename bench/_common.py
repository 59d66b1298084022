"""Shared helpers of the StreamForge end-to-end benchmarks.

Statistics (median and nearest-rank p99), process accounting read straight
from ``/proc`` and :mod:`resource` (RSS, peak RSS that can be reset, CPU
seconds of this or another process), a condition wait with a deadline, and
the pieces of a StreamForge stack: a runtime on a private data dir, accounts
added against a mock provider, and the real FastAPI app served by uvicorn on
127.0.0.1 — in this process (:func:`serve_app`) or in a child process
(:class:`ChildServer`) so that its CPU and memory can be measured apart from
the benchmark's own clients.

Everything binds to 127.0.0.1 only. Nothing here is a test: the benchmarks
are run by hand and print figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import resource
import socket
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from streamforge.interpreter import tune_for_serving
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from streamforge.web.app import create_app

HOST = "127.0.0.1"
ADMIN_PASSWORD = "bench-admin-password"
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- statistics
def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..1) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p99: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            len(values), statistics.median(values), pct(values, 0.99), min(values), max(values)
        )

    def line(self, name: str, unit: str = "ms", scale: float = 1000.0, width: int = 46) -> str:
        return (
            f"{name:<{width}} median {self.median * scale:9.1f} {unit}   "
            f"p99 {self.p99 * scale:9.1f} {unit}   max {self.maximum * scale:9.1f} {unit}"
            f"   (n={self.n})"
        )


def report(name: str, values: Sequence[float], unit: str = "ms", scale: float = 1000.0) -> Summary:
    """Print one median/p99 line and return the summary."""
    summary = Summary.of(values)
    print(summary.line(name, unit, scale), flush=True)
    return summary


# --------------------------------------------------------------------------- process accounting
def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` (default: this process) from ``/proc/PID/statm``."""
    path = f"/proc/{pid or 'self'}/statm"
    with open(path, encoding="ascii") as fh:
        return int(fh.read().split()[1]) * _PAGE


def _status_kb(field: str, pid: int | None = None) -> int:
    with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def peak_rss_bytes(pid: int | None = None) -> int:
    """Peak RSS (``VmHWM``) since start or since the last :func:`reset_peak_rss`."""
    return _status_kb("VmHWM", pid)


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux ``clear_refs`` 5).

    Returns False where the kernel refuses; the peak is then the process's
    lifetime peak.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of ``pid`` (default: this process, all threads)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        raw = fh.read()
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_line() -> str:
    """CPU count and load averages: the benchmarks share the machine, say how busy it was."""
    one, five, _fifteen = os.getloadavg()
    return f"machine: {os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


# --------------------------------------------------------------------------- waiting
async def wait_until(
    predicate: Callable[[], bool],
    within: float = 10.0,
    interval: float = 0.01,
    what: str = "condition",
) -> None:
    """Poll ``predicate()`` until it holds; raise ``TimeoutError`` after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not met within {within} s")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- the stack
def build_runtime(data_dir: Path, **overrides: Any) -> Runtime:
    """A migrated runtime on a fresh SQLite file under ``data_dir`` (127.0.0.1, no discovery)."""
    settings = load_settings(
        data_dir=data_dir,
        keyring=False,
        discovery_enabled=False,
        ssdp_enabled=False,
        host=HOST,
        port=overrides.pop("port", None) or free_port(),
        **overrides,
    )
    runtime = Runtime.build(settings)
    runtime.auth.set_password(ADMIN_PASSWORD)
    return runtime


async def add_account(
    runtime: Runtime, name: str, base_url: str, username: str, password: str
) -> None:
    result = await runtime.accounts.add(
        name, server_url=base_url, username=username, password=password
    )
    if not result.ok:
        raise RuntimeError(f"account {name}: {result.message}")


@contextlib.asynccontextmanager
async def serve_app(runtime: Runtime) -> AsyncIterator[str]:
    """Serve the real app for ``runtime`` with uvicorn on 127.0.0.1; yields the base URL."""
    port = runtime.settings.port
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime),
            host=HOST,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve(), name="bench-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        await runtime.streams.close()
        await task


def order_channel(runtime: Runtime, xmltv_id: str, stream_ids: Sequence[int]) -> str:
    """Keep exactly the given xtream channel ids behind ``xmltv_id``, in that failover order.

    Returns the channel's GuideNumber.
    """
    view = runtime.channels.get(xmltv_id)
    mapped = {m.xtream_channel_id for m in view.mappings}
    for xid in stream_ids:
        if xid not in mapped:
            runtime.channels.map_add(xmltv_id, xid)
    for mapping in runtime.channels.get(xmltv_id).mappings:
        if mapping.xtream_channel_id not in stream_ids:
            runtime.channels.map_remove(xmltv_id, mapping.xtream_channel_id)
    view = runtime.channels.reorder(xmltv_id, list(stream_ids))
    if view.guide_number is None:
        raise RuntimeError(f"channel {xmltv_id} has no GuideNumber")
    return view.guide_number


def xtream_id(runtime: Runtime, account: str, stream_id: int) -> int:
    """The ``xtream_channels.id`` of ``account``'s provider stream ``stream_id``."""
    from sqlalchemy import select

    from streamforge.db.models import Account, XtreamChannel

    with runtime.db.session() as session:
        found = session.scalar(
            select(XtreamChannel.id)
            .join(Account, Account.id == XtreamChannel.account_id)
            .where(Account.name == account, XtreamChannel.stream_id == stream_id)
        )
    if found is None:
        raise LookupError(f"{account}/{stream_id} not synced")
    return int(found)


# --------------------------------------------------------------------------- child server
def _child_serve(data_dir: str, port: int, conn: multiprocessing.connection.Connection) -> None:
    """Entry point of :class:`ChildServer`: open the existing DB and serve until killed."""
    runtime = Runtime.build(
        load_settings(
            data_dir=Path(data_dir),
            keyring=False,
            discovery_enabled=False,
            ssdp_enabled=False,
            host=HOST,
            port=port,
        )
    )

    async def main() -> None:
        async with serve_app(runtime) as base:
            tune_for_serving()  # as `streamforge serve` does before it accepts requests
            conn.send(base)
            await asyncio.to_thread(conn.recv)  # any message (or EOF) means stop

    try:
        asyncio.run(main())
    except EOFError:
        pass
    finally:
        runtime.close()


class ChildServer:
    """The real app over an existing data dir, served from a child process.

    Its pid lets the parent read the server's own RSS and CPU from ``/proc``
    while the benchmark's clients run in the parent.
    """

    def __init__(self, data_dir: Path, start_timeout: float = 60.0) -> None:
        self.data_dir = data_dir
        self.start_timeout = start_timeout
        self.base_url = ""
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child_serve,
            args=(str(data_dir), free_port(), child_conn),
            name="bench-streamforge",
            daemon=True,
        )
        self._child_conn = child_conn

    @property
    def pid(self) -> int:
        if self._proc.pid is None:
            raise RuntimeError("child server not started")
        return self._proc.pid

    def __enter__(self) -> ChildServer:
        self._proc.start()
        if not self._conn.poll(self.start_timeout):
            self._proc.kill()
            raise TimeoutError("StreamForge child server did not start")
        self.base_url = str(self._conn.recv())
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._conn.close()
        self._child_conn.close()


# --------------------------------------------------------------------------- mock provider child
class MockServerProcess:
    """``python -m streamforge.mockprovider serve`` as a child whose pid we keep.

    Like :class:`streamforge.mockprovider.MockProviderProcess`, but the pid is
    public so that the benchmark can read the provider's own CPU and RSS from
    ``/proc``. Readiness is the ``READY <base_url>`` line, not a sleep.
    """

    def __init__(
        self,
        args: Sequence[str],
        cache_dir: Path | None = None,
        start_timeout: float = 120.0,
        port: int = 0,
    ) -> None:
        import sys

        self.cmd = [
            sys.executable,
            "-m",
            "streamforge.mockprovider",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            *args,
        ]
        if cache_dir is not None:
            self.cmd += ["--cache-dir", str(cache_dir)]
        self.start_timeout = start_timeout
        self.base_url = ""
        self._proc: Any = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("mock provider child not started")
        return int(self._proc.pid)

    def __enter__(self) -> MockServerProcess:
        import subprocess

        self._proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stdout = self._proc.stdout
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            line = stdout.readline()
            if not line:
                raise RuntimeError(f"mock provider exited with status {self._proc.wait()}")
            if line.startswith("READY "):
                self.base_url = line.split(" ", 1)[1].strip()
                return self
        self.__exit__()
        raise TimeoutError("mock provider did not become ready")

    def __exit__(self, *_exc: object) -> None:
        import subprocess

        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

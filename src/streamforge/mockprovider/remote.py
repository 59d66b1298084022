"""Steering a mock panel in another process: :class:`ControlClient`, :class:`MockProviderProcess`.

:class:`ControlClient` is a small synchronous client of the ``/_control`` JSON API
(used by the CLI). :class:`MockProviderProcess` starts
``python -m streamforge.mockprovider serve`` as a child process (its own CPU core,
useful for benchmarks), waits for the ``READY <base_url>`` line it prints once
listening — no fixed sleep — and stops it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from streamforge.errors import ConfigError, ProviderError
from streamforge.mockprovider.connections import ProviderStats
from streamforge.mockprovider.faults import ApiQuirk, Fault
from streamforge.mockprovider.server import StatsPredicate


class ControlClient:
    """A small synchronous client of a mock provider's ``/_control`` API."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"control URL must be http(s): {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(dict(body)).encode()
        req = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            f"{self.base_url}/_control{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()
            raise ProviderError(f"mock control {method} {path}: {exc.code} {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ProviderError(f"mock control unreachable at {self.base_url}: {exc}") from exc

    def set_fault(self, stream_id: int, fault: Fault) -> None:
        self.request("POST", f"/streams/{stream_id}/fault", fault.to_dict())

    def recover(self, stream_id: int | None = None) -> None:
        if stream_id is None:
            self.request("POST", "/recover", {})
        else:
            self.request("POST", f"/streams/{stream_id}/recover", {})

    def add_quirk(self, quirk: ApiQuirk) -> None:
        self.request("POST", "/quirks", quirk.to_dict())

    def clear_quirks(self) -> None:
        self.request("DELETE", "/quirks")

    def kill(self, stream_id: int, *, reset: bool = False) -> int:
        answer = self.request("POST", f"/streams/{stream_id}/kill{'?reset=1' if reset else ''}", {})
        return int(answer["killed"])

    def stats(self, events: int | None = None) -> ProviderStats:
        """Counters and the log (only its newest ``events`` entries when given)."""
        query = "" if events is None else f"?events={events}"
        return ProviderStats.from_dict(self.request("GET", f"/stats{query}"))

    def wait_for(
        self, predicate: StatsPredicate, timeout: float = 5.0, events: int | None = None
    ) -> ProviderStats:
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.stats(events)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() >= deadline:
                raise TimeoutError("mock provider condition not met")
            time.sleep(0.05)


class MockProviderProcess:
    """``python -m streamforge.mockprovider serve`` as a child process (own CPU core).

    The child prints ``READY <base_url>`` once listening; that line is awaited, so no
    fixed sleep is involved. Control goes through :attr:`control`.
    """

    def __init__(
        self,
        args: Iterable[str] = ("--seed-demo",),
        *,
        port: int = 0,
        cache_dir: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.args = [*args]
        self.port = port
        self.cache_dir = cache_dir
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "streamforge.mockprovider",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        if self.cache_dir is not None:
            cmd += ["--cache-dir", str(self.cache_dir)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv of our own module
            cmd, stdout=subprocess.PIPE, text=True, env=env
        )
        deadline = time.monotonic() + self.start_timeout
        stdout = self._proc.stdout
        if stdout is None:
            raise RuntimeError("mock provider child has no stdout")
        while time.monotonic() < deadline:
            line = stdout.readline()
            if not line:
                code = self._proc.wait()
                raise ProviderError(f"mock provider process exited with status {code}")
            if line.startswith("READY "):
                self.base_url = line.split(" ", 1)[1].strip()
                return
        self.stop()
        raise TimeoutError("mock provider process did not become ready")

    @property
    def control(self) -> ControlClient:
        return ControlClient(self.base_url)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

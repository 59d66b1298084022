"""Running the mock panel: in-process (async), in a thread (sync code), or as a subprocess.

Theory of operation
-------------------
:class:`MockProvider` owns an aiohttp ``AppRunner`` bound to one TCP site. ``port=0``
picks a free port; :attr:`MockProvider.base_url` reports the real one. On
:meth:`MockProvider.close` every open live connection is aborted first (so stalled
handlers end at once), then the runner is cleaned up with a short shutdown timeout.

:meth:`MockProvider.wait_for` is the condition-based wait tests use instead of
sleeps: it re-evaluates a predicate on a fresh :class:`ProviderStats` after every
connection change, until it holds or the timeout passes.

:class:`MockProviderThread` runs a ``MockProvider`` on its own event loop in a daemon
thread and forwards every call with ``run_coroutine_threadsafe``; its ``wait_for``
polls. :class:`MockProviderProcess` starts ``python -m streamforge.mockprovider serve``
and talks to it through the control API (see :class:`ControlClient`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

from streamforge.errors import ConfigError, ProviderError
from streamforge.mockprovider.catalog import Account, Catalog
from streamforge.mockprovider.connections import LimitMode, ProviderStats
from streamforge.mockprovider.faults import ApiQuirk, Fault
from streamforge.mockprovider.media import MediaLibrary, MediaProfile
from streamforge.mockprovider.panel import RedactingAccessLogger, access_log, build_app
from streamforge.mockprovider.state import ProviderState

T = TypeVar("T")
StatsPredicate = Callable[[ProviderStats], bool]


class MockProvider:
    """A running mock Xtream panel on ``host:port`` (use ``async with``)."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        media: MediaLibrary | None = None,
        cache_dir: Path | None = None,
        profiles: Mapping[str, MediaProfile] | None = None,
        limit_mode: LimitMode = LimitMode.KILL_OLDEST,
        faults: Mapping[int, Fault] | None = None,
        quirks: Iterable[ApiQuirk] = (),
        warm_media: bool = True,
    ) -> None:
        self.catalog_at_start = catalog if catalog is not None else Catalog.demo()
        self.host = host
        self.requested_port = port
        self.media = media if media is not None else MediaLibrary(cache_dir, profiles)
        self.state = ProviderState(self.catalog_at_start, self.media, limit_mode=limit_mode)
        for stream_id, fault in (faults or {}).items():
            self.state.set_fault(stream_id, fault)
        for quirk in quirks:
            self.state.add_quirk(quirk)
        self.warm_media = warm_media
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self._runner is not None:
            return
        if self.warm_media:
            await self.media.warm(self.state.catalog.profiles_used())
        runner = web.AppRunner(
            build_app(self.state),
            access_log_class=RedactingAccessLogger,
            access_log=access_log,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port)
        await site.start()
        self._runner = runner
        self._site = site
        self._port = site.port

    async def go_offline(self, *, kill_connections: bool = True) -> None:
        """Stop listening: new connections are refused by the OS (ECONNREFUSED).

        With ``kill_connections`` the open live connections are aborted too, as when a
        panel's server dies. The control API is unreachable while offline; use the
        in-process methods.
        """
        site, self._site = self._site, None
        if site is not None:
            await site.stop()
        if kill_connections:
            self.state.registry.kill(reason="provider_offline")

    async def go_online(self) -> None:
        """Listen again on the same port after :meth:`go_offline`."""
        if self._runner is None:
            raise RuntimeError("mock provider is not running")
        if self._site is None:
            site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
            await site.start()
            self._site = site

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        self._site = None
        if runner is None:
            return
        self.state.registry.kill(reason="provider_shutdown")
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- addresses ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("mock provider is not running")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stream_url(self, stream_id: int, account: str | None = None) -> str:
        """``/live/U/P/ID.ts`` for ``account`` (default: the first account selling it)."""
        acc = self._account_for(stream_id, account)
        return f"{self.base_url}/live/{acc.username}/{acc.password}/{stream_id}.ts"

    def _account_for(self, stream_id: int, account: str | None) -> Account:
        if account is not None:
            return self.state.catalog.account(account)
        for acc in self.state.catalog.accounts:
            if acc.sees(stream_id):
                return acc
        raise ConfigError(f"no account sells stream {stream_id}")

    # -- control -----------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        return self.state.catalog

    def set_fault(self, stream_id: int, fault: Fault) -> None:
        self.state.set_fault(stream_id, fault)

    def recover(self, stream_id: int | None = None) -> None:
        """Heal one stream (or all streams); quirks are left alone."""
        self.state.recover(stream_id)

    def add_quirk(self, quirk: ApiQuirk) -> None:
        self.state.add_quirk(quirk)

    def clear_quirks(self) -> None:
        self.state.clear_quirks()

    def kill(
        self, *, stream_id: int | None = None, account: str | None = None, reset: bool = False
    ) -> int:
        return self.state.kill(stream_id=stream_id, account=account, reset=reset)

    def set_limit_mode(self, mode: LimitMode) -> None:
        self.state.set_limit_mode(mode)

    def update_account(self, username: str, **changes: Any) -> Account:
        return self.state.update_account(username, changes)

    def stats(self) -> ProviderStats:
        return self.state.stats()

    async def wait_for(
        self,
        predicate: StatsPredicate,
        timeout: float = 5.0,  # noqa: ASYNC109 - the deadline is part of the condition
    ) -> ProviderStats:
        """Wait until ``predicate(stats)`` holds; raises ``TimeoutError`` with the last stats."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.stats()
            if predicate(snapshot):
                return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"mock provider condition not met; open={snapshot.per_stream()}")
            await self.state.registry.wait_changed(min(remaining, 0.25))


class MockProviderThread:
    """A :class:`MockProvider` on a private event loop in a background thread (sync API)."""

    def __init__(self, catalog: Catalog | None = None, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._catalog = catalog
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._provider: MockProvider | None = None
        self._stopped: asyncio.Event | None = None

    def start(self, timeout: float = 60.0) -> None:
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="mock-provider", daemon=True
        )
        self._thread.start()
        ready.result(timeout)

    def _run(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    async def _main(self, ready: Future[None]) -> None:
        self._stopped = asyncio.Event()
        provider = MockProvider(self._catalog, **self._kwargs)
        try:
            await provider.start()
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        self._provider = provider
        ready.set_result(None)
        try:
            await self._stopped.wait()
        finally:
            await provider.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("mock provider thread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _on_loop(self, fn: Callable[[MockProvider], T]) -> T:
        async def call() -> T:
            return fn(self.provider)

        return self._call(call())

    @property
    def provider(self) -> MockProvider:
        if self._provider is None:
            raise RuntimeError("mock provider thread is not running")
        return self._provider

    def stop(self, timeout: float = 10.0) -> None:
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is None or stopped is None or thread is None:
            return
        loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout)
        self._loop = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.provider.base_url

    @property
    def catalog(self) -> Catalog:
        return self.provider.catalog

    def stream_url(self, stream_id: int, account: str | None = None) -> str:
        return self._on_loop(lambda p: p.stream_url(stream_id, account))

    def set_fault(self, stream_id: int, fault: Fault) -> None:
        self._on_loop(lambda p: p.set_fault(stream_id, fault))

    def recover(self, stream_id: int | None = None) -> None:
        self._on_loop(lambda p: p.recover(stream_id))

    def add_quirk(self, quirk: ApiQuirk) -> None:
        self._on_loop(lambda p: p.add_quirk(quirk))

    def clear_quirks(self) -> None:
        self._on_loop(lambda p: p.clear_quirks())

    def kill(
        self, *, stream_id: int | None = None, account: str | None = None, reset: bool = False
    ) -> int:
        return self._on_loop(lambda p: p.kill(stream_id=stream_id, account=account, reset=reset))

    def set_limit_mode(self, mode: LimitMode) -> None:
        self._on_loop(lambda p: p.set_limit_mode(mode))

    def go_offline(self, *, kill_connections: bool = True) -> None:
        self._call(self.provider.go_offline(kill_connections=kill_connections))

    def go_online(self) -> None:
        self._call(self.provider.go_online())

    def update_account(self, username: str, **changes: Any) -> Account:
        return self._on_loop(lambda p: p.update_account(username, **changes))

    def stats(self) -> ProviderStats:
        return self._on_loop(lambda p: p.stats())

    def wait_for(self, predicate: StatsPredicate, timeout: float = 5.0) -> ProviderStats:
        return self._call(self.provider.wait_for(predicate, timeout), timeout + 5.0)


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
            f"{self.base_url}/_control{path}", data=data, method=method,
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

    def __init__(self, args: Iterable[str] = ("--seed-demo",), *, port: int = 0,
                 cache_dir: Path | None = None, start_timeout: float = 60.0) -> None:
        self.args = [*args]
        self.port = port
        self.cache_dir = cache_dir
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> None:
        cmd = [sys.executable, "-m", "streamforge.mockprovider", "serve",
               "--host", "127.0.0.1", "--port", str(self.port), *self.args]
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
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""A :class:`~.server.MockProvider` for synchronous code: :class:`MockProviderThread`.

The provider runs on a private event loop in a daemon thread. Every method forwards to
that loop with ``run_coroutine_threadsafe`` and waits for the result, so callers see
the same behaviour as the async API; :meth:`MockProviderThread.wait_for` runs the
provider's condition wait on its loop. ``stop()`` (or leaving the ``with`` block)
closes the provider, shuts down the loop's executor and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

from streamforge.mockprovider.catalog import Account, Catalog
from streamforge.mockprovider.connections import LimitMode, ProviderStats
from streamforge.mockprovider.faults import ApiQuirk, Fault
from streamforge.mockprovider.server import MockProvider, StatsPredicate

T = TypeVar("T")


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
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
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

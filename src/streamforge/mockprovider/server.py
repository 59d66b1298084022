"""Running the mock panel in-process: :class:`MockProvider` (use ``async with``).

Theory of operation
-------------------
:class:`MockProvider` owns an aiohttp ``AppRunner`` bound to one TCP site. ``port=0``
picks a free port; :attr:`MockProvider.base_url` reports the real one. On
:meth:`MockProvider.close` every open live connection is aborted first (so stalled
handlers end at once), then the runner is cleaned up with a short shutdown timeout.
:meth:`MockProvider.go_offline` stops listening (new connections get ECONNREFUSED)
and :meth:`MockProvider.go_online` listens again on the same port.

:meth:`MockProvider.wait_for` is the condition-based wait tests use instead of
sleeps: it re-evaluates a predicate on a fresh :class:`ProviderStats` after every
connection change, until it holds or the timeout passes.

For synchronous code see :mod:`.threaded`; for another process see :mod:`.remote`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from streamforge.errors import ConfigError
from streamforge.mockprovider.catalog import Account, Catalog
from streamforge.mockprovider.connections import LimitMode, ProviderStats
from streamforge.mockprovider.faults import ApiQuirk, Fault
from streamforge.mockprovider.media import MediaLibrary
from streamforge.mockprovider.panel import RedactingAccessLogger, access_log, build_app
from streamforge.mockprovider.profiles import MediaProfile
from streamforge.mockprovider.state import ProviderState

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
            for profile, variant in sorted(self.state.fault_media()):
                await self.media.get(profile, variant)
        self.state.serving = True
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
        self.state.serving = False
        self.state.registry.kill(reason="provider_shutdown")
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
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

"""``streamforge demo``: a whole StreamForge against the built-in mock provider.

Theory of operation
-------------------
The demo runs everything in one process and one event loop:

1. a :class:`~streamforge.mockprovider.MockProvider` with ``Catalog.demo()``
   (accounts ``alpha`` and ``beta``) on 127.0.0.1 and a free port;
2. a :class:`~streamforge.runtime.Runtime` on the demo data directory
   (:func:`default_demo_dir`, under the user cache directory and reused across
   runs, unless one is given; never the default data directory), with a short
   recovery period so the upgrade back to the primary is visible within seconds;
3. :func:`configure` does what a newcomer would do by hand: add both accounts,
   sync them, import alpha's guide (``xmltv.php``) and run matching, which maps
   each guide channel to its streams with backups;
4. the HTTP app is served (with HDHomeRun discovery and SSDP as the settings
   say) with :class:`DemoControls` on ``app.state.demo``; the Live page then
   shows a panel that injects faults into the stream being watched through the
   in-process mock provider, so the failover appears on the timeline.

The admin password is generated and printed together with the UI address and
the Plex URLs (``STREAMFORGE_ADMIN_PASSWORD`` overrides it), once the server
accepts connections, with the command line that reads the demo's data
(``STREAMFORGE_DATA_DIR=… streamforge events``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import platformdirs
from fastapi import FastAPI

from streamforge.errors import ConfigError, NotFoundError
from streamforge.mockprovider import Catalog, Fault, FaultKind, MediaLibrary, MockProvider
from streamforge.outputs.setup_urls import setup_urls
from streamforge.runtime import Runtime
from streamforge.server import serve_app
from streamforge.settings import Settings, load_settings
from streamforge.web.app import create_app

#: The demo catalogue's accounts: (name, password) as the mock provider knows them.
DEMO_ACCOUNTS = (("alpha", "alpha-secret"), ("beta", "beta-secret"))
DEMO_GUIDE = "alpha-guide"
DEMO_RECOVERY_PERIOD = 20.0

#: Fault buttons of the demo panel: label → fault. Before-headers faults (503)
#: only affect new connections, so the playing connection is cut as well.
FAULTS: Mapping[str, Fault] = MappingProxyType(
    {
        "eof": Fault(FaultKind.EOF),
        "stall": Fault(FaultKind.STALL),
        "reset": Fault(FaultKind.RESET),
        "status 503": Fault(FaultKind.STATUS, status=503),
        "black": Fault(FaultKind.BLACK),
        "frozen": Fault(FaultKind.FROZEN),
        "card": Fault(FaultKind.CARD),
        "silent": Fault(FaultKind.SILENT),
        "no video": Fault(FaultKind.NO_VIDEO),
        "no audio": Fault(FaultKind.NO_AUDIO),
        "slow 0.6": Fault(FaultKind.SLOW, factor=0.6),
        "drip": Fault(FaultKind.DRIP),
        "bursty 4 s": Fault(FaultKind.BURSTY, period=4.0),
    }
)


class DemoControls:
    """Fault injection for the demo panel, acting on the stream a session is playing."""

    kinds: tuple[str, ...] = tuple(FAULTS)

    def __init__(self, provider: MockProvider, runtime: Runtime) -> None:
        self.provider = provider
        self.runtime = runtime
        self._faulted: set[int] = set()

    def playing(self, guide_number: str) -> tuple[int, str, str]:
        """(provider stream id, stream name, account) playing on channel ``guide_number``."""
        for session in self.runtime.streams.sessions:
            if session.channel.guide_number != guide_number or session.ended.is_set():
                continue
            stream = session.policy.playing
            if stream is not None:
                return stream.stream_id, stream.name, stream.account_name
        raise NotFoundError(f"nothing is playing on channel {guide_number}")

    def inject(self, guide_number: str, kind: str, *, once: bool = False) -> dict[str, Any]:
        """Break the stream playing on ``guide_number`` (``once``: heal after one hit)."""
        if kind not in FAULTS:
            raise ConfigError(f"unknown fault {kind!r}; use one of {', '.join(FAULTS)}")
        stream_id, name, account = self.playing(guide_number)
        fault = FAULTS[kind]
        if once:
            fault = Fault(**{**fault.to_dict(), "times": 1})
        self.provider.set_fault(stream_id, fault)
        self._faulted.add(stream_id)
        cut = 0
        if fault.kind.before_headers:
            cut = self.provider.kill(stream_id=stream_id, reset=False)
        return {
            "stream_id": stream_id,
            "stream": name,
            "account": account,
            "fault": kind,
            "once": once,
            "connections_cut": cut,
        }

    def recover(self) -> dict[str, Any]:
        """Heal every stream this panel broke."""
        healed = sorted(self._faulted)
        for stream_id in healed:
            self.provider.recover(stream_id)
        self._faulted.clear()
        return {"recovered": healed}


async def configure(runtime: Runtime, provider: MockProvider) -> dict[str, Any]:
    """Add the demo accounts, sync them, import a guide and match (idempotent).

    Syncs and the import take the same path as anywhere else (``SyncJobs.run``,
    ``CatalogUpdates.refresh_guide``), so matching follows each of them; the
    summary returned is the one after the guide import.
    """
    db = runtime.db
    existing = {view.name for view in await db.run(runtime.accounts.all)}
    for name, password in DEMO_ACCOUNTS:
        if name in existing:
            await db.write(runtime.accounts.update, name, server_url=provider.base_url)
        else:
            result = await runtime.accounts.add(
                name, server_url=provider.base_url, username=name, password=password
            )
            if not result.ok:
                raise ConfigError(f"demo account {name}: {result.message}")
        if await runtime.sync_jobs.run(name) is None:
            raise ConfigError(f"demo account {name}: {runtime.sync_jobs.status(name).error}")
    if DEMO_GUIDE not in {source.name for source in await db.run(runtime.epg.all)}:
        await db.write(runtime.epg.add, DEMO_GUIDE, from_account="alpha")
    refreshed = await runtime.catalog.refresh_guide(DEMO_GUIDE)
    return {"guide": refreshed.report, "matching": refreshed.update.matching.as_dict()}


def demo_settings(
    data_dir: Path, *, host: str, port: int | None, recovery_period: float, **more: Any
) -> Settings:
    """The demo's settings: the given data dir and bind address, keyring off."""
    return load_settings(
        data_dir=data_dir,
        host=host,
        port=port,
        recovery_period=recovery_period,
        keyring=False,
        **more,
    )


def default_demo_dir() -> Path:
    """Where the demo keeps its data unless told otherwise: ``demo`` in the user cache
    directory (``~/.cache/streamforge/demo``), reused across runs so that the command
    line can read it afterwards. Never the default data directory."""
    return Path(platformdirs.user_cache_dir("streamforge")) / "demo"


@contextlib.contextmanager
def data_directory(chosen: Path | None) -> Iterator[Path]:
    """``chosen``, else :func:`default_demo_dir` (created if needed, kept afterwards)."""
    directory = chosen if chosen is not None else default_demo_dir()
    directory.mkdir(parents=True, exist_ok=True)
    yield directory


def cli_hint(data_dir: Path) -> str:
    """The exact command line that shows the demo's events."""
    return f"STREAMFORGE_DATA_DIR={shlex.quote(str(data_dir))} streamforge events"


def _connect_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


async def accepting(host: str, port: int, served: asyncio.Future[None]) -> None:
    """Return once a TCP connection to ``host:port`` succeeds (re-raising what ended
    ``served`` if the server stopped first)."""
    while True:
        try:
            _reader, writer = await asyncio.open_connection(_connect_host(host), port)
        except OSError:
            if not served.done():
                await asyncio.sleep(0.02)
                continue
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        served.result()
        raise ConfigError(f"the demo server on port {port} stopped before it started")


def demo_app(runtime: Runtime, provider: MockProvider) -> FastAPI:
    """The normal app plus the demo panel's controls on ``app.state.demo``."""
    app = create_app(runtime)
    app.state.demo = DemoControls(provider, runtime)
    return app


async def run_demo(
    settings: Settings,
    *,
    announce: Callable[[dict[str, Any]], None],
    provider_port: int = 0,
    media: MediaLibrary | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Start the mock provider and StreamForge, configure it, announce, serve until stopped.

    ``media`` reuses already encoded test media; ``stop`` ends the demo cleanly when set.
    """
    async with MockProvider(
        Catalog.demo(), host="127.0.0.1", port=provider_port, media=media
    ) as provider:
        runtime = Runtime.build(settings)
        await runtime.db.run(runtime.restore_saved_settings)
        try:
            password = None
            if not settings.admin_password:
                password = secrets.token_urlsafe(12)
                await runtime.db.write(runtime.auth.set_password, password)
            setup = await configure(runtime, provider)
            app = demo_app(runtime, provider)
            urls = setup_urls(runtime.settings)
            playable = await runtime.db.run(runtime.channels.all, enabled=True, mapped=True)
            first = next(iter(playable), None)
            served = runtime.tasks.spawn(
                serve_app(
                    app,
                    runtime,
                    host=settings.host,
                    port=settings.port,
                    stop=stop,
                    log_level="warning",
                ),
                name="demo-server",
            )
            try:
                await accepting(settings.host, settings.port, served)
                announce(
                    {
                        "ui": f"{urls['base']}/ui/",
                        "password": password,
                        "urls": urls,
                        "provider": provider.base_url,
                        "data_dir": str(settings.data_dir),
                        "cli": cli_hint(settings.data_dir),
                        "watch": f"{urls['base']}/auto/v{first.guide_number}" if first else None,
                        "setup": setup,
                    }
                )
                await served
            finally:
                if not served.done():
                    served.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await served
        finally:
            await runtime.aclose()

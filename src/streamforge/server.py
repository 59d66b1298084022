"""Running the server: the HTTP app plus its background services —
HDHomeRun UDP discovery, SSDP, the periodic sync/refresh jobs and the
event-loop lag monitor; in a cluster it joins the cluster first
(:meth:`Runtime.start_cluster`) and each node answers discovery with its own
DeviceID.

Discovery and SSDP answer for every virtual device
(:mod:`streamforge.outputs.devices`) from a :class:`DeviceDirectory`: the
devices' identities read on the database's threads at start and every
:data:`DIRECTORY_REFRESH` seconds, so no datagram reads the database on the
event loop. The same refresh keeps each device's own guide rendered.

With ``device_ports = auto`` every device N ≥ 2 is served on its own port as
well (:func:`streamforge.outputs.devices.served_port`): :class:`DevicePortListeners`
opens one listener per device on uvicorn's own protocol once the main port is
up, and again at every directory refresh and after a device is added through
the API (``app.state.device_ports``), so a new device needs no restart. A port
that cannot be bound is a one-line warning; that device keeps its path URL
(``UNSERVED_PORTS_KEY``) until the port frees up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket

import uvicorn
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from streamforge.interpreter import tune_for_serving
from streamforge.outputs.devices import (
    UNSERVED_PORTS_KEY,
    DevicePlan,
    device_identities,
    served_port,
    settle,
)
from streamforge.outputs.discovery import DeviceInfo, DiscoveryResponder, device_info_from
from streamforge.outputs.guide_cache import device_guide_prefix, warm_rows
from streamforge.outputs.hdhomerun import TunerIdentity
from streamforge.outputs.identity import for_node
from streamforge.outputs.setup_urls import public_base_url
from streamforge.outputs.ssdp import SsdpDevice, SsdpResponder, ssdp_device_from
from streamforge.runtime import Runtime
from streamforge.scheduler import start_periodic_jobs
from streamforge.state import get_state, set_state
from streamforge.web.app import DevicePorts, create_app, device_ports

log = logging.getLogger(__name__)

DIRECTORY_REFRESH = 15.0
"""Seconds between re-reads of the devices for discovery and SSDP."""


class DeviceDirectory:
    """The devices' identities as last read, for the UDP responders."""

    def __init__(self, runtime: Runtime, base: str) -> None:
        self._runtime = runtime
        self._base = base
        self.identities: tuple[TunerIdentity, ...] = ()

    def _read(self) -> tuple[DevicePlan, list[TunerIdentity]]:
        db, settings = self._runtime.db, self._runtime.settings
        plan = settle(db, settings)
        node = self._runtime.node_id  # in a cluster each node is its own device
        return plan, [for_node(i, node) for i in device_identities(db, settings, plan, self._base)]

    def _warm(self, plan: DevicePlan) -> None:
        if len(plan.devices) < 2:
            return  # one device: its guide is the whole one, kept warm after every import
        cache = self._runtime.catalog.guide_cache
        for device in plan.devices:
            rows = list(plan.rows(device.number))
            warm_rows(self._runtime.db, cache, device_guide_prefix(device.number) + "epg.xml", rows)

    async def refresh(self, *, warm: bool = False) -> DevicePlan:
        plan, found = await self._runtime.db.write(self._read)
        self.identities = tuple(found)
        if warm:
            await self._runtime.db.run(self._warm, plan)
        return plan

    async def keep_fresh(
        self, listeners: DevicePortListeners, interval: float = DIRECTORY_REFRESH
    ) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                plan = await self.refresh(warm=True)
                if await listeners.sync(plan):
                    await self.refresh()
            except SQLAlchemyError as exc:
                log.warning("devices not re-read for discovery: %s", type(exc).__name__)

    def discovery(self) -> list[DeviceInfo]:
        return [device_info_from(identity) for identity in self.identities]

    def ssdp(self) -> list[SsdpDevice]:
        return [ssdp_device_from(identity) for identity in self.identities]


class _Server(uvicorn.Server):
    """uvicorn's server, telling :class:`DevicePortListeners` when it is up."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.up.set()

    def protocol(self) -> asyncio.Protocol:
        """A connection handler like the main port's (same app, state and limits)."""
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )


class DevicePortListeners:
    """One listener per device served on its own port (see the module docstring)."""

    def __init__(self, runtime: Runtime, server: _Server, ports: DevicePorts, host: str) -> None:
        self._runtime = runtime
        self._server = server
        self._ports = ports
        self._host = host
        self._open: dict[int, tuple[int, asyncio.Server]] = {}  # number → (port, listener)
        self._warned: set[int] = set()
        self._lock = asyncio.Lock()

    async def sync(self, plan: DevicePlan) -> bool:
        """Open the ports of ``plan``'s devices, close those of removed ones;
        True when the set of devices on their path URL only changed."""
        if not self._server.up.is_set():
            return False
        async with self._lock:
            settings = self._runtime.settings
            wanted = {
                d.number: port
                for d in plan.devices
                if (port := served_port(settings, d.number)) is not None
            }
            for number, (port, listener) in list(self._open.items()):
                if wanted.get(number) != port:
                    self._close(number, listener)
            unserved: set[int] = set()
            for number, port in sorted(wanted.items()):
                if number not in self._open and not await self._listen(number, port):
                    unserved.add(number)
            return await self._record(unserved)

    async def _listen(self, number: int, port: int) -> bool:
        loop = asyncio.get_running_loop()
        config = self._server.config
        try:
            listener = await loop.create_server(
                self._server.protocol, host=self._host, port=port, backlog=config.backlog
            )
        except OSError as exc:
            if number not in self._warned:
                self._warned.add(number)
                log.warning(
                    "device %d: port %d not available (%s); it is served at /devices/%d only",
                    number,
                    port,
                    exc.strerror or type(exc).__name__,
                    number,
                )
            return False
        self._warned.discard(number)
        self._open[number] = (port, listener)
        self._ports.by_port[port] = number
        self._server.servers.append(listener)  # closed and drained with the main port
        log.info("device %d served on port %d", number, port)
        return True

    def _close(self, number: int, listener: asyncio.Server) -> None:
        self._open.pop(number)
        # by_port keeps the port: a connection kept alive from before now answers 404.
        listener.close()
        if listener in self._server.servers:
            self._server.servers.remove(listener)

    async def _record(self, unserved: set[int]) -> bool:
        db = self._runtime.db
        stored = await db.run(get_state, db, UNSERVED_PORTS_KEY)
        if isinstance(stored, list) and set(stored) == unserved:
            return False
        await db.write(set_state, db, UNSERVED_PORTS_KEY, sorted(unserved))
        return True


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve_app(
    app: FastAPI,
    runtime: Runtime,
    *,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``app`` with discovery, SSDP and the periodic jobs until cancelled,
    interrupted, or ``stop`` is set."""
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            # Forwarded headers are applied by the app, from STREAMFORGE_TRUSTED_PROXIES only.
            proxy_headers=False,
            timeout_graceful_shutdown=3,
        )
    )
    directory = DeviceDirectory(runtime, public_base_url(runtime.settings))
    discovery = DiscoveryResponder(directory.discovery)
    ssdp = SsdpResponder(directory.ssdp)
    listeners = DevicePortListeners(runtime, server, device_ports(app), host)

    async def open_ports() -> None:
        if await listeners.sync(await directory.refresh()):
            await directory.refresh()

    async def open_ports_when_up() -> None:
        await server.up.wait()
        await open_ports()

    device_ports(app).opener = open_ports

    async def stop_when_asked(event: asyncio.Event) -> None:
        await event.wait()
        server.should_exit = True

    watcher = (
        runtime.tasks.spawn(stop_when_asked(stop), name="stop-watch") if stop is not None else None
    )
    refresher = opener = None
    try:
        await directory.refresh()
        refresher = runtime.tasks.spawn(directory.keep_fresh(listeners), name="device-directory")
        opener = runtime.tasks.spawn(open_ports_when_up(), name="device-ports")
        if runtime.settings.discovery_enabled:
            await discovery.start(host, runtime.settings.discovery_port)
        if runtime.settings.ssdp_enabled and not is_loopback(host):
            # SSDP multicasts NOTIFY on the LAN; a loopback-only server has
            # nobody to announce itself to.
            await ssdp.start()
        start_periodic_jobs(runtime)
        runtime.loop_monitor.start(runtime.tasks)
        await server.serve()
    finally:
        device_ports(app).opener = None
        for task in (watcher, refresher, opener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await discovery.stop()
        await ssdp.stop()


async def serve(runtime: Runtime, *, host: str, port: int) -> None:
    """Serve StreamForge until cancelled or interrupted, then close the runtime.

    In cluster mode the node joins the cluster first (a one-line
    :class:`~streamforge.errors.ConfigError` when Redis is unreachable)."""
    try:
        await runtime.start_cluster(public_base_url(runtime.settings))
        tune_for_serving()
        await serve_app(create_app(runtime), runtime, host=host, port=port)
    finally:
        await runtime.aclose()


def run(runtime: Runtime, *, host: str, port: int) -> None:
    """Serve until Ctrl-C / SIGTERM; a requested stop is a clean exit."""
    try:
        asyncio.run(serve(runtime, host=host, port=port))
    except KeyboardInterrupt:
        log.info("stopped")

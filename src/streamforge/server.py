"""Running the server: the HTTP app plus its background services —
HDHomeRun UDP discovery, SSDP, the periodic sync/refresh jobs and the
event-loop lag monitor.

Discovery and SSDP answer for every virtual device
(:mod:`streamforge.outputs.devices`) from a :class:`DeviceDirectory`: the
devices' identities read on the database's threads at start and every
:data:`DIRECTORY_REFRESH` seconds, so no datagram reads the database on the
event loop. The same refresh keeps each device's own guide rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging

import uvicorn
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from streamforge.outputs.devices import DevicePlan, device_identities, settle
from streamforge.outputs.discovery import DeviceInfo, DiscoveryResponder, device_info_from
from streamforge.outputs.guide_cache import device_guide_prefix, warm_rows
from streamforge.outputs.hdhomerun import TunerIdentity
from streamforge.outputs.setup_urls import public_base_url
from streamforge.outputs.ssdp import SsdpDevice, SsdpResponder, ssdp_device_from
from streamforge.runtime import Runtime
from streamforge.scheduler import start_periodic_jobs
from streamforge.web.app import create_app

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
        return plan, device_identities(db, settings, plan, self._base)

    def _warm(self, plan: DevicePlan) -> None:
        if len(plan.devices) < 2:
            return  # one device: its guide is the whole one, kept warm after every import
        cache = self._runtime.catalog.guide_cache
        for device in plan.devices:
            rows = list(plan.rows(device.number))
            warm_rows(self._runtime.db, cache, device_guide_prefix(device.number) + "epg.xml", rows)

    async def refresh(self, *, warm: bool = False) -> None:
        plan, found = await self._runtime.db.write(self._read)
        self.identities = tuple(found)
        if warm:
            await self._runtime.db.run(self._warm, plan)

    async def keep_fresh(self, interval: float = DIRECTORY_REFRESH) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh(warm=True)
            except SQLAlchemyError as exc:
                log.warning("devices not re-read for discovery: %s", type(exc).__name__)

    def discovery(self) -> list[DeviceInfo]:
        return [device_info_from(identity) for identity in self.identities]

    def ssdp(self) -> list[SsdpDevice]:
        return [ssdp_device_from(identity) for identity in self.identities]


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
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,
        )
    )
    directory = DeviceDirectory(runtime, public_base_url(runtime.settings))
    discovery = DiscoveryResponder(directory.discovery)
    ssdp = SsdpResponder(directory.ssdp)

    async def stop_when_asked(event: asyncio.Event) -> None:
        await event.wait()
        server.should_exit = True

    watcher = (
        runtime.tasks.spawn(stop_when_asked(stop), name="stop-watch") if stop is not None else None
    )
    refresher = None
    try:
        await directory.refresh()
        refresher = runtime.tasks.spawn(directory.keep_fresh(), name="device-directory")
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
        for task in (watcher, refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await discovery.stop()
        await ssdp.stop()


async def serve(runtime: Runtime, *, host: str, port: int) -> None:
    """Serve StreamForge until cancelled or interrupted, then close the runtime."""
    try:
        await serve_app(create_app(runtime), runtime, host=host, port=port)
    finally:
        await runtime.aclose()


def run(runtime: Runtime, *, host: str, port: int) -> None:
    """Serve until Ctrl-C / SIGTERM; a requested stop is a clean exit."""
    try:
        asyncio.run(serve(runtime, host=host, port=port))
    except KeyboardInterrupt:
        log.info("stopped")

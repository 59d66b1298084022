"""Running the server: the HTTP app plus its background services —
HDHomeRun UDP discovery, SSDP, the periodic sync/refresh jobs and the
event-loop lag monitor."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging

import uvicorn
from fastapi import FastAPI

from streamforge.outputs.discovery import DiscoveryResponder, device_info_from
from streamforge.outputs.identity import tuner_identity
from streamforge.outputs.setup_urls import public_base_url
from streamforge.outputs.ssdp import SsdpResponder, ssdp_device_from
from streamforge.runtime import Runtime
from streamforge.scheduler import start_periodic_jobs
from streamforge.web.app import create_app

log = logging.getLogger(__name__)


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
    base = public_base_url(runtime.settings)
    discovery = DiscoveryResponder(
        lambda: device_info_from(tuner_identity(runtime.db, runtime.settings, base))
    )
    ssdp = SsdpResponder(
        lambda: ssdp_device_from(tuner_identity(runtime.db, runtime.settings, base))
    )

    async def stop_when_asked(event: asyncio.Event) -> None:
        await event.wait()
        server.should_exit = True

    watcher = (
        runtime.tasks.spawn(stop_when_asked(stop), name="stop-watch") if stop is not None else None
    )
    try:
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
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
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

"""Running the server: the HTTP app plus its background services —
HDHomeRun UDP discovery, SSDP, and the periodic sync/refresh jobs."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from streamforge.outputs.discovery import DiscoveryResponder, device_info_from
from streamforge.outputs.identity import tuner_identity
from streamforge.outputs.lan import advertised_base_url
from streamforge.outputs.ssdp import SsdpResponder, ssdp_device_from
from streamforge.runtime import Runtime
from streamforge.scheduler import start_periodic_jobs
from streamforge.web.app import create_app

log = logging.getLogger(__name__)


def public_base_url(runtime: Runtime) -> str:
    settings = runtime.settings
    return settings.base_url or advertised_base_url(settings.host, settings.port)


async def serve(runtime: Runtime, *, host: str, port: int, periodic: bool = True) -> None:
    """Serve until cancelled or interrupted."""
    app = create_app(runtime)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    base = public_base_url(runtime)

    discovery = DiscoveryResponder(
        lambda: device_info_from(tuner_identity(runtime.db, runtime.settings, base))
    )
    ssdp = SsdpResponder(
        lambda: ssdp_device_from(tuner_identity(runtime.db, runtime.settings, base))
    )
    try:
        if runtime.settings.discovery_enabled:
            await discovery.start(host, runtime.settings.discovery_port)
        if runtime.settings.ssdp_enabled:
            await ssdp.start()
        if periodic:
            start_periodic_jobs(runtime)
        await server.serve()
    finally:
        await discovery.stop()
        await ssdp.stop()
        await runtime.aclose()


def run(runtime: Runtime, *, host: str, port: int) -> None:
    """Serve until Ctrl-C / SIGTERM; a requested stop is a clean exit."""
    try:
        asyncio.run(serve(runtime, host=host, port=port))
    except KeyboardInterrupt:
        log.info("stopped")

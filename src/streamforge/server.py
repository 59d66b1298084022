"""Running the server: the HTTP app plus its background services."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from streamforge.runtime import Runtime
from streamforge.web.app import create_app

log = logging.getLogger(__name__)


async def serve(runtime: Runtime, *, host: str, port: int) -> None:
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
    try:
        await server.serve()
    finally:
        await runtime.aclose()


def run(runtime: Runtime, *, host: str, port: int) -> None:
    """Serve until Ctrl-C / SIGTERM; a requested stop is a clean exit."""
    try:
        asyncio.run(serve(runtime, host=host, port=port))
    except KeyboardInterrupt:
        log.info("stopped")

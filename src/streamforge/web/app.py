"""The HTTP application factory.

``create_app(runtime)`` builds a FastAPI app around an already-built
:class:`~streamforge.runtime.Runtime`; no state lives at module level. The
endpoints Plex and players use (discovery, lineup, playlist, guide, streams)
are open; ``/api/v1`` and the UI need the admin password.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from streamforge import __version__
from streamforge.runtime import Runtime
from streamforge.web import (
    api_accounts,
    api_channels,
    api_core,
    api_devices,
    api_epg,
    plex,
    streams,
    ui,
)
from streamforge.web.errors import install_error_handlers
from streamforge.web.ui.sessions import UiSessions


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="StreamForge",
        version=__version__,
        description="IPTV-to-Plex bridge with seamless automatic stream failover.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.runtime = runtime
    app.state.ui_sessions = UiSessions()
    install_error_handlers(app)

    @app.get("/healthz", summary="Liveness check", tags=["system"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(api_core.router, tags=["admin"])
    app.include_router(api_accounts.router, tags=["accounts"])
    app.include_router(api_epg.router, tags=["guide"])
    app.include_router(api_channels.router)
    app.include_router(api_devices.router)
    app.include_router(plex.router)
    app.include_router(plex.device_router)
    app.include_router(streams.router)
    app.include_router(streams.api)
    app.mount("/ui/static", StaticFiles(directory=ui.STATIC_DIR), name="ui-static")
    app.include_router(ui.router)
    return app

"""The HTTP application factory.

``create_app(runtime)`` builds a FastAPI app around an already-built
:class:`~streamforge.runtime.Runtime`; no state lives at module level. The
endpoints Plex and players use (discovery, lineup, playlist, guide, streams)
are open; ``/api/v1`` and the UI need the admin password.

A device served on its own port (:mod:`streamforge.outputs.devices`, "A port
per device") answers at that port's root: :class:`DevicePortPaths` maps a
request that came in on device N's port (``/discover.json``, ``/lineup.json``,
``/auto/v{n}`` …) to ``/devices/N/…``. Which ports those are is
:class:`DevicePorts` on ``app.state.device_ports``, filled by the server that
opens them (:mod:`streamforge.server`); the app alone serves none.

Every request first passes the guards of :mod:`streamforge.web.limits`
(trusted proxies, the 1 MB body cap, authentication before a body is read);
password checks go through the app's :class:`~streamforge.web.auth.AuthGate`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from streamforge import __version__
from streamforge.runtime import Runtime
from streamforge.web import (
    api_accounts,
    api_channels,
    api_core,
    api_devices,
    api_epg,
    internal,
    plex,
    streams,
    ui,
)
from streamforge.web.auth import AuthGate
from streamforge.web.deps import require_admin
from streamforge.web.errors import install_error_handlers
from streamforge.web.limits import AuthBeforeBody, BodyLimit, TrustedProxies
from streamforge.web.ui.sessions import UiSessions

DEVICE_ROOT_PATHS = frozenset(
    {
        "/discover.json",
        "/lineup.json",
        "/lineup_status.json",
        "/lineup.post",
        "/device.xml",
        "/capability",
        "/epg.xml",
        "/epg.xml.gz",
        "/xmltv.xml",
        "/playlist.m3u",
        "/playlist.m3u8",
    }
)
DEVICE_ROOT_PREFIXES = ("/auto/", "/stream/")


@dataclass
class DevicePorts:
    """The extra HTTP ports the running server listens on (local port → device
    number) and how to open the ports of devices added at run time."""

    by_port: dict[int, int] = field(default_factory=dict)
    opener: Callable[[], Awaitable[None]] | None = None

    async def open_new(self) -> None:
        """Open (or close) ports to match the devices now; nothing without a server."""
        if self.opener is not None:
            await self.opener()


def device_ports(app: FastAPI) -> DevicePorts:
    found: DevicePorts = app.state.device_ports
    return found


class DevicePortPaths:
    """ASGI middleware: a device-document path on device N's own port → ``/devices/N/…``."""

    def __init__(self, app: ASGIApp, ports: DevicePorts) -> None:
        self.app = app
        self.ports = ports

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.ports.by_port:
            server = scope.get("server")
            number = self.ports.by_port.get(server[1]) if server else None
            path: str = scope["path"]
            if number is not None and (
                path in DEVICE_ROOT_PATHS or path.startswith(DEVICE_ROOT_PREFIXES)
            ):
                prefix = f"/devices/{number}"
                scope = {
                    **scope,
                    "path": prefix + path,
                    "raw_path": prefix.encode() + (scope.get("raw_path") or path.encode()),
                }
        await self.app(scope, receive, send)


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
    app.state.ui_sessions = UiSessions(db=runtime.db)
    app.state.device_ports = ports = DevicePorts()
    app.add_middleware(DevicePortPaths, ports=ports)
    app.state.auth_gate = AuthGate()
    install_error_handlers(app)

    @app.get("/healthz", summary="Liveness check (and this node's cluster state)", tags=["system"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, **api_core.node_state(runtime)}

    app.include_router(api_core.router, tags=["admin"])
    app.include_router(api_accounts.router, tags=["accounts"])
    app.include_router(api_epg.router, tags=["guide"])
    app.include_router(api_channels.router)
    app.include_router(api_devices.router)
    app.include_router(plex.router)
    app.include_router(plex.device_router)
    app.include_router(streams.router)
    app.include_router(streams.api)
    app.include_router(internal.router)
    app.mount("/ui/static", StaticFiles(directory=ui.STATIC_DIR), name="ui-static")
    app.include_router(ui.router)
    # Added innermost first: a request meets TrustedProxies, then BodyLimit, then
    # AuthBeforeBody, then the routes.
    app.add_middleware(AuthBeforeBody, check=require_admin)
    app.add_middleware(BodyLimit)
    app.add_middleware(TrustedProxies, networks=runtime.settings.trusted_networks)
    return app

"""The mock Xtream Codes panel as an aiohttp application.

Theory of operation
-------------------
:func:`build_app` wires the three faces of the panel onto one
:class:`~.state.ProviderState`: the catalogue API (:mod:`.api`), live streams
(:mod:`.live`) and the control API (:mod:`.control`). Paths under ``/lb/`` repeat the
catalogue API; they are where the ``redirect`` quirk sends clients.

The access log goes through :class:`RedactingAccessLogger`, which replaces every
password (``password=`` query parameters and the password segment of stream URLs)
with ``***`` — credentials never reach a log.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from streamforge.mockprovider import api, control, live
from streamforge.mockprovider.api import STATE
from streamforge.mockprovider.state import ProviderState, redact

access_log = logging.getLogger("streamforge.mockprovider.access")


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request: remote, method, path with passwords masked, status, time."""

    def log(self, request: Any, response: Any, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        self.logger.info(
            "%s %s %s %s %.3fs",
            request.remote,
            request.method,
            redact(request.path_qs),
            response.status,
            time,
        )


def build_app(state: ProviderState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    for prefix in ("", api.REDIRECT_PREFIX):
        app.router.add_route("*", f"{prefix}/player_api.php", api.player_api)
        app.router.add_route("*", f"{prefix}/get.php", api.get_php)
        app.router.add_route("*", f"{prefix}/xmltv.php", api.xmltv_php)
    control.add_routes(app)
    app.router.add_get("/live/play/{token}/{stream}", live.live_by_token)
    app.router.add_get("/live/{user}/{password}/{stream}", live.live_by_path)
    app.router.add_get("/{user}/{password}/{stream}", live.live_by_path)
    return app

"""The mock panel's JSON control API under ``/_control`` (used by the CLI and other processes).

Routes (all JSON)::

    GET    /_control/stats[?events=N]            connection counters and (newest N) log
    GET    /_control/faults                      current faults, quirks, limit mode
    POST   /_control/streams/{id}/fault          body: Fault fields, e.g. {"kind": "stall"},
                                                 {"kind": "black", "after": 5},
                                                 {"kind": "slow", "factor": 0.6},
                                                 {"kind": "bursty", "period": 8}
    POST   /_control/streams/{id}/recover        the stream is healthy again
    POST   /_control/streams/{id}/kill           abort its connections (?reset=1 for RST)
    POST   /_control/recover                     every stream healthy, every quirk gone
    POST   /_control/quirks                      body: ApiQuirk fields
    DELETE /_control/quirks                      remove all quirks
    POST   /_control/accounts/{username}         body: status / exp_date / max_connections …
    POST   /_control/limit_mode                  body: {"mode": "kill_oldest" | "refuse_458"}

Errors answer ``400 {"error": "..."}`` (bad input) or ``404`` (unknown account).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from streamforge.errors import ConfigError, NotFoundError
from streamforge.mockprovider.api import STATE
from streamforge.mockprovider.connections import LimitMode
from streamforge.mockprovider.faults import ApiQuirk, Fault

PREFIX = "/_control"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return data


def _stream_id(request: web.Request) -> int:
    raw = request.match_info["stream_id"]
    if not raw.isdigit():
        raise web.HTTPBadRequest(text="stream id must be a number")
    return int(raw)


async def stats(request: web.Request) -> web.Response:
    """``?events=N`` returns only the newest N log events (the log can be long)."""
    raw = request.query.get("events")
    if raw is not None and not raw.isdigit():
        return _error(400, "events must be a non-negative number")
    last = int(raw) if raw is not None else None
    return web.json_response(request.app[STATE].stats().to_dict(last))


async def faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].faults_dict())


async def set_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_dict(await _body(request))
    except ConfigError as exc:
        return _error(400, str(exc))
    request.app[STATE].set_fault(_stream_id(request), fault)
    return web.json_response({"ok": True, "fault": fault.to_dict()})


async def recover_stream(request: web.Request) -> web.Response:
    request.app[STATE].recover(_stream_id(request))
    return web.json_response({"ok": True})


async def kill_stream(request: web.Request) -> web.Response:
    reset = request.query.get("reset", "") in ("1", "true", "yes")
    killed = request.app[STATE].kill(stream_id=_stream_id(request), reset=reset)
    return web.json_response({"ok": True, "killed": killed})


async def recover_all(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.recover(None)
    state.clear_quirks()
    return web.json_response({"ok": True})


async def add_quirk(request: web.Request) -> web.Response:
    try:
        quirk = ApiQuirk.from_dict(await _body(request))
    except ConfigError as exc:
        return _error(400, str(exc))
    request.app[STATE].add_quirk(quirk)
    return web.json_response({"ok": True, "quirk": quirk.to_dict()})


async def clear_quirks(request: web.Request) -> web.Response:
    request.app[STATE].clear_quirks()
    return web.json_response({"ok": True})


async def update_account(request: web.Request) -> web.Response:
    try:
        account = request.app[STATE].update_account(
            request.match_info["username"], await _body(request)
        )
    except NotFoundError as exc:
        return _error(404, str(exc))
    except (ConfigError, ValueError, TypeError) as exc:
        return _error(400, str(exc))
    return web.json_response(
        {
            "ok": True,
            "username": account.username,
            "status": account.status.value,
            "max_connections": account.max_connections,
        }
    )


async def set_limit_mode(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        mode = LimitMode(str(body.get("mode")))
    except ValueError:
        return _error(400, f"mode must be one of {[m.value for m in LimitMode]}")
    request.app[STATE].set_limit_mode(mode)
    return web.json_response({"ok": True, "mode": mode.value})


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/stats", stats)
    app.router.add_get(f"{PREFIX}/faults", faults)
    app.router.add_post(f"{PREFIX}/streams/{{stream_id}}/fault", set_fault)
    app.router.add_post(f"{PREFIX}/streams/{{stream_id}}/recover", recover_stream)
    app.router.add_post(f"{PREFIX}/streams/{{stream_id}}/kill", kill_stream)
    app.router.add_post(f"{PREFIX}/recover", recover_all)
    app.router.add_post(f"{PREFIX}/quirks", add_quirk)
    app.router.add_delete(f"{PREFIX}/quirks", clear_quirks)
    app.router.add_post(f"{PREFIX}/accounts/{{username}}", update_account)
    app.router.add_post(f"{PREFIX}/limit_mode", set_limit_mode)

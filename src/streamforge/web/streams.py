"""The tuner URLs ``/auto/v{GuideNumber}`` (open, like a real HDHomeRun), the
live-session API and Prometheus metrics.

A tune joins (or starts) the channel's session and streams MPEG-TS with no
Content-Length until the client leaves or every stream has failed. Errors
follow the HDHomeRun convention: 404 for an unknown channel, 503 with an
``X-HDHomeRun-Error`` header when the channel cannot be tuned.

Every virtual device tunes at ``/devices/N/auto/v{GuideNumber}`` too; a
channel that is not on device N answers 404 there. All devices share the one
:class:`~streamforge.streaming.manager.SessionManager`, so the same channel
tuned through the root and through its device is one session, and the
accounts' real connection limit (805) applies across devices.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from streamforge.errors import ConfigError
from streamforge.outputs.devices import current_plan
from streamforge.runtime import Runtime
from streamforge.streaming.fanout import FanoutReader
from streamforge.streaming.manager import NoSession, TuneError
from streamforge.streaming.session import ChannelSession, StreamNotFound, SwitchRejected
from streamforge.web.deps import get_runtime, require_admin

router = APIRouter()
api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_admin)], tags=["streams"])


async def _body(session: ChannelSession, reader: FanoutReader) -> AsyncIterator[bytes]:
    try:
        async for chunk in reader:
            yield chunk
    finally:
        session.leave(reader)


@router.get("/auto/v{guide_number}", tags=["plex"])
@router.get("/stream/{guide_number}.ts", tags=["plex"])
async def tune(
    guide_number: str, request: Request, runtime: Runtime = Depends(get_runtime)
) -> Response:
    return await _tune(guide_number, request, runtime)


@router.get("/devices/{number}/auto/v{guide_number}", tags=["plex"])
@router.get("/devices/{number}/stream/{guide_number}.ts", tags=["plex"])
async def device_tune(
    number: int, guide_number: str, request: Request, runtime: Runtime = Depends(get_runtime)
) -> Response:
    plan = await current_plan(runtime.db, runtime.settings)
    if plan.device(number) is None:
        return JSONResponse({"error": f"no device {number}"}, status_code=404)
    if not any(row.guide_number == guide_number for row in plan.rows(number)):
        return JSONResponse(
            {"error": f"no channel {guide_number} on device {number}"}, status_code=404
        )
    return await _tune(guide_number, request, runtime)


async def _tune(guide_number: str, request: Request, runtime: Runtime) -> Response:
    try:
        session, reader = await runtime.streams.tune(
            guide_number,
            request.query_params.get("quality"),
            request.client.host if request.client is not None else None,
        )
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except TuneError as exc:
        headers = {"X-HDHomeRun-Error": f"{exc.code} {exc}"} if exc.code else {}
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)
    return StreamingResponse(
        _body(session, reader),
        media_type="video/mp2t",
        headers={"Cache-Control": "no-cache, no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/metrics", tags=["system"])
async def metrics(runtime: Runtime = Depends(get_runtime)) -> Response:
    return Response(
        generate_latest(runtime.streams.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@api.get("/sessions", summary="Live channel sessions")
async def sessions(runtime: Runtime = Depends(get_runtime)) -> list[dict[str, Any]]:
    return runtime.streams.snapshot()


@api.get("/breakers", summary="Circuit breaker state per provider stream")
async def breakers(runtime: Runtime = Depends(get_runtime)) -> list[dict[str, Any]]:
    return runtime.streams.breaker_states()


class SwitchRequest(BaseModel):
    """``{"stream": "alpha/102"}`` (account/stream id, or a bare id) or ``{"next": true}``."""

    stream: str | None = None
    next: bool = False


def _control_error(exc: Exception) -> JSONResponse:
    status = 409 if isinstance(exc, SwitchRejected) else 404
    return JSONResponse({"error": str(exc)}, status_code=status)


@api.post("/sessions/{guide_number}/switch", summary="Switch a live channel to a stream")
async def switch(
    guide_number: str, body: SwitchRequest, runtime: Runtime = Depends(get_runtime)
) -> Any:
    if (body.stream is None) == (not body.next):
        return JSONResponse(
            {"error": 'give either "stream" (e.g. "alpha/102") or "next": true'}, status_code=400
        )
    try:
        return runtime.streams.switch(guide_number, body.stream if not body.next else None)
    except (NoSession, StreamNotFound, SwitchRejected) as exc:
        return _control_error(exc)


@api.post("/sessions/{guide_number}/unpin", summary="Let a live channel upgrade again")
async def unpin(guide_number: str, runtime: Runtime = Depends(get_runtime)) -> Any:
    try:
        return runtime.streams.unpin(guide_number)
    except (NoSession, SwitchRejected) as exc:
        return _control_error(exc)

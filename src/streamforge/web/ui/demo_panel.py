"""The demo panel's actions (only in ``streamforge demo``, where
``app.state.demo`` holds :class:`~streamforge.demo.DemoControls`): break the
stream a channel is playing, and heal everything the panel broke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from streamforge.web.deps import require_admin
from streamforge.web.ui.common import json_object

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_admin)])


def _controls(request: Request) -> Any:
    demo = getattr(request.app.state, "demo", None)
    if demo is None:
        raise HTTPException(404, "not in demo mode")
    return demo


@router.post("/ui/demo/fault")
async def demo_fault(request: Request) -> JSONResponse:
    demo = _controls(request)
    body = await json_object(request)
    result = demo.inject(
        str(body.get("guide_number", "")), str(body.get("kind", "")), once=bool(body.get("once"))
    )
    return JSONResponse(result)


@router.post("/ui/demo/recover")
async def demo_recover(request: Request) -> JSONResponse:
    return JSONResponse(_controls(request).recover())

"""The Devices page: the virtual HDHomeRun devices, what each takes, their
addresses, and adding, renaming, re-ruling or removing one (through
``/api/v1/devices``, from ``static/devices.js``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from streamforge.outputs import devices as dev
from streamforge.outputs.setup_urls import device_setup_urls
from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime
from streamforge.web.ui.common import render, require_page_session
from streamforge.web.ui.sessions import UiSession

router = APIRouter(include_in_schema=False)


@router.get("/ui/devices", response_class=HTMLResponse)
async def devices_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    rows = await runtime.db.write(device_setup_urls, runtime.db, runtime.settings)
    return await render(
        request,
        "devices",
        session,
        devices=rows,
        cap=runtime.settings.channels_per_device,
        ports_on=runtime.settings.device_ports == "auto",
        rules=dev.RULES,
    )

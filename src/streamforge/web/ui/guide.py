"""The Guide page (``/ui/guide``): what is on now and next on every published
channel, on a three-hour time axis, searchable by channel or programme title.
The programmes are the ones ``/epg.xml`` publishes (merged from the guide
sources by priority, time offsets applied); the data comes from
:meth:`AdminViews.guide <streamforge.admin_views.AdminViews.guide>`.

Also ``/favicon.ico``, which browsers ask for on every page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime
from streamforge.web.ui.common import STATIC_DIR, render, require_page_session
from streamforge.web.ui.sessions import UiSession

router = APIRouter(include_in_schema=False)


@router.get("/ui/guide", response_class=HTMLResponse)
async def guide_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
    search: str | None = Query(None, max_length=200),
) -> Response:
    data = await runtime.views.guide(search=search or None)
    return await render(request, "guide", session, **data)


@router.get("/favicon.ico")
async def favicon() -> Response:
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )

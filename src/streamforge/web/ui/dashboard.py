"""The dashboard: accounts, guides, channel counts, what needs attention, live
sessions and the most serious recent events (data from ``runtime.views``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from streamforge.admin_views import breakers_by_stream
from streamforge.runtime import Runtime
from streamforge.web.api_core import node_state
from streamforge.web.deps import get_runtime
from streamforge.web.ui.common import render, require_page_session
from streamforge.web.ui.live import sessions_with_pictures
from streamforge.web.ui.sessions import UiSession

router = APIRouter(include_in_schema=False)


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 client``, ``2 clients``, ``0 failovers`` (``words`` for irregular plurals)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


@router.get("/ui/", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    data = await runtime.views.dashboard(
        in_use=runtime.streams.slots.snapshot(),
        breakers=breakers_by_stream(runtime.streams.breaker_states()),
    )
    return await render(
        request,
        "dashboard",
        session,
        sessions=sessions_with_pictures(runtime),
        plural=plural,
        cluster_node=node_state(runtime),
        **data,
    )

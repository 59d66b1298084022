"""What every UI page shares: the template renderer, the page-session guard,
rendering with the session's CSRF token, and reading a JSON body."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from streamforge import __version__
from streamforge.web.deps import SESSION_COOKIE
from streamforge.web.ui.sessions import UiSession, UiSessions

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


def ui_sessions(request: Request) -> UiSessions:
    """The app's logged-in browsers (``app.state.ui_sessions``)."""
    return cast(UiSessions, request.app.state.ui_sessions)


def templates(app: FastAPI) -> Jinja2Templates:
    """The app's template renderer (built on first use, kept on ``app.state``)."""
    found = getattr(app.state, "ui_templates", None)
    if found is None:
        found = Jinja2Templates(directory=str(TEMPLATE_DIR))
        found.env.globals["version"] = __version__
        app.state.ui_templates = found
    return cast(Jinja2Templates, found)


def require_page_session(request: Request) -> UiSession:
    """The browser's UI session; without one, redirect to the login page."""
    session = ui_sessions(request).get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "login required", {"Location": f"/ui/login?next={quote(target)}"})
    return session


async def render(
    request: Request, name: str, session: UiSession | None, **context: Any
) -> Response:
    """Render ``templates/<name>.html`` with the session's CSRF token and the demo flag.

    The template renders in a worker thread: a long channel list is real work.
    """
    context.update(request=request, csrf=session.csrf if session else "", page=name)
    context.setdefault("demo", getattr(request.app.state, "demo", None) is not None)
    renderer = templates(request.app)
    return await run_in_threadpool(renderer.TemplateResponse, request, f"{name}.html", context)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 422."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPException(422, "send a JSON object")
    return body

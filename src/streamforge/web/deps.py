"""Request dependencies: the runtime, and the admin guard."""

from __future__ import annotations

from typing import cast

from fastapi import HTTPException, Request

from streamforge.runtime import Runtime
from streamforge.web.auth import verify_basic_header

SESSION_COOKIE = "sf_session"


def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def require_admin(request: Request) -> None:
    """Let the request through with valid Basic credentials or a UI session cookie.

    A cookie-authenticated request that changes state must also carry the
    session's CSRF token in ``X-CSRF-Token`` (checked by ``ui_sessions.valid``):
    403 without it. A stale cookie gets a 401 without the Basic challenge, so
    the browser does not pop up a password dialog over the UI.

    A plain (not ``async``) dependency on purpose: FastAPI runs it in its worker
    threads, so the stored-hash read and the Argon2 check never run on the
    event loop.
    """
    runtime = get_runtime(request)
    if verify_basic_header(runtime.auth, request.headers.get("authorization")):
        return
    sessions = getattr(request.app.state, "ui_sessions", None)
    token = request.cookies.get(SESSION_COOKIE)
    if token and sessions is not None:
        if sessions.valid(token, request):
            return
        if sessions.valid(token):
            raise HTTPException(403, "missing or wrong X-CSRF-Token for this session")
        raise HTTPException(401, "the UI session has ended; log in again")
    raise HTTPException(
        status_code=401,
        detail="admin authentication required",
        headers={"WWW-Authenticate": 'Basic realm="StreamForge"'},
    )

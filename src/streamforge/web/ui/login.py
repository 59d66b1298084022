"""Login and logout: plain forms, the login form guarded by a double-submit token.

Sessions live in the shared database (:mod:`streamforge.web.ui.sessions`): a
browser logged in through one node of a cluster is logged in on all of them.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from streamforge.runtime import Runtime
from streamforge.web.auth import Verdict
from streamforge.web.deps import SESSION_COOKIE, auth_gate, client_address, get_runtime
from streamforge.web.ui.common import render, ui_sessions
from streamforge.web.ui.sessions import tokens_match

LOGIN_CSRF_COOKIE = "sf_login_csrf"

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui/"


@router.get("/")
async def root() -> RedirectResponse:
    """The bare address opens the UI."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/login")
async def login_page(
    request: Request, next: str | None = None, error: str | None = None
) -> Response:
    """The login form, with a double-submit token (cookie + hidden field)."""
    return await _login_form(request, next, error)


async def _login_form(request: Request, next: str | None, error: str | None) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = await render(
        request, "login", None, login_csrf=token, next=_safe_next(next), error=error
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui/login"
    )
    return response


async def _login_refused(request: Request, next: str, error: str, status: int) -> Response:
    response = await _login_form(request, next, error)
    response.status_code = status
    return response


@router.post("/ui/login")
async def login(
    request: Request,
    password: str = Form(""),
    csrf: str = Form(""),
    next: str = Form("/ui/"),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    """Rate limit, check the form token, check the password, then start a session."""
    sessions = ui_sessions(request)
    wait = sessions.limiter.attempt(client_address(request))
    if wait:
        retry = str(int(wait) + 1)
        response = await _login_refused(
            request, next, f"Too many login attempts; try again in {retry} s.", 429
        )
        response.headers["Retry-After"] = retry
        return response
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf):
        return await _login_refused(request, next, "The login form expired; please try again.", 403)
    # The stored hash is read and Argon2 checks it off the event loop, in the
    # auth gate's own threads (shared limits with the API's Basic checks).
    check = await auth_gate(request).check_password(runtime.auth, password, client_address(request))
    if check.verdict is Verdict.LIMITED or check.verdict is Verdict.BUSY:
        response = await _login_refused(
            request, next, f"Too many login attempts; try again in {check.retry_after} s.", 429
        )
        response.headers["Retry-After"] = str(check.retry_after)
        return response
    if not check.ok:
        return await _login_refused(request, next, "Wrong password.", 401)
    session = await run_in_threadpool(sessions.create)  # stored in the shared database
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict", path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@router.post("/ui/logout")
async def logout(request: Request, csrf: str = Form("")) -> Response:
    sessions = ui_sessions(request)
    session = await run_in_threadpool(sessions.get, request.cookies.get(SESSION_COOKIE))
    if session is not None:
        if not tokens_match(session.csrf, csrf):
            raise HTTPException(403, "invalid CSRF token")
        await run_in_threadpool(sessions.revoke, session.token)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

"""Request dependencies: the runtime, and the admin guard."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import HTTPException, Path, Request
from pydantic import Field

from streamforge.runtime import Runtime
from streamforge.web.auth import AuthGate, Check, Verdict

SESSION_COOKIE = "sf_session"

#: The largest id a database row can have (a signed 64-bit integer).
ID_MAX = 2**63 - 1
#: A database id in a body or query: 1 … 2⁶³-1 (422 otherwise, not an overflow).
DbId = Annotated[int, Field(ge=1, le=ID_MAX)]
#: A database id in a path.
PathId = Annotated[int, Path(ge=1, le=ID_MAX)]
#: An account priority (lower streams first).
Priority = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]


def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def auth_gate(request: Request) -> AuthGate:
    """The app's password checks (``app.state.auth_gate``)."""
    return cast(AuthGate, request.app.state.auth_gate)


def client_address(request: Request) -> str:
    """The client's address (a trusted proxy's ``X-Forwarded-For`` already applied)."""
    return request.client.host if request.client else "unknown"


async def require_admin(request: Request) -> None:
    """Let the request through with valid Basic credentials or a UI session cookie.

    A cookie-authenticated request that changes state must also carry the
    session's CSRF token in ``X-CSRF-Token`` (checked by ``ui_sessions.valid``):
    403 without it. A stale cookie gets a 401 without the Basic challenge, so
    the browser does not pop up a password dialog over the UI.

    Basic credentials go through the app's :class:`~streamforge.web.auth.AuthGate`:
    cached for a few minutes once verified, Argon2 in its own worker threads
    (never on the event loop), and after too many failures from one address a
    429 with ``Retry-After`` (503 when too many checks are already waiting).
    """
    runtime = get_runtime(request)
    header = request.headers.get("authorization")
    check: Check | None = None
    if header:
        check = await auth_gate(request).check_basic(runtime.auth, header, client_address(request))
        if check.ok:
            return
    sessions = getattr(request.app.state, "ui_sessions", None)
    token = request.cookies.get(SESSION_COOKIE)
    if token and sessions is not None:
        if sessions.valid(token, request):
            return
        if sessions.valid(token):
            raise HTTPException(403, "missing or wrong X-CSRF-Token for this session")
        raise HTTPException(401, "the UI session has ended; log in again")
    if check is not None and check.verdict is Verdict.LIMITED:
        raise HTTPException(
            429,
            f"too many failed logins from this address; try again in {check.retry_after} s",
            headers={"Retry-After": str(check.retry_after)},
        )
    if check is not None and check.verdict is Verdict.BUSY:
        raise HTTPException(
            503, "too many logins being checked; try again", headers={"Retry-After": "1"}
        )
    raise HTTPException(
        status_code=401,
        detail="admin authentication required",
        headers={"WWW-Authenticate": 'Basic realm="StreamForge"'},
    )

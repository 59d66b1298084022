"""ASGI middleware that guards the app before a handler sees a request.

* :class:`TrustedProxies` — ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are
  believed only when the connection comes from an address in
  ``STREAMFORGE_TRUSTED_PROXIES`` (default: none). The client address is then
  the right-most forwarded address that is not itself a trusted proxy — what
  the login and API rate limits count by.
* :class:`BodyLimit` — a request body is at most :data:`MAX_BODY_BYTES`
  (1 MB; the admin API's JSON and the UI's forms are far smaller): a larger
  ``Content-Length`` is answered 413 before anything is read, and a streamed
  (chunked) body is counted as it arrives and cut off at the limit.
* :class:`AuthBeforeBody` — a state-changing request (POST, PATCH, PUT,
  DELETE) to the admin API (``/api/…``) or the UI (``/ui/…``, except the
  login and logout forms, :data:`OPEN_UNSAFE_PATHS`) is authenticated
  *before* its body is read (FastAPI reads the body before it runs
  dependencies), so an unauthenticated client gets its 401/429 without the
  server buffering anything. The route's own dependency then finds the
  credentials cached.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, Sequence

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Admin paths: every state-changing route under them needs the admin password …
ADMIN_PREFIXES = ("/api/", "/ui/")
#: … except these forms, which carry their own checks.
OPEN_UNSAFE_PATHS = frozenset({"/ui/login", "/ui/logout"})


async def _send_json(send: Send, status: int, error: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class TrustedProxies:
    """Apply forwarded headers only from ``networks`` (none: never)."""

    def __init__(self, app: ASGIApp, networks: Sequence[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.strip().strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if (
            scope["type"] in {"http", "websocket"}
            and self.networks
            and client
            and self._trusted(client[0])
        ):
            scope = dict(scope)
            forwarded = _header(scope, b"x-forwarded-for")
            if forwarded:
                hops = [h.strip() for h in forwarded.split(",") if h.strip()]
                real = next((h for h in reversed(hops) if not self._trusted(h)), None)
                chosen = real or (hops[0] if hops else client[0])
                scope["client"] = (chosen, 0)
            proto = (_header(scope, b"x-forwarded-proto") or "").strip().lower()
            if proto in {"http", "https"} and scope["type"] == "http":
                scope["scheme"] = proto
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a request body over ``limit`` bytes, before or while it is read."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    def _too_large(self) -> str:
        return f"request body larger than {self.limit // 1024} KiB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            if not (length.isascii() and length.strip().isdigit()):
                await _send_json(send, 400, "malformed Content-Length", {"Connection": "close"})
                return
            if int(length) > self.limit:
                await _send_json(send, 413, self._too_large(), {"Connection": "close"})
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI re-raises an HTTPException met while reading the body.
                    raise HTTPException(413, self._too_large(), {"Connection": "close"})
            return message

        await self.app(scope, counted, send)


Check = Callable[[Request], Awaitable[None]]


class AuthBeforeBody:
    """Run ``check`` before the body of an unsafe request to an admin path is read."""

    def __init__(self, app: ASGIApp, check: Check) -> None:
        self.app = app
        self._check = check

    @staticmethod
    def needs_admin(method: str, path: str) -> bool:
        return (
            method.upper() not in SAFE_METHODS
            and path.startswith(ADMIN_PREFIXES)
            and path.rstrip("/") not in OPEN_UNSAFE_PATHS
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.needs_admin(scope["method"], scope["path"]):
            try:
                await self._check(Request(scope))
            except HTTPException as exc:
                await _send_json(send, exc.status_code, str(exc.detail), dict(exc.headers or {}))
                return
        await self.app(scope, receive, send)

"""Web UI sessions: the cookie, its CSRF token, and login rate limiting.

Theory of operation
-------------------
Logging in with the admin password creates a :class:`UiSession`: a random
256-bit session token (sent as the ``sf_session`` cookie, HttpOnly and
SameSite=Strict) and a second, independent random CSRF token. Only the
server knows which CSRF token belongs to which session; pages embed it in a
``<meta>`` tag and in every form.

A request authenticated by the cookie may *read* freely, but a state-changing
request (any method other than GET/HEAD/OPTIONS) must also prove it came from
one of our pages: the ``X-CSRF-Token`` header (fetch() calls) or the ``csrf``
form field (plain forms) has to equal the session's CSRF token. A cross-site
page can make the browser send the cookie (SameSite=Strict already stops
most of that) but cannot read the token, so it cannot forge the header.
:meth:`UiSessions.valid` does this check when it is given the request, which
is how ``web.deps.require_admin`` protects the JSON API for cookie callers.

Sessions expire after an idle period. The app keeps them in the database
(table ``ui_sessions``, only the SHA-256 of each token is stored), so they
survive a restart and — with several nodes over one database — a browser
logged in through one node is logged in on every node. The idle timer is
written back at most once per :data:`TOUCH_EVERY` seconds, so reading pages
does not turn into a write per request. Without a database (unit tests)
they live in memory. Every method is synchronous and may touch the
database: call it from a worker thread (the auth dependencies are plain
functions, which FastAPI runs in its thread pool; the login handlers use
:func:`starlette.concurrency.run_in_threadpool`).

The login form itself is protected by a double-submit token (a cookie plus
the same value in the form), because there is no session yet to bind it to.

:class:`LoginLimiter` keeps, per client address, the times of recent login
attempts in a sliding window; past the limit a login answers 429 until the
oldest attempt leaves the window.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete
from starlette.requests import Request

from streamforge.db.engine import Database
from streamforge.db.models import UiSessionRow

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"

Clock = Callable[[], float]

TOUCH_EVERY = 60.0
"""Seconds between two writes of a stored session's idle timer."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(expected: str | None, offered: str | None) -> bool:
    """Constant-time comparison of two tokens; a missing one never matches."""
    if not expected or not offered:
        return False
    return hmac.compare_digest(expected.encode(), offered.encode())


@dataclass
class UiSession:
    """One logged-in browser."""

    token: str
    csrf: str
    last_seen: float


@dataclass
class LoginLimiter:
    """At most ``limit`` login attempts per client address within ``window`` seconds."""

    limit: int = 5
    window: float = 60.0
    clock: Clock = time.monotonic
    _attempts: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, client: str) -> float:
        """Count one attempt; 0.0 if allowed, else the seconds until the next one is."""
        now = self.clock()
        with self._lock:
            for key in [
                k for k, q in self._attempts.items() if not q or q[-1] <= now - self.window
            ]:
                del self._attempts[key]
            recent = self._attempts.setdefault(client, deque())
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) >= self.limit:
                return max(recent[0] + self.window - now, 0.001)
            recent.append(now)
            return 0.0


class UiSessions:
    """The logged-in browsers of one app (``app.state.ui_sessions``): in ``db``
    (shared by every node of a cluster), or in memory without one."""

    def __init__(
        self,
        *,
        db: Database | None = None,
        idle_timeout: float = 12 * 3600,
        clock: Clock | None = None,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self._db = db
        self._idle_timeout = idle_timeout
        # Stored sessions are shared between processes: wall-clock seconds.
        self._clock: Clock = clock or (time.time if db is not None else time.monotonic)
        self._sessions: dict[str, UiSession] = {}
        self._lock = threading.Lock()
        if limiter is None:
            limiter = LoginLimiter(clock=clock) if clock is not None else LoginLimiter()
        self.limiter = limiter

    def create(self) -> UiSession:
        """A new session (call only after the password was verified)."""
        now = self._clock()
        session = UiSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now)
        if self._db is not None:
            with self._db.session() as db:
                db.execute(
                    delete(UiSessionRow).where(UiSessionRow.last_seen < now - self._idle_timeout)
                )
                db.add(
                    UiSessionRow(
                        token_hash=_digest(session.token),
                        csrf=session.csrf,
                        created_at=now,
                        last_seen=now,
                    )
                )
            return session
        with self._lock:
            self._expire(now)
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> UiSession | None:
        """The live session for ``token`` (refreshing its idle timer), else None."""
        if not token:
            return None
        now = self._clock()
        if self._db is not None:
            return self._get_stored(token, now)
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.last_seen > self._idle_timeout:
                del self._sessions[token]
                return None
            session.last_seen = now
            return session

    def _get_stored(self, token: str, now: float) -> UiSession | None:
        assert self._db is not None
        with self._db.session() as db:
            row = db.get(UiSessionRow, _digest(token))
            if row is None:
                return None
            if now - row.last_seen > self._idle_timeout:
                db.delete(row)
                return None
            if now - row.last_seen >= TOUCH_EVERY:
                row.last_seen = now
            return UiSession(token, row.csrf, row.last_seen)

    def valid(self, token: str, request: Request | None = None) -> bool:
        """True for a live session; with ``request``, unsafe methods also need the CSRF header."""
        session = self.get(token)
        if session is None:
            return False
        if request is None or request.method.upper() in SAFE_METHODS:
            return True
        return tokens_match(session.csrf, request.headers.get(CSRF_HEADER))

    def revoke(self, token: str | None) -> None:
        if not token:
            return
        if self._db is not None:
            with self._db.session() as db:
                db.execute(delete(UiSessionRow).where(UiSessionRow.token_hash == _digest(token)))
            return
        with self._lock:
            self._sessions.pop(token, None)

    def __len__(self) -> int:
        now = self._clock()
        if self._db is not None:
            with self._db.session() as db:
                db.execute(
                    delete(UiSessionRow).where(UiSessionRow.last_seen < now - self._idle_timeout)
                )
                return db.query(UiSessionRow).count()
        with self._lock:
            self._expire(now)
            return len(self._sessions)

    def _expire(self, now: float) -> None:
        stale = [t for t, s in self._sessions.items() if now - s.last_seen > self._idle_timeout]
        for token in stale:
            del self._sessions[token]

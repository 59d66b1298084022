"""The HTTP side of admin authentication: the ``Authorization: Basic`` header,
and the :class:`AuthGate` every password check of the web front end passes.

The API accepts HTTP Basic (any user name, conventionally ``admin``) with the
admin password that :class:`~streamforge.admin_auth.AdminAuth` checks; the UI
uses a session cookie (see :mod:`streamforge.web.ui.sessions`).

Theory of operation
-------------------
An Argon2id verify costs 64 MiB and tens of milliseconds of CPU, so an
unauthenticated client must not be able to make the server run many of them:

* **Concurrency**: at most :data:`VERIFY_CONCURRENCY` verifies run at once, in
  worker threads with their own :class:`anyio.CapacityLimiter` — never on the
  event loop and never in the default thread pool that sync endpoints and
  template rendering use — so Plex's discovery, lineup and stream routes never
  wait behind authentication work. At most :data:`VERIFY_QUEUE` more may wait;
  past that a check answers *busy* (HTTP 503) at once.
* **Rate**: per client address, at most :data:`FAILURE_LIMIT` failed checks per
  :data:`FAILURE_WINDOW` seconds (a check in flight counts until it succeeds);
  past that a check answers *limited* (HTTP 429 with ``Retry-After``) without
  running Argon2. The table is bounded (:data:`MAX_CLIENTS`, oldest dropped).
* **Cache**: a successful Basic header is remembered for :data:`CACHE_TTL`
  seconds, keyed by an HMAC-SHA256 of the header under a random per-process
  key (the header itself is never kept), so a legitimate API client pays
  Argon2 once per five minutes rather than on every call. A password changed
  by another process is therefore honoured within that TTL;
  :meth:`AuthGate.forget` drops the cache at once.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread

from streamforge.admin_auth import AdminAuth

VERIFY_CONCURRENCY = 2
VERIFY_QUEUE = 16
FAILURE_LIMIT = 5
FAILURE_WINDOW = 60.0
MAX_CLIENTS = 4096
CACHE_TTL = 300.0
CACHE_SIZE = 64

Clock = Callable[[], float]


def basic_password(header: str | None) -> str | None:
    """The password of an ``Authorization: Basic …`` header value, if it carries one."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


def verify_basic_header(auth: AdminAuth, header: str | None) -> bool:
    """Check an ``Authorization: Basic …`` header value against the admin password
    (blocking, uncached: for callers outside the web front end)."""
    password = basic_password(header)
    return password is not None and auth.verify(password)


class Verdict(enum.Enum):
    """The outcome of one :meth:`AuthGate.check`."""

    OK = "ok"
    WRONG = "wrong"
    LIMITED = "limited"
    BUSY = "busy"


@dataclass(frozen=True)
class Check:
    verdict: Verdict
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


@dataclass
class FailureLimiter:
    """At most ``limit`` failures (checks in flight included) per client in ``window`` s."""

    limit: int = FAILURE_LIMIT
    window: float = FAILURE_WINDOW
    max_clients: int = MAX_CLIENTS
    clock: Clock = time.monotonic

    def __post_init__(self) -> None:
        self._marks: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def reserve(self, client: str) -> float:
        """Count one attempt for ``client``: 0.0 if it may go ahead, else seconds to wait."""
        now = self.clock()
        with self._lock:
            marks = self._marks.get(client)
            if marks is None:
                while len(self._marks) >= self.max_clients:
                    self._marks.popitem(last=False)
                marks = self._marks[client] = deque()
            self._marks.move_to_end(client)
            while marks and marks[0] <= now - self.window:
                marks.popleft()
            if len(marks) >= self.limit:
                return max(marks[0] + self.window - now, 0.001)
            marks.append(now)
            return 0.0

    def refund(self, client: str) -> None:
        """The reserved attempt succeeded: it does not count."""
        with self._lock:
            marks = self._marks.get(client)
            if marks:
                marks.pop()
                if not marks:
                    del self._marks[client]

    def __len__(self) -> int:
        with self._lock:
            return len(self._marks)


class AuthGate:
    """Every admin password check of one web app (``app.state.auth_gate``)."""

    def __init__(
        self,
        *,
        concurrency: int = VERIFY_CONCURRENCY,
        queue: int = VERIFY_QUEUE,
        limiter: FailureLimiter | None = None,
        cache_ttl: float = CACHE_TTL,
        clock: Clock = time.monotonic,
    ) -> None:
        self._concurrency = concurrency
        self._queue = queue
        self._clock = clock
        self.limiter = limiter if limiter is not None else FailureLimiter(clock=clock)
        self._cache_ttl = cache_ttl
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()
        self._threads: anyio.CapacityLimiter | None = None
        self._waiting = 0
        self.verifies = 0

    def _digest(self, header: str) -> bytes:
        return hmac.new(self._key, header.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def _cached(self, digest: bytes) -> bool:
        now = self._clock()
        with self._lock:
            expiry = self._cache.get(digest)
            if expiry is None:
                return False
            if expiry <= now:
                del self._cache[digest]
                return False
            return True

    def _remember(self, digest: bytes) -> None:
        with self._lock:
            self._cache[digest] = self._clock() + self._cache_ttl
            self._cache.move_to_end(digest)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)

    def forget(self) -> None:
        """Drop every remembered header (the password changed)."""
        with self._lock:
            self._cache.clear()

    async def check_basic(self, auth: AdminAuth, header: str, client: str) -> Check:
        """Check an ``Authorization`` header value for ``client`` (an address)."""
        digest = self._digest(header)
        if self._cached(digest):
            return Check(Verdict.OK)
        password = basic_password(header)
        if password is None:
            return Check(Verdict.WRONG)
        ok = await self.check_password(auth, password, client)
        if ok.ok:
            self._remember(digest)
        return ok

    async def check_password(self, auth: AdminAuth, password: str, client: str) -> Check:
        """Run one rate-limited, concurrency-limited Argon2 verify off the event loop."""
        wait = self.limiter.reserve(client)
        if wait:
            return Check(Verdict.LIMITED, int(wait) + 1)
        if self._waiting >= self._concurrency + self._queue:
            self.limiter.refund(client)
            return Check(Verdict.BUSY, 1)
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self._concurrency)
        self._waiting += 1
        try:
            self.verifies += 1
            ok = await anyio.to_thread.run_sync(auth.verify, password, limiter=self._threads)
        finally:
            self._waiting -= 1
        if ok:
            self.limiter.refund(client)
            return Check(Verdict.OK)
        return Check(Verdict.WRONG)

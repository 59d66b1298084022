"""The Redis connection of a node and how its outages are reported.

:func:`connect` builds an asyncio client with short timeouts and *no*
automatic retries: a cluster operation that cannot reach Redis must fail
fast (a tune has a two-second failover budget) and the caller decides what
that means — an account lease is refused, a renew is tried again on the next
period.

:class:`RedisHealth` is shared by every cluster component of a node, so that
an outage is reported as exactly one warning event when it starts and one
info event when Redis answers again, however many operations failed in
between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: What a Redis operation raises when the server is unreachable or misbehaves.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

DEFAULT_PREFIX = "streamforge:"


class EventSink(Protocol):
    """Where cluster events go (:class:`streamforge.events.EventLog` fits)."""

    def record(
        self,
        level: str,
        category: str,
        message: str,
        details: Mapping[str, Any] | None = None,
    ) -> object: ...


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a Redis call turned into an error.

    redis-py answers a cancelled command with a ``ConnectionError`` (it drops
    the connection), which the loops below take for an outage and carry on:
    the task would never end. Every background loop calls this after a step.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def connect(url: str, timeout: float = 1.0) -> Redis:
    """An asyncio Redis client for ``url`` (``redis://``, ``rediss://``, ``unix://``).

    Connecting and each command time out after ``timeout`` seconds; nothing is
    retried automatically. Replies are decoded as UTF-8 strings.
    """
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def redact_url(url: str) -> str:
    """``url`` without its password, fit for logs and events."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class RedisHealth:
    """Up/down state of this node's Redis, with one event per outage."""

    def __init__(self, events: EventSink | None = None, where: str = "Redis") -> None:
        self._events = events
        self._where = where
        self.up = True
        self.outages = 0
        self.down_since: float | None = None
        self.last_error = ""

    def failed(self, exc: BaseException) -> None:
        """A Redis operation failed; the first failure of an outage is reported."""
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        if not self.up:
            return
        self.up = False
        self.outages += 1
        self.down_since = time.monotonic()
        message = "cluster coordination unreachable; no new provider connection can be leased"
        self.note("warning", message, {"redis": self._where, "error": self.last_error})

    def succeeded(self, details: Mapping[str, Any] | None = None) -> bool:
        """A Redis operation worked; returns True if that ended an outage."""
        if self.up:
            return False
        self.up = True
        lasted = 0.0 if self.down_since is None else time.monotonic() - self.down_since
        self.down_since = None
        info = {"redis": self._where, "outage_s": round(lasted, 1), **(details or {})}
        self.note("info", "cluster coordination reachable again", info)
        return True

    def note(self, level: str, message: str, details: Mapping[str, Any]) -> None:
        """Record a cluster event (or log it when there is no event log)."""
        if self._events is not None:
            self._events.record(level, "cluster", message, details)
        else:
            log.log(logging.getLevelName(level.upper()), "%s (%s)", message, dict(details))

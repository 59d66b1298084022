"""The event log: what happened, for the user to read later.

``EventLog.record()`` never blocks the caller (the stream path calls it in the
middle of a failover): it drops the event into a bounded queue and returns.
One writer thread drains the queue in batches into ``event_log`` — the single
writer keeps SQLite free of lock contention — and mirrors each event to the
process log. A batch that finds the database locked past the busy timeout
(a long transaction such as a guide swap holds it) is retried a few times.
Retention (age and a row cap) is applied by the same writer.

Subscribers (the live UI) receive every event as it is recorded, through
callbacks that must themselves not block.

A last line of defence strips keys that look like credentials from details;
callers are expected never to pass any in the first place.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from streamforge.db.engine import Database
from streamforge.db.models import EventLogEntry

log = logging.getLogger("streamforge.events")

LEVELS = ("debug", "info", "warning", "error")
_LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}
_PY_LEVEL = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_SECRET_KEYS = frozenset({"password", "passwd", "pass", "token", "secret", "credentials"})
_STOP = object()
#: A batch that meets a locked database is retried this often, this many seconds apart (x n).
_LOCKED_RETRIES = 3
_LOCKED_BACKOFF = 0.5


@dataclass(frozen=True)
class Event:
    level: str
    category: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    channel_id: int | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp.isoformat(),
            "level": self.level,
            "category": self.category,
            "message": self.message,
            "channel_id": self.channel_id,
            "details": self.details,
        }


def scrub(details: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``details`` without credential-looking keys (recursively)."""
    clean: dict[str, Any] = {}
    for key, value in details.items():
        if key.lower() in _SECRET_KEYS:
            continue
        if isinstance(value, Mapping):
            clean[key] = scrub(value)
        else:
            clean[key] = value
    return clean


def level_at_least(level: str) -> tuple[str, ...]:
    """The level names at or above ``level``."""
    if level not in _LEVEL_RANK:
        raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    return LEVELS[_LEVEL_RANK[level] :]


class EventLog:
    """Queued, single-writer event recording with retention and queries."""

    def __init__(
        self,
        db: Database,
        *,
        retention: timedelta = timedelta(days=30),
        max_rows: int = 100_000,
        queue_size: int = 10_000,
        prune_every: int = 500,
    ) -> None:
        self._db = db
        self._retention = retention
        self._max_rows = max_rows
        self._prune_every = prune_every
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self._written = 0
        self._dropped = 0
        self._since_prune = 0
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="streamforge-event-writer", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EventLog:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- recording -----------------------------------------------------------
    def record(
        self,
        level: str,
        category: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        channel_id: int | None = None,
    ) -> Event:
        """Queue one event; returns at once. Never raises for a full queue."""
        if level not in _LEVEL_RANK:
            raise ValueError(f"unknown level {level!r}")
        event = Event(level, category, message, scrub(details or {}), channel_id)
        log.log(_PY_LEVEL[level], "[%s] %s %s", category, message, event.details or "")
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._idle:
                self._pending -= 1
                self._dropped += 1
                self._idle.notify_all()
            log.warning("event queue full; dropped event %r", message)
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)
        return event

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for every new event; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is written; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    @property
    def dropped(self) -> int:
        return self._dropped

    # -- writer --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[Event] = []
            stop = item is _STOP
            if isinstance(item, Event):
                batch.append(item)
            while not stop and len(batch) < 500:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                elif isinstance(more, Event):
                    batch.append(more)
            if batch:
                self._write(batch)
            if stop:
                return

    def _write(self, batch: list[Event]) -> None:
        try:
            self._insert(batch)
            self._since_prune += len(batch)
            if self._since_prune >= self._prune_every:
                self.prune()
        except SQLAlchemyError as exc:
            # The event log must never take the caller down; the events are
            # already in the process log, so losing the rows is survivable.
            log.error("could not write %d events: %s", len(batch), exc)
        finally:
            with self._idle:
                self._written += len(batch)
                self._pending -= len(batch)
                self._idle.notify_all()

    def _insert(self, batch: list[Event]) -> None:
        """Insert ``batch``; a database still locked after the busy timeout (a long
        write such as a guide swap holds it) is retried a few times before giving up."""
        for attempt in range(_LOCKED_RETRIES + 1):
            try:
                with self._db.session() as session:
                    session.add_all(
                        EventLogEntry(
                            timestamp=e.timestamp,
                            level=e.level,
                            category=e.category,
                            message=e.message,
                            channel_id=e.channel_id,
                            details=e.details,
                        )
                        for e in batch
                    )
                return
            except OperationalError as exc:
                if attempt == _LOCKED_RETRIES or "locked" not in str(exc.orig):
                    raise
                log.debug("event log: database locked, retrying %d events", len(batch))
                time.sleep(_LOCKED_BACKOFF * (attempt + 1))  # the writer thread, not the loop

    def prune(self, now: datetime | None = None) -> int:
        """Apply retention: drop events past the age limit and beyond the row cap."""
        now = now or datetime.now(UTC)
        self._since_prune = 0
        removed = 0
        with self._db.session() as session:
            result = session.execute(
                delete(EventLogEntry).where(EventLogEntry.timestamp < now - self._retention)
            )
            removed += int(getattr(result, "rowcount", 0) or 0)
            total = session.scalar(select(func.count()).select_from(EventLogEntry)) or 0
            if total > self._max_rows:
                cutoff = session.scalar(
                    select(EventLogEntry.id)
                    .order_by(EventLogEntry.id.desc())
                    .offset(self._max_rows - 1)
                    .limit(1)
                )
                if cutoff is not None:
                    result = session.execute(delete(EventLogEntry).where(EventLogEntry.id < cutoff))
                    removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

    # -- reading -------------------------------------------------------------
    def query(
        self,
        *,
        level: str | None = None,
        category: str | None = None,
        channel_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 200,
    ) -> list[Event]:
        """Newest first. ``level`` means "this level or more severe"."""
        stmt = select(EventLogEntry).order_by(EventLogEntry.id.desc()).limit(limit)
        if level is not None:
            stmt = stmt.where(EventLogEntry.level.in_(level_at_least(level)))
        if category is not None:
            stmt = stmt.where(EventLogEntry.category == category)
        if channel_id is not None:
            stmt = stmt.where(EventLogEntry.channel_id == channel_id)
        if since is not None:
            stmt = stmt.where(EventLogEntry.timestamp >= since)
        if until is not None:
            stmt = stmt.where(EventLogEntry.timestamp <= until)
        with self._db.session() as session:
            rows = session.scalars(stmt).all()
            return [
                Event(
                    level=row.level,
                    category=row.category,
                    message=row.message,
                    details=dict(row.details or {}),
                    channel_id=row.channel_id,
                    timestamp=row.timestamp,
                    id=row.id,
                )
                for row in rows
            ]

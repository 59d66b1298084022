from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from streamforge.db.engine import Database
from streamforge.db.models import EventLogEntry
from streamforge.events import EventLog, level_at_least
from streamforge.runtime import Runtime


def _count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(EventLogEntry)) or 0)


def test_record_does_not_block_on_a_locked_database(runtime: Runtime) -> None:
    events = runtime.events
    # Hold the SQLite write lock so the writer thread cannot commit.
    conn = runtime.db.engine.raw_connection()
    cursor = conn.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        for i in range(200):
            events.record("info", "test", f"event {i}")
        elapsed = time.perf_counter() - started
        # recording returned although nothing could be written yet
        assert elapsed < 1.0
        assert not events.flush(timeout=0.2)
    finally:
        conn.rollback()
        conn.close()
    assert events.flush(timeout=10)
    assert _count(runtime.db) == 200


def test_filters(runtime: Runtime) -> None:
    ev = runtime.events
    ev.record("info", "account", "synced", {"account": "a"})
    ev.record("warning", "stream", "failover", {"reason": "stall"}, channel_id=3)
    ev.record("error", "stream", "all streams failed", channel_id=4)
    ev.record("debug", "epg", "refreshed")
    assert ev.flush()
    assert [e.message for e in ev.query(category="stream")] == ["all streams failed", "failover"]
    assert {e.level for e in ev.query(level="warning")} == {"warning", "error"}
    assert [e.message for e in ev.query(channel_id=3)] == ["failover"]
    assert ev.query(channel_id=3)[0].details == {"reason": "stall"}
    future = datetime.now(UTC) + timedelta(hours=1)
    assert ev.query(since=future) == []
    assert len(ev.query(until=future)) == 4
    assert len(ev.query(limit=2)) == 2
    with pytest.raises(ValueError, match="unknown level"):
        level_at_least("loud")


def test_credentials_are_scrubbed_from_details(runtime: Runtime) -> None:
    runtime.events.record(
        "info", "account", "x", {"password": "hunter2", "nested": {"token": "t"}, "account": "a"}
    )
    assert runtime.events.flush()
    (event,) = runtime.events.query()
    assert event.details == {"nested": {}, "account": "a"}


def test_retention_by_age_and_row_cap(runtime: Runtime) -> None:
    log = EventLog(runtime.db, retention=timedelta(days=1), max_rows=5, prune_every=10_000)
    with log:
        for i in range(12):
            log.record("info", "test", f"e{i}")
        assert log.flush()
        with runtime.db.session() as s:
            oldest = s.scalars(select(EventLogEntry).order_by(EventLogEntry.id)).first()
            assert oldest is not None
            oldest.timestamp = datetime.now(UTC) - timedelta(days=3)
        log.prune()
        kept = [e.message for e in log.query(category="test", limit=100)]
    assert kept == ["e11", "e10", "e9", "e8", "e7"]


def test_subscribers_see_events(runtime: Runtime) -> None:
    seen: list[str] = []
    got = threading.Event()

    def on_event(event: object) -> None:
        seen.append(getattr(event, "message", ""))
        got.set()

    unsubscribe = runtime.events.subscribe(on_event)
    runtime.events.record("info", "test", "hello")
    assert got.wait(2)
    unsubscribe()
    runtime.events.record("info", "test", "after")
    assert seen == ["hello"]

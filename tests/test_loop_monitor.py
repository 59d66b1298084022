"""The event-loop lag monitor: blocks the loop on purpose (``time.sleep`` inside a
coroutine, here only) and checks the histogram on ``/metrics``, the samples and
the rate-limited ``system`` warnings in the real event log."""

from __future__ import annotations

import time

from prometheus_client import generate_latest

from streamforge.events import Event
from streamforge.loop_monitor import LoopMonitor
from streamforge.runtime import Runtime
from streamforge.tasks import TaskOwner
from tests.streamharness import wait_until


def _metric(runtime: Runtime, line_start: str) -> float:
    text = generate_latest(runtime.streams.metrics.registry).decode()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise LookupError(line_start)


def _warnings(runtime: Runtime) -> list[Event]:
    assert runtime.events.flush()
    return runtime.events.query(category="system", level="warning")


def _block(seconds: float) -> None:
    time.sleep(seconds)  # the point of the test: the loop thread is held


async def test_a_block_is_measured_exposed_and_warned(runtime: Runtime) -> None:
    tasks = TaskOwner("test")
    monitor = LoopMonitor(runtime.events, runtime.streams.metrics.loop_lag, interval=0.01)
    monitor.start(tasks)
    try:
        assert [t.get_name() for t in tasks.tasks] == ["test:loop-monitor"]
        await wait_until(lambda: monitor.count >= 5)
        assert monitor.worst < 0.25
        assert not _warnings(runtime)
        _block(0.4)
        await wait_until(lambda: monitor.worst >= 0.35)
        assert max(monitor.samples()) >= 0.35
        count = _metric(runtime, "streamforge_event_loop_lag_seconds_count")
        assert count == monitor.count
        below = _metric(runtime, 'streamforge_event_loop_lag_seconds_bucket{le="0.25"}')
        assert count - below >= 1  # the block landed above the 250 ms bucket
        assert _metric(runtime, "streamforge_event_loop_lag_seconds_sum") >= 0.35
        await wait_until(lambda: len(_warnings(runtime)) == 1)
        (warning,) = _warnings(runtime)
        assert warning.details["blocks"] == 1
        assert warning.details["worst_lag_ms"] >= 350
        assert "blocked" in warning.message
    finally:
        await monitor.stop()
        await tasks.close()
    assert not monitor.running


async def test_warnings_are_rate_limited_and_keep_the_worst(runtime: Runtime) -> None:
    tasks = TaskOwner("test")
    monitor = LoopMonitor(
        runtime.events, runtime.streams.metrics.loop_lag, interval=0.01, warn_every=3.0
    )
    monitor.start(tasks)
    try:
        await wait_until(lambda: monitor.count >= 2)
        _block(0.3)
        await wait_until(lambda: monitor.warnings == 1)
        # Two more blocks inside the quiet period: no event for them yet …
        seen = monitor.count
        _block(0.3)
        await wait_until(lambda: monitor.count > seen)
        seen = monitor.count
        _block(0.5)
        await wait_until(lambda: monitor.count > seen)
        assert len(_warnings(runtime)) == 1
        # … and one event for both once the period is over, with the worst lag.
        await wait_until(lambda: len(_warnings(runtime)) == 2, within=5)
        newest = _warnings(runtime)[0]
        assert newest.details["blocks"] == 2
        assert newest.details["worst_lag_ms"] >= 450
    finally:
        await monitor.stop()
        await tasks.close()


async def test_a_block_still_running_at_stop_is_counted(runtime: Runtime) -> None:
    tasks = TaskOwner("test")
    monitor = LoopMonitor(runtime.events, runtime.streams.metrics.loop_lag, interval=0.01)
    monitor.start(tasks)
    await wait_until(lambda: monitor.count >= 2)
    _block(0.3)  # the monitor has not run since: stop() must see the lag itself
    await monitor.stop()
    await tasks.close()
    assert monitor.worst >= 0.28
    (warning,) = _warnings(runtime)
    assert warning.details["worst_lag_ms"] >= 280


async def test_the_runtime_owns_a_monitor_on_its_metrics(runtime: Runtime) -> None:
    runtime.loop_monitor.start(runtime.tasks)
    try:
        await wait_until(lambda: runtime.loop_monitor.count >= 3)
        assert _metric(runtime, "streamforge_event_loop_lag_seconds_count") >= 3
        assert any(t.get_name() == "runtime:loop-monitor" for t in runtime.tasks.tasks)
    finally:
        await runtime.loop_monitor.stop()
    assert not runtime.loop_monitor.running

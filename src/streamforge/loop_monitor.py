"""How late the event loop wakes up: the one figure that says whether
something blocked every live stream at once.

:class:`LoopMonitor` is one named, owned task that sleeps a short interval
again and again and measures how much later than asked it woke. On an idle
loop that is well under a millisecond; database work, parsing or decoding run
on the loop thread (or a worker thread hogging the GIL) shows up as lag. Each
wake-up observes the ``streamforge_event_loop_lag_seconds`` histogram (in the
runtime's metrics registry, so ``/metrics`` exposes it) and lands in a bounded
window of recent samples.

A wake-up later than ``warn_after`` (250 ms by default) is recorded as a
``system`` warning in the event log, at most one event per ``warn_every``
(10 s): blocks inside the quiet period are folded into the next event, which
gives their count and the worst lag. The block is seen when the loop gets
back to the monitor, i.e. when whatever blocked it returns; :meth:`stop` also
counts a block that is still running up to that moment.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from streamforge.events import EventLog
from streamforge.tasks import TaskOwner


class Observer(Protocol):
    """What the monitor needs of a Prometheus histogram."""

    def observe(self, amount: float) -> None: ...


class LoopMonitor:
    """Samples the event loop's wake-up lag; warns (rate-limited) on long blocks."""

    def __init__(
        self,
        events: EventLog,
        histogram: Observer,
        *,
        interval: float = 0.025,
        warn_after: float = 0.25,
        warn_every: float = 10.0,
        keep: int = 2400,
    ) -> None:
        if interval <= 0:
            raise ValueError("the sampling interval must be positive")
        self._events = events
        self._histogram = histogram
        self.interval = interval
        self.warn_after = warn_after
        self.warn_every = warn_every
        self._samples: deque[float] = deque(maxlen=keep)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._asleep_since: float | None = None
        self._last_warning: float | None = None
        self._pending_worst = 0.0
        self._pending_count = 0
        self.worst = 0.0
        self.count = 0
        self.warnings = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self, tasks: TaskOwner) -> asyncio.Task[None]:
        """Start sampling as the task ``{owner}:loop-monitor`` (once)."""
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._task = tasks.spawn(self._run(), name="loop-monitor")
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop sampling; a block still in progress is counted up to now."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._loop is not None and self._asleep_since is not None:
            late = self._loop.time() - self._asleep_since - self.interval
            if late > 0:
                self._observe(late, self._loop.time())
        self._flush_warning(force=True)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # -- reading -------------------------------------------------------------
    def samples(self) -> list[float]:
        """The most recent lags in seconds, oldest first."""
        return list(self._samples)

    def clear(self) -> None:
        """Forget the recent samples and the worst lag (the histogram keeps counting)."""
        self._samples.clear()
        self.worst = 0.0

    # -- sampling ------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                asked = loop.time()
                self._asleep_since = asked
                await asyncio.sleep(self.interval)
                woke = loop.time()
                self._asleep_since = None
                self._observe(max(0.0, woke - asked - self.interval), woke)
                self._flush_warning()
        finally:
            self._asleep_since = None

    def _observe(self, lag: float, now: float) -> None:
        self._histogram.observe(lag)
        self._samples.append(lag)
        self.count += 1
        self.worst = max(self.worst, lag)
        if lag > self.warn_after:
            self._pending_worst = max(self._pending_worst, lag)
            self._pending_count += 1
            if self._last_warning is None or now - self._last_warning >= self.warn_every:
                self._last_warning = now
                self._warn()

    def _flush_warning(self, *, force: bool = False) -> None:
        """Record blocks held back by the rate limit once the quiet period is over."""
        if not self._pending_count or self._loop is None:
            return
        now = self._loop.time()
        if force or self._last_warning is None or now - self._last_warning >= self.warn_every:
            self._last_warning = now
            self._warn()

    def _warn(self) -> None:
        worst, count = self._pending_worst, self._pending_count
        self._pending_worst, self._pending_count = 0.0, 0
        self.warnings += 1
        details: dict[str, Any] = {
            "worst_lag_ms": round(worst * 1000, 1),
            "blocks": count,
            "threshold_ms": round(self.warn_after * 1000),
        }
        self._events.record(
            "warning",
            "system",
            f"the event loop was blocked for {worst * 1000:.0f} ms; "
            "every live stream stalled meanwhile",
            details,
        )

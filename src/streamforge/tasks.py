"""Named, owned asyncio tasks.

Every background task in StreamForge is started through a :class:`TaskOwner`,
which keeps a strong reference, gives the task a name, logs a crash instead of
letting it vanish silently, and cancels everything it owns on ``close()``.
There is no fire-and-forget ``asyncio.create_task`` anywhere else.

A long-lived loop (the periodic jobs) runs under :func:`restarting`: when it
crashes, the crash is logged with its traceback and the loop starts again
after a back-off that doubles up to a ceiling (and resets once the loop has
run for a while), so one bad value cannot stop the guide from ever being
re-rendered again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class TaskOwner:
    """Owns a set of named tasks; cancelling the owner cancels them all."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Start ``coro`` as a task called ``{owner}:{name}`` and keep it."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"task owner {self.name!r} is closed; cannot start {name!r}")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s crashed: %s", task.get_name(), exc, exc_info=exc)

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    async def close(self) -> None:
        """Cancel every owned task and wait for all of them to finish."""
        self._closed = True
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def restarting(
    name: str,
    loop: Callable[[], Coroutine[Any, Any, None]],
    *,
    first_backoff: float = 1.0,
    max_backoff: float = 300.0,
    healthy_after: float = 600.0,
    on_crash: Callable[[BaseException, float], None] | None = None,
) -> None:
    """Run ``loop()`` for ever: after a crash, log it and start it again.

    The wait before a restart starts at ``first_backoff`` seconds and doubles
    with each crash up to ``max_backoff``; a run that lasted ``healthy_after``
    seconds resets it. Cancellation ends it as usual. ``on_crash(exc, wait)``
    is told about each crash (tests, metrics).
    """
    backoff = first_backoff
    while True:
        started = time.monotonic()
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - started >= healthy_after:
                backoff = first_backoff
            log.error(
                "background task %s crashed (%s: %s); restarting in %.0f s",
                name,
                type(exc).__name__,
                exc,
                backoff,
                exc_info=exc,
            )
            if on_crash is not None:
                on_crash(exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
        else:
            log.warning("background task %s returned; starting it again", name)
            await asyncio.sleep(first_backoff)

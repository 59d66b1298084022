"""Named, owned asyncio tasks.

Every background task in StreamForge is started through a :class:`TaskOwner`,
which keeps a strong reference, gives the task a name, logs a crash instead of
letting it vanish silently, and cancels everything it owns on ``close()``.
There is no fire-and-forget ``asyncio.create_task`` anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
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

"""Worker processes for CPU-heavy pure computation, off the server's GIL.

Database work already runs in threads (:meth:`Database.run` /
:meth:`Database.write`), but a thread running Python holds the GIL, and the
event loop thread then waits for it: parsing a 300 MB XMLTV guide, detecting
the quality of 60,000 stream names or matching them onto 2,000 guide channels
in a thread delays every live stream by hundreds of milliseconds. Such work is
sent to a :class:`CpuPool` instead: a small :class:`ProcessPoolExecutor`
(1 or 2 processes, started on first use with the ``forkserver`` context — never
``fork``: the server has threads) owned by the runtime and shut down with it.
The workers run at a lower priority (``nice`` +10), so that on a busy machine
the server's event loop is scheduled before them.

What is sent must be a top-level function of a worker module
(``epg/parse_worker.py``, ``matching/match_worker.py``,
``xtream/streams_worker.py``) that imports only what it needs, and its
arguments and result must be small or compact (plain tuples, bytes, paths):
a big result is spooled to a file by the worker, not pickled back.

A worker process that dies (killed, out of memory, a crash in C code) breaks
the executor; the call that was running raises :class:`WorkerCrashed` with a
one-line message, and the next call starts a fresh executor. An exception the
function itself raises (``GuideError`` …) reaches the caller unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from streamforge.errors import StreamForgeError

T = TypeVar("T")

log = logging.getLogger(__name__)


class WorkerCrashed(StreamForgeError):
    """A worker process of a :class:`CpuPool` died while running a call."""


#: How much lower than the server a worker process runs (``nice``): the
#: server's event loop must get a core first when the machine is busy.
WORKER_NICENESS = 10


def _lower_priority() -> None:
    """Worker initializer: yield the CPU to the server (best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(WORKER_NICENESS)


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class CpuPool:
    """A lazily started pool of ``workers`` processes named ``name``.

    :meth:`run` is for async code; :meth:`call` blocks the calling thread
    (a database thread that computes inside its transaction) and must never be
    used on the event loop.
    """

    def __init__(self, name: str, *, workers: int = 1) -> None:
        if not 1 <= workers <= 2:
            raise ValueError("a CPU pool has 1 or 2 worker processes")
        self.name = name
        self.workers = workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._started = 0

    @property
    def started(self) -> int:
        """How many executors were started (1 after first use, +1 after each crash)."""
        return self._started

    def worker_pids(self) -> list[int]:
        """The process ids of the running workers (empty before first use)."""
        with self._lock:
            executor = self._executor
        if executor is None:
            return []
        processes = getattr(executor, "_processes", None) or {}
        return sorted(processes)

    def _ensure(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"CPU pool {self.name!r} is closed")
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=_context(), initializer=_lower_priority
                )
                self._started += 1
            return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        """Drop a broken executor so that the next call starts a fresh one."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    def _crashed(self, fn: Callable[..., Any], executor: ProcessPoolExecutor) -> WorkerCrashed:
        self._discard(executor)
        what = getattr(fn, "__qualname__", repr(fn))
        log.error("CPU pool %s: a worker process died running %s", self.name, what)
        return WorkerCrashed(
            f"a worker process of {self.name} died while running {what} "
            "(killed or out of memory?); the next call starts a fresh one"
        )

    def submit(self, fn: Callable[..., T], *args: Any) -> tuple[Future[T], ProcessPoolExecutor]:
        """Queue ``fn(*args)``; the future and the executor that runs it."""
        executor = self._ensure()
        try:
            return executor.submit(fn, *args), executor
        except BrokenProcessPool:
            raise self._crashed(fn, executor) from None

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        every: float = 0.25,
        tick: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """``fn(*args)`` in a worker process; the event loop keeps running meanwhile.

        ``tick`` (e.g. reading a progress file the worker writes) is awaited
        every ``every`` seconds until the call ends. Cancelling the caller
        cancels a call still queued; one already running finishes in its worker.
        """
        future, executor = self.submit(fn, *args)
        waiting = asyncio.wrap_future(future)
        crash: WorkerCrashed | None = None
        try:
            if tick is not None:
                while not waiting.done():
                    await asyncio.wait({waiting}, timeout=every)
                    await tick()
            return await waiting
        except BrokenProcessPool:
            crash = self._crashed(fn, executor)
        finally:
            waiting.cancel()
        raise crash

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker process, blocking this (non-loop) thread."""
        future, executor = self.submit(fn, *args)
        crash: WorkerCrashed | None = None
        try:
            return future.result()
        except BrokenProcessPool:
            crash = self._crashed(fn, executor)
        raise crash

    def close(self) -> None:
        """Stop the workers (waiting for a running call); later calls raise."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """:meth:`close` from async code, in a thread (shutting down waits for the workers)."""
        await asyncio.to_thread(self.close)


#: Rows per pickled batch of :func:`pack_rows`.
PACK_BATCH = 2000


def pack_rows(rows: Iterable[T], batch: int = PACK_BATCH) -> list[bytes]:
    """``rows`` as pickled batches of ``batch`` rows.

    A process boundary pickles what it carries in one C call that holds the GIL
    throughout: a list of 60,000 tuples would stall the event loop for tens of
    milliseconds when it is unpickled. A list of a few dozen ``bytes`` costs a
    copy, and the batches are unpickled one by one (:func:`unpack_rows`) by a
    worker thread, letting the loop in between.
    """
    packed: list[bytes] = []
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch:
            packed.append(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
            chunk = []
    if chunk:
        packed.append(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
    return packed


def unpack_rows(packed: Iterable[bytes]) -> Iterator[Any]:
    """The rows of :func:`pack_rows`, batch by batch."""
    for chunk in packed:
        # Pickled by our own worker process from rows it built: trusted input.
        yield from pickle.loads(chunk)  # noqa: S301

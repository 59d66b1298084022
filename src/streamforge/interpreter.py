"""How the Python interpreter is set for serving live streams.

One event loop thread carries every live stream; worker threads (the
database writer, the media checks) and CPython's garbage collector share its
GIL. Two interpreter defaults cost the loop tens to hundreds of milliseconds
at a time when a big sync or guide import runs beside the streams
(``bench/bench_loop_lag.py``):

* **Full collections scan the whole heap.** Start-up leaves ~180,000
  long-lived objects (the imported modules, the app, its routes and models);
  every full collection walked them again, and with a 60,000-stream sync in
  flight one pass held the GIL for 100 to 150 ms. :func:`tune_for_serving`
  collects once and *freezes* what start-up left (:func:`gc.freeze`: moved to
  a permanent generation that no collection walks), and raises the
  thresholds so young collections happen per 10,000 allocations rather than
  700 and full ones rarely. Cyclic garbage is still collected; only its timing
  changes.
* **A CPU-bound thread keeps the GIL for the switch interval** (5 ms by
  default) each time the loop thread gives it up for a system call; a loop
  iteration with many socket writes then waits that long per write. 1 ms
  lets the loop back in five times sooner for a little more switching in the
  worker threads, whose throughput no viewer sees.

:func:`tune_for_serving` is called once, by the server, when start-up is done
and just before it accepts requests; it returns what it replaced so that
:func:`restore` can put it back (tests, embedded use).
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass

#: Young-generation allocations per collection, young collections per middle
#: one, middle collections per full one (CPython's defaults: 700, 10, 10).
SERVING_THRESHOLDS = (10_000, 20, 100)
#: Seconds a thread may hold the GIL while another waits (CPython's: 0.005).
SERVING_SWITCH_INTERVAL = 0.001


@dataclass(frozen=True, slots=True)
class InterpreterState:
    """The collector thresholds and GIL switch interval in force."""

    thresholds: tuple[int, int, int]
    switch_interval: float

    @classmethod
    def current(cls) -> InterpreterState:
        first, second, third = gc.get_threshold()
        return cls((first, second, third), sys.getswitchinterval())


def tune_for_serving(
    thresholds: tuple[int, int, int] = SERVING_THRESHOLDS,
    switch_interval: float = SERVING_SWITCH_INTERVAL,
) -> InterpreterState:
    """Freeze what start-up left on the heap and set the serving thresholds and
    switch interval; returns the state it replaced."""
    previous = InterpreterState.current()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(switch_interval)
    return previous


def restore(previous: InterpreterState) -> None:
    """Undo :func:`tune_for_serving`: the frozen objects are collectable again."""
    gc.unfreeze()
    gc.set_threshold(*previous.thresholds)
    sys.setswitchinterval(previous.switch_interval)

"""Tests for streamforge.interpreter: the serving settings and their undo."""

from __future__ import annotations

import gc
import sys

from streamforge.interpreter import (
    SERVING_SWITCH_INTERVAL,
    SERVING_THRESHOLDS,
    InterpreterState,
    restore,
    tune_for_serving,
)


def test_tuning_freezes_the_start_up_heap_and_restore_undoes_it() -> None:
    before = InterpreterState.current()
    assert gc.get_freeze_count() == 0
    kept = [object()]  # a container alive through start-up
    previous = tune_for_serving()
    try:
        assert previous == before
        assert gc.get_threshold() == SERVING_THRESHOLDS
        assert sys.getswitchinterval() == SERVING_SWITCH_INTERVAL
        # what start-up left is out of every collection's way
        assert gc.get_freeze_count() > 1000
        assert gc.is_tracked(kept)
        assert not any(o is kept for o in gc.get_objects())
        later = [object()]
        assert any(o is later for o in gc.get_objects())
    finally:
        restore(previous)
    assert InterpreterState.current() == before
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())

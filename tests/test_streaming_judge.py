"""Tests for streamforge.streaming.health.judge: batching and the behind-live judgement."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from streamforge.streaming.health.judge import BATCH_SECONDS, AttemptJudge, JudgeConfig
from streamforge.streaming.media_clock import (
    DEFAULT_LAG_LIMIT,
    DEFAULT_LEAD_PER_GAP,
    DEFAULT_MIN_GAP,
    MediaClock,
)
from streamforge.streaming.reasons import FailureReason
from tests.tsmedia import SynthSpec, synth_ts

FRAME = 0.04
BASE = SynthSpec(frames=1, video_bytes=400, audio_bytes=200)


def frame(n: int) -> bytes:
    return synth_ts(replace(BASE, first_frame=n))


class CountingClock(MediaClock):
    """A real media clock that counts how often it is fed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def feed(self, data: bytes | bytearray | memoryview, now: float) -> None:
        self.calls += 1
        super().feed(data, now)


def paced_judge() -> AttemptJudge:
    judge = AttemptJudge(JudgeConfig(health=None), content=False, now=0.0)
    judge.clock = CountingClock()
    return judge


def test_paced_chunks_are_judged_in_batches_with_the_same_answers() -> None:
    judge = paced_judge()
    reference = MediaClock()
    chunks = 0
    for n in range(500):  # 20 s, one frame's packets every 40 ms
        now = n * FRAME
        data = frame(n)
        judge.feed(data, now)
        reference.feed(data, now)
        chunks += 1
        if n % 7 == 0:  # a question at any moment sees every chunk so far
            assert judge.lag(now) == pytest.approx(reference.lag(now), abs=1e-9)
            assert judge.media_seconds() == pytest.approx(reference.media_seconds)
    assert isinstance(judge.clock, CountingClock)
    # questions every 7 chunks and batches of BATCH_SECONDS: far fewer calls than chunks
    assert judge.clock.calls <= chunks / min(7, BATCH_SECONDS / FRAME) + 2
    assert judge.clock.calls < chunks / 2
    assert judge.check(now) is None


def test_a_stall_after_a_paced_stream_is_behind_live_at_the_limit_plus_the_kept_lead() -> None:
    judge = paced_judge()
    for n in range(250):  # a 10 s opening burst, as many panels send on connect
        judge.feed(frame(n), 0.0)
    for n in range(250, 400):  # then 6 s in real time
        now = (n - 250) * FRAME
        judge.feed(frame(n), now)
        assert judge.check(now) is None
    kept = DEFAULT_LEAD_PER_GAP * DEFAULT_MIN_GAP
    assert judge.check(now + DEFAULT_LAG_LIMIT + kept - 0.05) is None
    verdict = judge.check(now + DEFAULT_LAG_LIMIT + kept + 0.05)
    assert verdict is not None
    assert verdict.reason is FailureReason.BEHIND_LIVE
    assert "behind live" in verdict.detail


def test_an_empty_chunk_is_no_delivery() -> None:
    judge = paced_judge()
    judge.feed(frame(0), 0.0)
    judge.feed(b"", 5.0)
    assert judge.last_data == 0.0
    assert judge.bytes == len(frame(0))

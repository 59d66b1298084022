"""The judgement of one upstream attempt: is what it delivers worth watching?

Theory of operation
-------------------
An :class:`AttemptJudge` is fed every chunk of one upstream attempt (with the
caller's ``now``) and asked, from time to time, :meth:`AttemptJudge.check`:
the :class:`Judgement` that fails the attempt, if any.  It combines:

* **delivery** - two :class:`~streamforge.streaming.media_clock.MediaClock`\\ s,
  one following the program clock (PCR, else video PTS, else audio PTS) and
  one the sound alone.  The attempt is *behind live* when both lag more than
  ``lag_limit`` (a stall with a clock, a drip, a provider slower than real
  time); the sound's clock keeps a program whose video (and with it the PCR)
  stopped from being judged behind live - that is ``no_video``, below.  A
  stream without any readable timestamp falls back to the no-bytes backstop:
  ``stall_timeout`` seconds without a byte.  With a clock, silence between
  bursts is judged by the lag alone, so a provider that sends 8 s of media
  every 8 s is never failed;
* **content** - a :class:`~streamforge.streaming.health.sampler.ContentSampler`
  (decoding on the shared executor, never on the caller's thread), whose
  verdicts (black, frozen, silent, a component gone, undecodable) fail the
  attempt, minus what the channel's :class:`ChannelJudgement` switches off.

:meth:`next_check` tells the caller when to ask again: at the content poll
interval, or earlier when the clock would cross the lag limit if no more media
arrived (so a total stall is detected at the limit, not up to a poll later).

:meth:`healthy` is the way back: an upgrade probe is healthy once it has
delivered ``healthy_seconds`` of media, is not behind live, shows no verdict
and no *suspect* (a black, unchanged or silent latest sample) and, for each
track the program has and the channel judges, has decoded samples to show
for it (two pictures, so that "unchanged" could have been seen).

**Batches.** A provider that paces its stream writes a few packets every
few tens of milliseconds, and the packet work (PID columns, timestamps, the
sampler's keyframe search) costs about the same per call whatever the size:
:meth:`AttemptJudge.feed` keeps chunks until ``BATCH_SECONDS`` of arrivals or
``BATCH_BYTES`` are pending and hands them on as one, at the arrival time of
the latest. Every question (:meth:`check`, :meth:`lag`, :meth:`healthy` …)
takes in what is pending first, so an answer is exactly what it would be
chunk by chunk; only the work is done less often (a 25-chunk-a-second stream
costs the event loop 10 calls a second instead of 25).

Nothing here reads a clock or does I/O; the decode jobs run on the executor.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Final

from streamforge.streaming.health.sampler import ContentSampler
from streamforge.streaming.health.verdicts import ContentReason, ContentVerdict, HealthConfig
from streamforge.streaming.media_clock import DEFAULT_LAG_LIMIT, SOURCE_AUDIO_PTS, MediaClock
from streamforge.streaming.reasons import FailureReason

#: Seconds between content polls (decoded samples are applied then).
POLL_INTERVAL: Final = 0.5
#: Chunks are judged in batches of this many seconds of arrival or bytes,
#: whichever comes first (see :meth:`AttemptJudge.feed`).
BATCH_SECONDS: Final = 0.1
BATCH_BYTES: Final = 1 << 16

_LABELS: Final = {
    ContentReason.BLACK_PICTURE: "black picture",
    ContentReason.FROZEN_PICTURE: "frozen picture",
    ContentReason.SILENT_AUDIO: "silent audio",
    ContentReason.NO_VIDEO: "no video packets",
    ContentReason.NO_AUDIO: "no audio packets",
    ContentReason.UNDECODABLE: "video does not decode",
}
_PICTURE: Final = frozenset(
    {
        ContentReason.BLACK_PICTURE,
        ContentReason.FROZEN_PICTURE,
        ContentReason.NO_VIDEO,
        ContentReason.UNDECODABLE,
    }
)


@dataclass(frozen=True, slots=True)
class ChannelJudgement:
    """What one channel is judged by; the defaults judge everything at the global thresholds.

    ``audio_only`` (a radio channel) ignores everything about the picture,
    including a PMT that lists a video PID that never sends (a radio program
    without video in its PMT needs no flag).  ``black``, ``frozen`` and
    ``silence`` switch single checks off; the ``*_seconds`` override the
    global thresholds (None: the setting).
    """

    audio_only: bool = False
    black: bool = True
    frozen: bool = True
    silence: bool = True
    black_seconds: float | None = None
    frozen_seconds: float | None = None
    silence_seconds: float | None = None

    def ignores(self, reason: ContentReason) -> bool:
        """Whether a verdict of ``reason`` is not held against this channel."""
        if self.audio_only and reason in _PICTURE:
            return True
        if reason is ContentReason.BLACK_PICTURE:
            return not self.black
        if reason is ContentReason.FROZEN_PICTURE:
            return not self.frozen
        if reason is ContentReason.SILENT_AUDIO:
            return not self.silence
        return False

    def config(self, base: HealthConfig) -> HealthConfig:
        """``base`` with this channel's threshold overrides."""
        return replace(
            base,
            black_seconds=self.black_seconds or base.black_seconds,
            frozen_seconds=self.frozen_seconds or base.frozen_seconds,
            silence_seconds=self.silence_seconds or base.silence_seconds,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "audio_only": self.audio_only,
            "black": self.black,
            "frozen": self.frozen,
            "silence": self.silence,
            "black_seconds": self.black_seconds,
            "frozen_seconds": self.frozen_seconds,
            "silence_seconds": self.silence_seconds,
        }


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """The session-wide side of the judgement (from the settings)."""

    lag_limit: float = DEFAULT_LAG_LIMIT
    stall_timeout: float = 3.0
    health: HealthConfig | None = field(default_factory=HealthConfig)
    """Content-check thresholds; None switches the content checks off."""
    healthy_seconds: float = 3.0
    """Media an upgrade probe must deliver, healthy, before :meth:`AttemptJudge.healthy`."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """Why an attempt fails: the reason, a one-line detail and the measured seconds."""

    reason: FailureReason
    detail: str
    seconds: float


class AttemptJudge:
    """Delivery and content judgement of one upstream attempt (see the module doc)."""

    def __init__(
        self,
        config: JudgeConfig,
        channel: ChannelJudgement | None = None,
        *,
        executor: Executor | None = None,
        content: bool = True,
        now: float,
    ) -> None:
        self.config = config
        self.channel = channel or ChannelJudgement()
        self.clock = MediaClock()
        self.audio_clock = MediaClock(sources=(SOURCE_AUDIO_PTS,))
        self.sampler: ContentSampler | None = None
        if content and config.health is not None:
            self.sampler = ContentSampler(
                config=self.channel.config(config.health), executor=executor
            )
        self.opened_at = now
        self.last_data: float | None = None
        self.bytes = 0
        self._dropped_seen = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_since = 0.0

    def feed(self, chunk: bytes, now: float) -> None:
        """Take a chunk received at ``now``; judged with the batch it joins."""
        if not chunk:
            return
        self.bytes += len(chunk)
        self.last_data = now
        if not self._pending:
            self._pending_since = now
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= BATCH_BYTES or now - self._pending_since >= BATCH_SECONDS:
            self._take_pending()

    def _take_pending(self) -> None:
        """Judge the pending chunks as one, received when the latest of them was."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        at = self.last_data
        assert at is not None
        self.clock.feed(data, at)
        self.audio_clock.feed(data, at)
        if self.sampler is not None:
            self.sampler.feed(data, at)

    @property
    def has_clock(self) -> bool:
        self._take_pending()
        return self.clock.has_clock or self.audio_clock.has_clock

    def lag(self, now: float) -> float:
        """The smaller lag of the two clocks that run (0.0 without any)."""
        self._take_pending()
        lags = [c.lag(now) for c in (self.clock, self.audio_clock) if c.has_clock]
        return min(lags) if lags else 0.0

    def media_seconds(self) -> float:
        self._take_pending()
        return max(self.clock.media_seconds, self.audio_clock.media_seconds)

    def verdicts(self, now: float) -> list[ContentVerdict]:
        self._take_pending()
        if self.sampler is None:
            return []
        return [v for v in self.sampler.poll(now) if not self.channel.ignores(v.reason)]

    def check(self, now: float) -> Judgement | None:
        """The judgement that fails the attempt at ``now``, or None while it is fine."""
        for verdict in self.verdicts(now):
            return Judgement(
                FailureReason(verdict.reason.value),
                f"{_LABELS[verdict.reason]} for {verdict.seconds:.1f} s",
                round(verdict.seconds, 2),
            )
        limit = self.config.lag_limit
        if self.has_clock:
            lag = self.lag(now)
            if lag > limit:
                return Judgement(
                    FailureReason.BEHIND_LIVE,
                    f"{lag:.1f} s behind live (limit {limit:g} s)",
                    round(lag, 2),
                )
            return None
        since = now - (self.last_data if self.last_data is not None else self.opened_at)
        if self.last_data is not None and since >= self.config.stall_timeout:
            return Judgement(
                FailureReason.STALL,
                f"no data for {self.config.stall_timeout:g} s",
                round(since, 2),
            )
        return None

    def next_check(self, now: float) -> float:
        """When :meth:`check` should run next."""
        at = now + POLL_INTERVAL
        if self.has_clock:
            # The moment the lag would cross the limit if nothing more arrived.
            crossing = now + (self.config.lag_limit - self.lag(now)) + 0.01
            at = min(at, max(crossing, now + 0.02))
        elif self.last_data is not None:
            at = min(at, max(self.last_data + self.config.stall_timeout, now + 0.02))
        return at

    def healthy(self, now: float) -> bool:
        """Whether the attempt has shown ``healthy_seconds`` of good media (see the module doc)."""
        if self.media_seconds() < self.config.healthy_seconds:
            return False
        if self.has_clock and self.lag(now) > self.config.lag_limit:
            return False
        sampler = self.sampler
        if sampler is None:
            return True
        if self.verdicts(now) or self.suspect() is not None:
            return False
        stats = sampler.stats
        if sampler.has_video and not self.channel.audio_only:
            needed = 2 if self.channel.frozen else 1
            if stats.pictures_decoded < needed:
                return False
        return not (sampler.has_audio and self.channel.silence and stats.levels_decoded < 1)

    def suspect(self) -> Judgement | None:
        """A probe's disqualifying condition: a black, unchanged or silent latest sample."""
        self._take_pending()
        if self.sampler is None:
            return None
        for reason in sorted(self.sampler.suspects()):
            if not self.channel.ignores(reason):
                return Judgement(FailureReason(reason.value), f"{_LABELS[reason]} on probe", 0.0)
        return None

    def dropped_since_last(self) -> int:
        """Samples dropped since the previous call (for a counter)."""
        if self.sampler is None:
            return 0
        total = self.sampler.stats.samples_dropped
        new, self._dropped_seen = total - self._dropped_seen, total
        return new

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.close()

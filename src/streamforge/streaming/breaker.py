"""Circuit breakers for provider streams, shared by every session of the process.

A stream that keeps failing should not make every new viewer wait through its
timeouts. Each provider stream (keyed by its ``xtream_channel_id``) has a
breaker with three states::

    CLOSED     --threshold consecutive failures-->  OPEN
    OPEN       --cool-down over, admit()-------->  HALF_OPEN (one caller holds the trial)
    HALF_OPEN  --trial succeeded--------------->  CLOSED
    HALF_OPEN  --trial failed------------------>  OPEN, with the next, longer cool-down

* CLOSED: streams are admitted; consecutive failures are counted and any
  success resets the count.
* OPEN: the stream is skipped until its cool-down ends. The cool-down grows
  with every trip without an intervening success: ``cooldown * 2**k``, capped
  at ``max_cooldown``.
* HALF_OPEN: the first :meth:`CircuitBreakers.admit` after the cool-down gets
  :attr:`Admission.TRIAL` — that session (or upgrade probe) may try the
  stream once; everyone else is still denied. The trial's verdict decides:
  :meth:`~CircuitBreakers.record_success` closes the breaker,
  :meth:`~CircuitBreakers.record_failure` re-opens it for longer. A trial
  given up without a verdict (the viewer left) is returned with
  :meth:`~CircuitBreakers.abandon`; a trial nobody reports on expires after
  ``trial_lease`` seconds, so a lost verdict can never lock a stream out.

Time is passed in (``now``, monotonic seconds); nothing here reads a clock.
State changes that users should see are returned as :class:`BreakerChange`
so that the caller can log them. Breakers without history are not stored,
so memory is bounded by the number of streams that failed since they last worked.

Not thread-safe: it is used from the event-loop thread only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

from streamforge.errors import ConfigError

if TYPE_CHECKING:
    from streamforge.settings import Settings


class BreakerState(StrEnum):
    """The state of one stream's breaker, as shown in the API."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(Enum):
    """The answer of :meth:`CircuitBreakers.admit`."""

    ALLOWED = "allowed"
    """The breaker is closed: go ahead."""
    TRIAL = "trial"
    """The breaker is half-open and this caller holds its one trial."""
    DENIED = "denied"
    """The breaker is open (or another caller holds the trial): skip the stream."""

    @property
    def admitted(self) -> bool:
        """True for ALLOWED and TRIAL."""
        return self is not Admission.DENIED


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Breaker thresholds; defaults are those of the settings."""

    threshold: int = 3
    cooldown: float = 30.0
    max_cooldown: float = 900.0
    trial_lease: float = 30.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ConfigError(f"breaker threshold must be at least 1, got {self.threshold}")
        if self.cooldown <= 0 or self.trial_lease <= 0:
            raise ConfigError("breaker cool-down and trial lease must be positive")
        if self.max_cooldown < self.cooldown:
            raise ConfigError("breaker max cool-down must be at least the first cool-down")

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerConfig:
        """The breaker configuration of the running settings."""
        return cls(
            threshold=settings.breaker_threshold,
            cooldown=settings.breaker_cooldown,
            max_cooldown=settings.breaker_max_cooldown,
        )

    def cooldown_for(self, trips: int) -> float:
        """Cool-down of the ``trips``-th opening in a row (0-based)."""
        # 2**trips overflows float for huge trip counts; the cap is reached long before.
        return min(self.max_cooldown, self.cooldown * 2.0 ** min(trips, 64))


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """A state change worth an event: the breaker of ``key`` opened or closed."""

    key: int
    state: BreakerState
    consecutive_failures: int
    cooldown: float | None = None
    """Seconds until the next trial (set when the breaker opened)."""


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """One breaker as the API shows it."""

    key: int
    state: BreakerState
    consecutive_failures: int
    trips: int
    retry_in: float | None
    """Seconds until a trial is allowed, for an open breaker."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "xtream_channel_id": self.key,
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "trips": self.trips,
            "retry_in": self.retry_in,
        }


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    trips: int = 0
    state: BreakerState = BreakerState.CLOSED
    open_until: float = 0.0
    trial_until: float | None = None


class CircuitBreakers:
    """The registry of per-stream breakers (see the module docstring)."""

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config if config is not None else BreakerConfig()
        self._breakers: dict[int, _Breaker] = {}

    def state(self, key: int, now: float) -> BreakerState:
        """The breaker's state at ``now`` (an open breaker past its cool-down is half-open)."""
        breaker = self._breakers.get(key)
        if breaker is None:
            return BreakerState.CLOSED
        if breaker.state is BreakerState.OPEN and now >= breaker.open_until:
            return BreakerState.HALF_OPEN
        return breaker.state

    def admit(self, key: int, now: float) -> Admission:
        """May the caller try stream ``key`` now? Hands out the half-open trial."""
        breaker = self._breakers.get(key)
        if breaker is None or breaker.state is BreakerState.CLOSED:
            return Admission.ALLOWED
        if breaker.state is BreakerState.OPEN:
            if now < breaker.open_until:
                return Admission.DENIED
            breaker.state = BreakerState.HALF_OPEN
            breaker.trial_until = None
        if breaker.trial_until is not None and now < breaker.trial_until:
            return Admission.DENIED
        breaker.trial_until = now + self.config.trial_lease
        return Admission.TRIAL

    def abandon(self, key: int) -> None:
        """Return a half-open trial that ended without a verdict."""
        breaker = self._breakers.get(key)
        if breaker is not None and breaker.state is BreakerState.HALF_OPEN:
            breaker.trial_until = None

    def record_success(self, key: int, now: float) -> BreakerChange | None:
        """The stream delivered valid video: reset it; report if it had been open."""
        breaker = self._breakers.pop(key, None)
        if breaker is None or breaker.state is BreakerState.CLOSED:
            return None
        return BreakerChange(key, BreakerState.CLOSED, 0)

    def record_failure(self, key: int, now: float) -> BreakerChange | None:
        """The stream failed: count it; report when that opens the breaker."""
        breaker = self._breakers.setdefault(key, _Breaker())
        breaker.failures += 1
        if breaker.state is BreakerState.OPEN:
            return None
        if breaker.state is BreakerState.CLOSED and breaker.failures < self.config.threshold:
            return None
        cooldown = self.config.cooldown_for(breaker.trips)
        breaker.trips += 1
        breaker.state = BreakerState.OPEN
        breaker.open_until = now + cooldown
        breaker.trial_until = None
        return BreakerChange(key, BreakerState.OPEN, breaker.failures, cooldown)

    def snapshot(self, now: float) -> list[BreakerStatus]:
        """Every breaker with history, by key, for the API."""
        statuses = []
        for key in sorted(self._breakers):
            breaker = self._breakers[key]
            state = self.state(key, now)
            retry_in = max(0.0, breaker.open_until - now) if state is BreakerState.OPEN else None
            statuses.append(BreakerStatus(key, state, breaker.failures, breaker.trips, retry_in))
        return statuses

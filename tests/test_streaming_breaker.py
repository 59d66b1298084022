"""Circuit breakers: thresholds, growing cool-downs, the single half-open trial."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.errors import ConfigError
from streamforge.streaming.breaker import (
    Admission,
    BreakerChange,
    BreakerConfig,
    BreakerState,
    CircuitBreakers,
)

KEY = 42


def tripped(config: BreakerConfig, now: float = 0.0) -> CircuitBreakers:
    breakers = CircuitBreakers(config)
    for _ in range(config.threshold):
        breakers.record_failure(KEY, now)
    return breakers


def test_unknown_stream_is_closed_and_admitted() -> None:
    breakers = CircuitBreakers()
    assert breakers.state(KEY, 0.0) is BreakerState.CLOSED
    assert breakers.admit(KEY, 0.0) is Admission.ALLOWED
    assert breakers.snapshot(0.0) == []


def test_opens_at_the_threshold_of_consecutive_failures() -> None:
    breakers = CircuitBreakers(BreakerConfig(threshold=3, cooldown=30.0))
    assert breakers.record_failure(KEY, 0.0) is None
    assert breakers.record_failure(KEY, 1.0) is None
    change = breakers.record_failure(KEY, 2.0)
    assert change == BreakerChange(KEY, BreakerState.OPEN, 3, 30.0)
    assert breakers.admit(KEY, 31.9) is Admission.DENIED
    assert breakers.state(KEY, 31.9) is BreakerState.OPEN


def test_success_resets_the_consecutive_count() -> None:
    breakers = CircuitBreakers(BreakerConfig(threshold=2))
    breakers.record_failure(KEY, 0.0)
    assert breakers.record_success(KEY, 1.0) is None
    assert breakers.record_failure(KEY, 2.0) is None
    assert breakers.state(KEY, 2.0) is BreakerState.CLOSED


def test_half_open_grants_one_trial_and_success_closes() -> None:
    breakers = tripped(BreakerConfig(threshold=1, cooldown=10.0))
    assert breakers.state(KEY, 10.0) is BreakerState.HALF_OPEN
    assert breakers.admit(KEY, 10.0) is Admission.TRIAL
    assert breakers.admit(KEY, 10.5) is Admission.DENIED
    assert breakers.record_success(KEY, 11.0) == BreakerChange(KEY, BreakerState.CLOSED, 0)
    assert breakers.admit(KEY, 11.0) is Admission.ALLOWED
    assert breakers.snapshot(11.0) == []


def test_failed_trial_reopens_with_a_doubled_capped_cooldown() -> None:
    config = BreakerConfig(threshold=1, cooldown=30.0, max_cooldown=100.0)
    breakers = tripped(config)
    now = 0.0
    expected = [60.0, 100.0, 100.0]
    now += 30.0
    for cooldown in expected:
        assert breakers.admit(KEY, now) is Admission.TRIAL
        change = breakers.record_failure(KEY, now)
        assert change is not None
        assert change.state is BreakerState.OPEN
        assert change.cooldown == cooldown
        assert breakers.admit(KEY, now + cooldown - 0.01) is Admission.DENIED
        now += cooldown
    status = breakers.snapshot(now - 1.0)[0]
    assert status.state is BreakerState.OPEN
    assert status.trips == 4
    assert status.retry_in == pytest.approx(1.0)
    assert status.as_dict()["state"] == "open"


def test_failures_while_open_do_not_extend_the_cooldown() -> None:
    breakers = tripped(BreakerConfig(threshold=1, cooldown=10.0))
    assert breakers.record_failure(KEY, 5.0) is None
    assert breakers.admit(KEY, 10.0) is Admission.TRIAL


def test_abandoned_trial_is_handed_out_again() -> None:
    breakers = tripped(BreakerConfig(threshold=1, cooldown=10.0))
    assert breakers.admit(KEY, 10.0) is Admission.TRIAL
    breakers.abandon(KEY)
    assert breakers.admit(KEY, 10.1) is Admission.TRIAL


def test_a_trial_nobody_reports_on_expires() -> None:
    breakers = tripped(BreakerConfig(threshold=1, cooldown=10.0, trial_lease=5.0))
    assert breakers.admit(KEY, 10.0) is Admission.TRIAL
    assert breakers.admit(KEY, 14.9) is Admission.DENIED
    assert breakers.admit(KEY, 15.0) is Admission.TRIAL


def test_abandon_on_a_closed_breaker_is_harmless() -> None:
    breakers = CircuitBreakers()
    breakers.abandon(KEY)
    assert breakers.admit(KEY, 0.0) is Admission.ALLOWED


def test_breakers_are_independent_per_stream() -> None:
    breakers = tripped(BreakerConfig(threshold=1))
    assert breakers.admit(KEY + 1, 0.0) is Admission.ALLOWED
    assert [s.key for s in breakers.snapshot(0.0)] == [KEY]


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        BreakerConfig(threshold=0)
    with pytest.raises(ConfigError):
        BreakerConfig(cooldown=0)
    with pytest.raises(ConfigError):
        BreakerConfig(cooldown=60.0, max_cooldown=30.0)
    assert BreakerConfig(cooldown=1.0, max_cooldown=2.0).cooldown_for(10_000) == 2.0


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["fail", "ok", "admit", "abandon"]), st.floats(0, 50)),
        max_size=40,
    )
)
def test_open_breaker_never_admits_before_its_cooldown(
    steps: list[tuple[str, float]],
) -> None:
    config = BreakerConfig(threshold=2, cooldown=10.0, max_cooldown=40.0, trial_lease=5.0)
    breakers = CircuitBreakers(config)
    now = 0.0
    reopen_at: float | None = None
    trial_holder_until: float | None = None
    for action, delay in steps:
        now += delay
        if action == "fail":
            change = breakers.record_failure(KEY, now)
            if change is not None:
                assert change.cooldown is not None
                assert config.cooldown <= change.cooldown <= config.max_cooldown
                reopen_at = now + change.cooldown
                trial_holder_until = None
        elif action == "ok":
            breakers.record_success(KEY, now)
            reopen_at = None
            trial_holder_until = None
        elif action == "abandon":
            breakers.abandon(KEY)
            trial_holder_until = None
        else:
            admission = breakers.admit(KEY, now)
            cooling = reopen_at is not None and now < reopen_at
            trial_taken = trial_holder_until is not None and now < trial_holder_until
            if cooling or trial_taken:
                assert admission is Admission.DENIED
            elif reopen_at is not None:
                assert admission is Admission.TRIAL
                trial_holder_until = now + config.trial_lease
            else:
                assert admission is Admission.ALLOWED

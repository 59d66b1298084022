"""The failover policy, driven as a transcript: events in, exact commands out.

Each step is ``(event, [commands])`` with commands rendered compactly:

    open 3 A/probe       OpenUpstream(attempt 3, stream "A", purpose probe)
    close 2              CloseUpstream(attempt 2)
    switch 3             SwitchTo(attempt 3, break-before-make)
    switch 3 make-before-break  SwitchTo(attempt 3, make-before-break)
    log warning failover LogEvent(level, kind)
    end exhausted        EndSession(reason)
    wake 60.5            RequestWakeup(at=60.5)

The clock is fake: every event carries its ``now``. Also covers the small
policy pieces the state machine leans on: failure reasons and stream
candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from textwrap import indent
from typing import Any

import pytest

from streamforge.errors import (
    AccountExpiredError,
    ConfigError,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    ProviderUnreachable,
)
from streamforge.settings import load_settings
from streamforge.streaming import policy as policy_module
from streamforge.streaming.breaker import BreakerConfig, BreakerState, CircuitBreakers
from streamforge.streaming.candidates import (
    ProviderStream,
    QualityTier,
    apply_quality_cap,
    order_streams,
    parse_quality_cap,
)
from streamforge.streaming.policy import FailoverPolicy
from streamforge.streaming.protocol import (
    EVENT_TYPES,
    TRANSITIONS,
    ClientsGone,
    CloseUpstream,
    Command,
    EndSession,
    Event,
    FailoverProtocolError,
    HoldSlate,
    LogEvent,
    ManualSwitch,
    MediaHealthy,
    OpenUpstream,
    PolicyConfig,
    RequestWakeup,
    SessionState,
    Start,
    SwitchMode,
    SwitchTo,
    Tick,
    Unpin,
    UpstreamData,
    UpstreamFailed,
    UpstreamOpened,
    accepts,
    render_transitions,
)
from streamforge.streaming.reasons import (
    CONTENT_REASONS,
    FailureReason,
    counts_against_stream,
    is_account_level,
    is_transient,
    reason_for_error,
    reason_for_http_status,
    safe_detail,
)
from streamforge.streaming.slots import AccountSlots

R = FailureReason
TS = 188 * 7  # one typical read of valid MPEG-TS


def stream(
    name: str,
    index: int,
    account: int = 1,
    max_connections: int = 4,
    quality: QualityTier = QualityTier.UNKNOWN,
) -> ProviderStream:
    return ProviderStream(
        mapping_id=100 + index,
        xtream_channel_id=10 + index,
        stream_id=1000 + index,
        name=name,
        account_id=account,
        account_name=f"acct{account}",
        priority=index,
        is_primary=index == 0,
        quality=quality,
        max_connections=max_connections,
    )


A = stream("A", 0, account=1)
B = stream("B", 1, account=2)
C = stream("C", 2, account=3)


def render(command: Command) -> str:
    match command:
        case OpenUpstream(attempt_id=aid, stream=s, purpose=purpose):
            return f"open {aid} {s.name}/{purpose}"
        case CloseUpstream(attempt_id=aid):
            return f"close {aid}"
        case SwitchTo(attempt_id=aid, mode=SwitchMode.BREAK_BEFORE_MAKE):
            return f"switch {aid}"
        case SwitchTo(attempt_id=aid, mode=SwitchMode.MAKE_BEFORE_BREAK):
            return f"switch {aid} make-before-break"
        case LogEvent(level=level, kind=kind):
            return f"log {level} {kind}"
        case EndSession(reason=reason):
            return f"end {reason}"
        case RequestWakeup(at=at):
            return f"wake {at:g}"
        case HoldSlate():
            return "hold"
    raise AssertionError(command)


SEQUENTIAL = PolicyConfig(probe_min_bytes=3 * TS, outage_limit=2.0, hedge_delay=60.0)
HEALTHY_PROBES = replace(SEQUENTIAL, probe_healthy_seconds=3.0)
"""The transcripts below walk candidates one at a time: a hedge delay longer
than any round keeps hedging out of them (it has transcripts of its own), and
a 2 s outage limit keeps their round deadlines short."""


class Session:
    """A policy plus the transcript helpers."""

    def __init__(
        self,
        streams: Sequence[ProviderStream],
        *,
        slots: AccountSlots | None = None,
        breakers: CircuitBreakers | None = None,
        config: PolicyConfig | None = None,
    ) -> None:
        self.slots = slots if slots is not None else AccountSlots()
        self.breakers = breakers if breakers is not None else CircuitBreakers()
        self.policy = FailoverPolicy(
            streams,
            slots=self.slots,
            breakers=self.breakers,
            config=config or SEQUENTIAL,
            channel="BBC One",
        )
        self.logs: list[LogEvent] = []

    def send(self, event: Event) -> list[str]:
        commands = self.policy.handle(event)
        self.logs.extend(c for c in commands if isinstance(c, LogEvent))
        return [render(c) for c in commands]

    def transcript(self, steps: Sequence[tuple[Event, list[str]]]) -> None:
        for number, (event, expected) in enumerate(steps):
            assert self.send(event) == expected, f"step {number}: {event}"

    def last_log(self, kind: str) -> dict[str, Any]:
        matching = [log for log in self.logs if log.kind == kind]
        assert matching, f"no {kind} event"
        return dict(matching[-1].details)


def fail(aid: int, reason: FailureReason, now: float, status: int | None = None) -> UpstreamFailed:
    return UpstreamFailed(aid, reason, f"{reason} in test", now, status)


def data(aid: int, now: float, nbytes: int = TS) -> UpstreamData:
    return UpstreamData(aid, nbytes, now)


# ------------------------------------------------------------------ tuning


def test_primary_plays_without_events_or_wakeups() -> None:
    s = Session([A, B])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (UpstreamOpened(1, 0.2), []),
            (data(1, 0.3), ["switch 1"]),
            (data(1, 0.4), []),
            (Tick(8.0), []),
        ]
    )
    assert s.policy.state is SessionState.PLAYING
    assert s.policy.playing == A
    assert s.logs == []
    assert s.slots.snapshot() == {1: 1}


def test_tune_time_failover_walks_streams_in_priority_order() -> None:
    s = Session([A, B, C])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.CONNECTION_ERROR, 0.1), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 0.2), []),
            (fail(2, R.HTTP_ERROR, 0.3, status=404), ["close 2", "open 3 C/play"]),
            (UpstreamOpened(3, 0.5), []),
            (data(3, 0.75), ["switch 3", "log warning failover", "wake 60.75"]),
        ]
    )
    details = s.last_log("failover")
    assert details["phase"] == "tune"
    assert (details["from_stream_name"], details["to_stream_name"]) == ("A", "C")
    # Streams are named as users know them: account/provider stream id.
    assert (details["from_stream"], details["to_stream"]) == ("acct1/1000", "acct3/1002")
    assert (details["from_stream_id"], details["to_stream_id"]) == (1000, 1002)
    assert (details["from_account"], details["to_account"]) == ("acct1", "acct3")
    assert details["reason"] == "connection_error"
    assert details["gap_ms"] == 750
    assert [f["stream_name"] for f in details["failures"]] == ["A", "B"]
    assert [f["stream"] for f in details["failures"]] == ["acct1/1000", "acct2/1001"]
    assert details["failures"][1]["detail"].startswith("HTTP 404")
    assert s.slots.snapshot() == {3: 1}
    assert s.policy.failovers == 1


def test_mid_stream_failure_moves_to_next_and_reports_the_gap() -> None:
    s = Session([A, B, C])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            (data(1, 0.2), ["switch 1"]),
            (fail(1, R.STALL, 100.0), ["close 1", "open 2 B/play", "wake 102"]),
            (UpstreamOpened(2, 100.15), []),
            (data(2, 100.4), ["switch 2", "log warning failover", "wake 160.4"]),
        ]
    )
    details = s.last_log("failover")
    assert details["phase"] == "failover"
    assert (details["from_stream_name"], details["to_stream_name"], details["reason"]) == (
        "A",
        "B",
        "stall",
    )
    assert details["gap_ms"] == 400
    assert details["channel"] == "BBC One"


def test_failed_attempt_reports_after_close_are_ignored() -> None:
    s = Session([A, B])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            (data(1, 0.2), ["switch 1"]),
            (fail(1, R.READ_ERROR, 5.0), ["close 1", "open 2 B/play", "wake 7"]),
            (data(1, 5.01), []),
            (fail(1, R.END_OF_STREAM, 5.02), []),
        ]
    )


def test_invalid_content_is_a_failure() -> None:
    s = Session([A, B])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            (fail(1, R.INVALID_CONTENT, 0.2), ["close 1", "open 2 B/play"]),
        ]
    )
    s.send(UpstreamOpened(2, 0.3))
    s.send(data(2, 0.4))
    assert s.last_log("failover")["reason"] == "invalid_content"


def test_transient_failure_retries_the_same_stream_last() -> None:
    s = Session([A, B])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            (data(1, 0.2), ["switch 1"]),
            (fail(1, R.END_OF_STREAM, 50.0), ["close 1", "open 2 B/play", "wake 52"]),
            (fail(2, R.CONNECTION_ERROR, 50.1), ["close 2", "open 3 A/play"]),
            (UpstreamOpened(3, 50.2), []),
            (data(3, 50.3), ["switch 3", "log warning failover"]),
        ]
    )
    assert s.last_log("failover")["to_stream_name"] == "A"


def test_non_transient_failure_of_the_only_stream_exhausts() -> None:
    s = Session([A])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            (data(1, 0.2), ["switch 1"]),
            (
                fail(1, R.HTTP_ERROR, 9.0, status=502),
                ["close 1", "log error exhausted", "end exhausted"],
            ),
        ]
    )


# -------------------------------------------------------- account handling


def test_account_level_failure_skips_that_accounts_other_streams() -> None:
    a1 = stream("A1", 0, account=1)
    a2 = stream("A2", 1, account=1)
    b = stream("B", 2, account=2)
    s = Session([a1, a2, b])
    s.transcript(
        [
            (Start(0.0), ["open 1 A1/play", "wake 8"]),
            (fail(1, R.HTTP_ERROR, 0.1, status=403), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 0.2), []),
            (data(2, 0.3), ["switch 2", "log warning failover", "wake 60.3"]),
        ]
    )
    details = s.last_log("failover")
    assert details["skipped"] == [
        {
            "stream": "acct1/1001",
            "stream_name": "A2",
            "xtream_channel_id": 11,
            "account": "acct1",
            "reason": "http_error",
            "detail": "account skipped",
        }
    ]


def test_stream_level_failure_keeps_the_accounts_other_streams() -> None:
    a1 = stream("A1", 0, account=1)
    a2 = stream("A2", 1, account=1)
    s = Session([a1, a2])
    s.transcript(
        [
            (Start(0.0), ["open 1 A1/play", "wake 8"]),
            (fail(1, R.HTTP_ERROR, 0.1, status=404), ["close 1", "open 2 A2/play"]),
        ]
    )


def test_account_with_its_slot_used_by_another_session_is_skipped() -> None:
    slots = AccountSlots()
    a = stream("A", 0, account=1, max_connections=1)
    elsewhere = slots.try_acquire(1, 1, holder="other channel")
    assert elsewhere is not None
    s = Session([a, B], slots=slots)
    s.transcript(
        [
            (Start(0.0), ["open 1 B/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            (data(1, 0.2), ["switch 1", "log info tune", "wake 60.2"]),
        ]
    )
    details = s.last_log("tune")
    assert details["to_stream_name"] == "B"
    assert details["to_stream"] == B.ref
    assert details["skipped"][0]["reason"] == "account_limit"
    assert s.policy.failovers == 0, "an account-full skip at tune time is not a failover"
    assert slots.snapshot() == {1: 1, 2: 1}


def test_same_account_backup_gets_the_slot_the_failed_stream_released() -> None:
    a1 = stream("A1", 0, account=1, max_connections=1)
    a2 = stream("A2", 1, account=1, max_connections=1)
    s = Session([a1, a2])
    s.transcript(
        [
            (Start(0.0), ["open 1 A1/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            (data(1, 0.2), ["switch 1"]),
            (fail(1, R.STALL, 10.0), ["close 1", "open 2 A2/play", "wake 12"]),
        ]
    )
    assert s.slots.snapshot() == {1: 1}


# ---------------------------------------------------------- circuit breaker


def test_breaker_opens_after_repeated_failures_and_half_opens_later() -> None:
    breakers = CircuitBreakers(BreakerConfig(threshold=2, cooldown=30.0, max_cooldown=120.0))

    def session() -> Session:
        return Session([A, B], breakers=breakers)

    first = session()
    first.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.CONNECT_TIMEOUT, 1.0), ["close 1", "open 2 B/play"]),
        ]
    )
    second = session()
    second.transcript(
        [
            (Start(2.0), ["open 1 A/play", "wake 10"]),
            (
                fail(1, R.CONNECT_TIMEOUT, 3.0),
                ["close 1", "log warning breaker_open", "open 2 B/play"],
            ),
        ]
    )
    assert second.last_log("breaker_open")["cooldown_s"] == 30.0
    third = session()
    third.transcript([(Start(4.0), ["open 1 B/play", "wake 12"])])
    third.send(UpstreamOpened(1, 4.1))
    third.send(data(1, 4.2))
    assert third.last_log("tune")["skipped"][0]["reason"] == "breaker_open"
    assert third.policy.failovers == 0

    # Cool-down over: one session gets the trial, a concurrent one is still denied.
    trial = session()
    trial.transcript([(Start(33.0), ["open 1 A/play", "wake 41"])])
    concurrent = session()
    concurrent.transcript([(Start(33.5), ["open 1 B/play", "wake 41.5"])])
    trial.transcript(
        [
            (
                fail(1, R.HEADER_TIMEOUT, 34.0),
                ["close 1", "log warning breaker_open", "open 2 B/play"],
            )
        ]
    )
    assert trial.last_log("breaker_open")["cooldown_s"] == 60.0
    assert breakers.state(A.xtream_channel_id, 93.0) is BreakerState.OPEN

    recovered = session()
    recovered.transcript(
        [
            (Start(95.0), ["open 1 A/play", "wake 103"]),
            (UpstreamOpened(1, 95.1), []),
            (data(1, 95.2), ["switch 1", "log info breaker_close"]),
        ]
    )
    assert breakers.state(A.xtream_channel_id, 96.0) is BreakerState.CLOSED


def test_trial_abandoned_by_a_leaving_viewer_is_handed_to_the_next_session() -> None:
    breakers = CircuitBreakers(BreakerConfig(threshold=1, cooldown=10.0))
    breakers.record_failure(A.xtream_channel_id, 0.0)
    first = Session([A, B], breakers=breakers)
    first.transcript(
        [
            (Start(11.0), ["open 1 A/play", "wake 19"]),
            (ClientsGone(11.5), ["close 1", "end clients_gone"]),
        ]
    )
    second = Session([A, B], breakers=breakers)
    second.transcript([(Start(12.0), ["open 1 A/play", "wake 20"])])


# ------------------------------------------------------------------ upgrade


def _on_backup(s: Session) -> None:
    """A fails at tune time, B plays from t=1."""
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.CONNECTION_ERROR, 0.5), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 0.8), []),
            (data(2, 1.0), ["switch 2", "log warning failover", "wake 61"]),
        ]
    )


def test_upgrade_after_recovery_period_switches_once_probe_delivers() -> None:
    s = Session([A, B])
    _on_backup(s)
    s.transcript(
        [
            (Tick(30.0), []),
            (data(2, 50.0), []),
            (Tick(61.0), ["open 3 A/probe", "wake 66"]),
            (UpstreamOpened(3, 61.3), []),
            (data(3, 61.4), []),
            (data(2, 61.45), []),
            (
                data(3, 61.5, nbytes=2 * TS),
                ["switch 3 make-before-break", "close 2", "log info upgrade"],
            ),
            (Tick(66.0), []),
        ]
    )
    assert s.policy.state is SessionState.PLAYING
    assert s.policy.playing == A
    details = s.last_log("upgrade")
    assert (details["from_stream_name"], details["to_stream_name"]) == ("B", "A")
    assert (details["from_stream"], details["to_stream"]) == (B.ref, A.ref)
    assert details["probe_ms"] == 500
    assert s.slots.snapshot() == {1: 1}
    assert s.policy.upgrades == 1


def test_failed_probe_stays_and_waits_another_period() -> None:
    s = Session([A, B])
    _on_backup(s)
    s.transcript(
        [
            (Tick(61.0), ["open 3 A/probe", "wake 66"]),
            (
                fail(3, R.HTTP_ERROR, 61.2, status=503),
                ["close 3", "log info upgrade_failed", "wake 121.2"],
            ),
            (Tick(121.2), ["open 4 A/probe", "wake 126.2"]),
            (UpstreamOpened(4, 121.5), []),
            (data(4, 121.6), []),
            (
                Tick(126.2),
                ["close 4", "log warning breaker_open", "log info upgrade_failed", "wake 186.2"],
            ),
        ]
    )
    assert s.last_log("upgrade_failed")["reason"] == "probe_timeout"
    assert s.policy.playing == B
    assert s.slots.snapshot() == {2: 1}


def test_probe_that_must_be_healthy_waits_for_upstream_healthy() -> None:
    s = Session([A, B], config=HEALTHY_PROBES)
    _on_backup(s)
    s.transcript(
        [
            (Tick(61.0), ["open 3 A/probe", "wake 69"]),
            (UpstreamOpened(3, 61.3), []),
            (data(3, 61.5, nbytes=4 * TS), []),
            (Tick(64.0), []),
            (
                MediaHealthy(3, 64.8),
                ["switch 3 make-before-break", "close 2", "log info upgrade"],
            ),
            (MediaHealthy(3, 65.0), []),
        ]
    )
    assert s.policy.playing == A
    assert s.last_log("upgrade")["probe_ms"] == 3800


def test_healthy_before_enough_bytes_switches_with_the_bytes() -> None:
    s = Session([A, B], config=HEALTHY_PROBES)
    _on_backup(s)
    s.transcript(
        [
            (Tick(61.0), ["open 3 A/probe", "wake 69"]),
            (UpstreamOpened(3, 61.3), []),
            (data(3, 61.5), []),
            (MediaHealthy(3, 64.5), []),
            (
                data(3, 64.6, nbytes=2 * TS),
                ["switch 3 make-before-break", "close 2", "log info upgrade"],
            ),
        ]
    )


def test_probe_never_healthy_times_out_and_stays() -> None:
    s = Session([A, B], config=HEALTHY_PROBES)
    _on_backup(s)
    s.transcript(
        [
            (Tick(61.0), ["open 3 A/probe", "wake 69"]),
            (UpstreamOpened(3, 61.3), []),
            (data(3, 61.5, nbytes=40 * TS), []),
            (
                Tick(69.0),
                ["close 3", "log info upgrade_failed", "wake 129"],
            ),
        ]
    )
    failed = s.last_log("upgrade_failed")
    assert failed["reason"] == "probe_timeout"
    assert "never healthy" in failed["detail"]
    assert s.policy.playing == B


def test_probe_failed_for_its_content_stays_and_waits_another_period() -> None:
    s = Session([A, B], config=HEALTHY_PROBES)
    _on_backup(s)
    s.transcript(
        [
            (Tick(61.0), ["open 3 A/probe", "wake 69"]),
            (UpstreamOpened(3, 61.3), []),
            (data(3, 61.5, nbytes=40 * TS), []),
            (fail(3, R.BLACK_PICTURE, 64.6), ["close 3", "log info upgrade_failed", "wake 124.6"]),
        ]
    )
    assert s.last_log("upgrade_failed")["reason"] == "black_picture"
    assert s.policy.playing == B


def test_account_full_with_our_own_connection_swaps_back() -> None:
    # A and B share the account's only connection: no probe is possible, so the
    # session swaps (break-before-make) instead of staying on B forever.
    a = stream("A", 0, account=1, max_connections=1)
    b = stream("B", 1, account=1, max_connections=1)
    s = Session([a, b])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.HTTP_ERROR, 0.5, status=404), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 0.8), []),
            (data(2, 1.0), ["switch 2", "log warning failover", "wake 61"]),
            (Tick(61.0), ["close 2", "open 3 A/play", "wake 63"]),
            (UpstreamOpened(3, 61.1), []),
            (data(3, 61.2), ["switch 3", "log info upgrade"]),
        ]
    )
    details = s.last_log("upgrade")
    assert details["mode"] == "swap"
    assert (details["from_stream_name"], details["to_stream_name"]) == ("B", "A")
    assert details["gap_ms"] == 200
    assert s.policy.upgrades == 1
    assert s.slots.snapshot() == {1: 1}


def test_a_failed_swap_goes_back_to_the_backup() -> None:
    a = stream("A", 0, account=1, max_connections=1)
    b = stream("B", 1, account=1, max_connections=1)
    s = Session([a, b], config=replace(SEQUENTIAL, outage_limit=10.0))
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.HTTP_ERROR, 0.5, status=404), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 0.8), []),
            (data(2, 1.0), ["switch 2", "log warning failover", "wake 61"]),
            (Tick(61.0), ["close 2", "open 3 A/play", "wake 63"]),
            # A hangs: after the failover budget it is given up and B comes back.
            (Tick(63.0), ["close 3", "open 4 B/play", "wake 65"]),
            (UpstreamOpened(4, 63.1), []),
            (data(4, 63.2), ["switch 4", "log info upgrade_failed", "wake 123.2"]),
        ]
    )
    details = s.last_log("upgrade_failed")
    assert details["mode"] == "swap"
    assert details["reason"] == "hung"
    assert s.policy.playing == b
    assert s.policy.upgrades == 0
    assert s.slots.snapshot() == {1: 1}


def test_an_upgrade_waits_for_a_connection_held_by_another_channel() -> None:
    a = stream("A", 0, account=1, max_connections=1)
    s = Session([a, B])
    other = s.slots.try_acquire(1, 1, holder="another channel")
    assert other is not None
    s.transcript(
        [
            (Start(0.0), ["open 1 B/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            # A's account is full at tune time: a tune detail, not a failover.
            (data(1, 0.2), ["switch 1", "log info tune", "wake 60.2"]),
            (Tick(60.2), ["log info upgrade_waiting", "wake 62.2"]),
            (Tick(62.2), ["wake 64.2"]),  # said once per wait, looked at again every 2 s
        ]
    )
    assert s.policy.status()["upgrade_waiting"]["stream"] == "A"
    s.slots.release(other)
    s.transcript([(Tick(64.2), ["open 2 A/probe", "wake 69.2"])])
    assert s.policy.status()["upgrade_waiting"] is None


def test_open_breaker_means_no_probe() -> None:
    breakers = CircuitBreakers(BreakerConfig(threshold=1, cooldown=300.0, max_cooldown=300.0))
    s = Session([A, B], breakers=breakers)
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (
                fail(1, R.CONNECTION_ERROR, 0.5),
                ["close 1", "log warning breaker_open", "open 2 B/play"],
            ),
            (UpstreamOpened(2, 0.8), []),
            (data(2, 1.0), ["switch 2", "log warning failover", "wake 61"]),
            (Tick(61.0), ["wake 121"]),
        ]
    )


def test_probe_picks_the_best_eligible_stream_above_the_current_one() -> None:
    slots = AccountSlots()
    s = Session([A, B, C], slots=slots)
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.CONNECTION_ERROR, 0.1), ["close 1", "open 2 B/play"]),
            (fail(2, R.CONNECTION_ERROR, 0.2), ["close 2", "open 3 C/play"]),
            (UpstreamOpened(3, 0.3), []),
            (data(3, 0.4), ["switch 3", "log warning failover", "wake 60.4"]),
        ]
    )
    blocker = slots.try_acquire(1, A.max_connections, holder="elsewhere")
    for _ in range(A.max_connections - 1):
        assert slots.try_acquire(1, A.max_connections) is not None
    assert blocker is not None
    s.transcript(
        [
            (Tick(60.4), ["open 4 B/probe", "wake 65.4"]),
            (UpstreamOpened(4, 60.5), []),
            (
                data(4, 60.6, nbytes=3 * TS),
                ["switch 4 make-before-break", "close 3", "log info upgrade", "wake 120.6"],
            ),
        ]
    )


def test_playing_failure_during_probe_adopts_the_probe() -> None:
    s = Session([A, B, C])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.CONNECTION_ERROR, 0.1), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 0.2), []),
            (data(2, 0.3), ["switch 2", "log warning failover", "wake 60.3"]),
            (Tick(60.3), ["open 3 A/probe", "wake 65.3"]),
            (UpstreamOpened(3, 60.4), []),
            (data(3, 60.5), []),
            (
                fail(2, R.STALL, 60.6),
                ["close 2", "switch 3 make-before-break", "log warning failover"],
            ),
        ]
    )
    assert s.policy.playing == A
    assert s.last_log("failover")["gap_ms"] == 0


def test_playing_failure_before_the_probe_delivers_waits_for_it() -> None:
    s = Session([A, B, C])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.CONNECTION_ERROR, 0.1), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 0.2), []),
            (data(2, 0.3), ["switch 2", "log warning failover", "wake 60.3"]),
            (Tick(60.3), ["open 3 A/probe", "wake 65.3"]),
            (fail(2, R.END_OF_STREAM, 60.4), ["close 2", "wake 62.4"]),
            (fail(3, R.CONNECTION_ERROR, 60.5), ["close 3", "open 4 C/play"]),
            (fail(4, R.CONNECTION_ERROR, 60.6), ["close 4", "open 5 B/play"]),
        ]
    )


# ------------------------------------------------------- exhaustion, ending


def test_exhaustion_logs_ends_and_ignores_everything_after() -> None:
    s = Session([A, B])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (fail(1, R.CREDENTIAL_ERROR, 0.1), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 0.2), []),
            (
                fail(2, R.INVALID_CONTENT, 0.3),
                ["close 2", "log error exhausted", "end exhausted"],
            ),
            (data(2, 0.4), []),
            (Tick(9.0), []),
            (ClientsGone(10.0), []),
        ]
    )
    details = s.last_log("exhausted")
    assert details["reason"] == "invalid_content"
    assert details["budget_exceeded"] is False
    assert [f["reason"] for f in details["failures"]] == ["credential_error", "invalid_content"]
    assert s.policy.state is SessionState.ENDED
    assert s.slots.snapshot() == {}
    with pytest.raises(FailoverProtocolError):
        s.send(Start(11.0))


def test_failover_budget_bounds_the_round() -> None:
    s = Session([A, B, C])
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (UpstreamOpened(1, 0.1), []),
            (data(1, 0.2), ["switch 1"]),
            (fail(1, R.READ_ERROR, 20.0), ["close 1", "open 2 B/play", "wake 22"]),
            (Tick(21.0), []),
            (Tick(22.0), ["close 2", "log error exhausted", "end exhausted"]),
        ]
    )
    details = s.last_log("exhausted")
    assert details["budget_exceeded"] is True
    assert details["failures"][-1]["reason"] == "budget_exceeded"
    assert s.slots.snapshot() == {}


def test_failure_reported_after_the_budget_does_not_open_more() -> None:
    s = Session([A, B, C], config=replace(SEQUENTIAL, tune_budget=1.0))
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 1"]),
            (fail(1, R.CONNECT_TIMEOUT, 1.2), ["close 1", "log error exhausted", "end exhausted"]),
        ]
    )


def test_no_streams_at_all_exhausts_at_start() -> None:
    s = Session([])
    s.transcript([(Start(0.0), ["log error exhausted", "end exhausted"])])


def test_clients_gone_closes_every_upstream_and_releases_every_slot() -> None:
    s = Session([A, B])
    _on_backup(s)
    s.transcript(
        [
            (Tick(61.0), ["open 3 A/probe", "wake 66"]),
            (ClientsGone(62.0), ["close 2", "close 3", "end clients_gone"]),
            (data(3, 62.1), []),
        ]
    )
    assert s.slots.snapshot() == {}
    assert s.policy.open_attempts == ()


def test_clients_gone_before_start_just_ends() -> None:
    s = Session([A])
    s.transcript([(ClientsGone(0.0), ["end clients_gone"])])


# ------------------------------------------------------------ strictness


def test_illegal_events_raise() -> None:
    s = Session([A, B])
    with pytest.raises(FailoverProtocolError, match="not allowed in state idle"):
        s.send(Tick(0.0))
    s.send(Start(0.0))
    with pytest.raises(FailoverProtocolError, match="not allowed"):
        s.send(Start(0.1))
    with pytest.raises(FailoverProtocolError, match="never opened"):
        s.send(UpstreamOpened(7, 0.2))
    with pytest.raises(FailoverProtocolError, match="before its headers"):
        s.send(data(1, 0.3))
    s.send(UpstreamOpened(1, 0.4))
    with pytest.raises(FailoverProtocolError, match="twice"):
        s.send(UpstreamOpened(1, 0.5))
    with pytest.raises(FailoverProtocolError, match="negative"):
        s.send(UpstreamData(1, -1, 0.6))


def _in_state(state: SessionState) -> Session:
    """A session in ``state`` whose attempt 1 exists and is already closed (unless IDLE)."""
    s = Session([A, B])
    if state is SessionState.IDLE:
        return s
    if state is SessionState.ENDED:
        s.transcript([(Start(0.0), ["open 1 A/play", "wake 8"])])
        s.transcript([(ClientsGone(0.1), ["close 1", "end clients_gone"])])
    elif state is SessionState.CONNECTING:
        s.transcript(
            [
                (Start(0.0), ["open 1 A/play", "wake 8"]),
                (fail(1, R.CONNECTION_ERROR, 0.1), ["close 1", "open 2 B/play"]),
            ]
        )
    else:
        _on_backup(s)
        if state is SessionState.PROBING:
            s.transcript([(Tick(61.0), ["open 3 A/probe", "wake 66"])])
    assert s.policy.state is state
    return s


EVENT_OF_TYPE: dict[type, Event] = {
    Start: Start(70.0),
    UpstreamOpened: UpstreamOpened(1, 70.0),
    UpstreamData: data(1, 70.0),
    UpstreamFailed: fail(1, R.STALL, 70.0),
    MediaHealthy: MediaHealthy(1, 70.0),
    Tick: Tick(62.0),
    ClientsGone: ClientsGone(70.0),
    ManualSwitch: ManualSwitch(70.0, 0),
    Unpin: Unpin(70.0),
}


@pytest.mark.parametrize("state", list(SessionState))
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_handle_accepts_exactly_the_events_of_the_transition_table(
    state: SessionState, event_type: type
) -> None:
    s = _in_state(state)
    event = EVENT_OF_TYPE[event_type]
    if accepts(state, event_type):
        s.send(event)  # a report about the closed attempt 1 is ignored, not refused
    else:
        with pytest.raises(FailoverProtocolError, match=f"not allowed in state {state.value}"):
            s.send(event)
        assert s.policy.state is state


def test_the_transition_table_is_what_the_policy_docstring_says() -> None:
    upstream = {UpstreamOpened, UpstreamData, MediaHealthy, UpstreamFailed}
    accepted = {state: {t for t in EVENT_TYPES if accepts(state, t)} for state in SessionState}
    assert accepted[SessionState.IDLE] == {Start, ClientsGone}
    # A manual switch needs a playing stream; a round under way refuses it.
    assert accepted[SessionState.CONNECTING] == upstream | {Tick, ClientsGone, Unpin}
    for state in (SessionState.PLAYING, SessionState.PROBING):
        assert accepted[state] == upstream | {Tick, ClientsGone, ManualSwitch, Unpin}
    assert accepted[SessionState.ENDED] == upstream | {Tick, ClientsGone, ManualSwitch, Unpin}, (
        "ENDED ignores these"
    )
    assert {row.state for row in TRANSITIONS if row.event is Start} == {SessionState.IDLE}
    assert all(
        row.next is SessionState.ENDED and row.commands == "nothing (ignored)"
        for row in TRANSITIONS
        if row.state is SessionState.ENDED
    )
    assert indent(render_transitions(), "    ") in (policy_module.__doc__ or "")


def test_each_docstring_row_is_a_row_of_the_data() -> None:
    doc = policy_module.__doc__ or ""
    block = doc.split("a (state, event) pair without a row raises::\n\n", 1)[1]
    lines = [line[4:] for line in block.split("\n\n", 1)[0].splitlines()]
    assert lines[0].split() == ["state", "event", "when", "next", "commands"]
    names = {t.__name__: t for t in EVENT_TYPES}
    rows = []
    for line in lines[2:]:
        state, event, when, next_, commands = (
            line[0:10].strip(),
            line[12:26].strip(),
            line[28:54].strip(),
            line[56:66].strip(),
            line[68:].strip(),
        )
        rows.append((SessionState[state], names[event], when, SessionState[next_], commands))
    assert rows == [(r.state, r.event, r.when, r.next, r.commands) for r in TRANSITIONS]


def test_time_never_goes_backwards() -> None:
    s = Session([A, B])
    s.transcript(
        [
            (Start(10.0), ["open 1 A/play", "wake 18"]),
            (fail(1, R.CONNECTION_ERROR, 5.0), ["close 1", "open 2 B/play"]),
            (UpstreamOpened(2, 10.1), []),
            (data(2, 10.2), ["switch 2", "log warning failover", "wake 70.2"]),
        ]
    )
    assert s.last_log("failover")["gap_ms"] == 200


def test_status_describes_the_session() -> None:
    s = Session([A, B])
    _on_backup(s)
    status = s.policy.status()
    assert status["state"] == "playing"
    assert status["playing"]["stream"] == "B"
    assert status["failovers"] == 1
    assert status["next_deadline"] == 61.0


def test_details_never_carry_credentials() -> None:
    s = Session([A, B])
    s.send(Start(0.0))
    s.send(
        UpstreamFailed(
            1,
            R.CONNECTION_ERROR,
            "GET http://panel:8080/live/alice/s3cret/1000.ts?token=abc refused",
            0.1,
        )
    )
    s.send(UpstreamOpened(2, 0.2))
    s.send(data(2, 0.3))
    text = repr(s.logs)
    assert "s3cret" not in text
    assert "alice" not in text
    assert "abc" not in text


# ------------------------------------------------------------ configuration


def test_config_validation_and_settings() -> None:
    with pytest.raises(ConfigError, match="failover_budget"):
        PolicyConfig(failover_budget=0)
    with pytest.raises(ConfigError, match="probe_min_bytes"):
        PolicyConfig(probe_min_bytes=0)
    settings = load_settings(failover_budget=1.5, recovery_period=30.0, probe_timeout=4.0)
    config = PolicyConfig.from_settings(settings)
    assert (config.failover_budget, config.recovery_period, config.probe_timeout) == (
        1.5,
        30.0,
        4.0,
    )
    assert config.tune_budget == PolicyConfig().tune_budget
    assert BreakerConfig.from_settings(settings) == BreakerConfig()


# ----------------------------------------------------------------- reasons


def test_reason_values_are_stable_identifiers() -> None:
    assert {r.value for r in FailureReason} >= {
        "connection_error",
        "connect_timeout",
        "header_timeout",
        "http_error",
        "invalid_content",
        "stall",
        "end_of_stream",
        "read_error",
        "credential_error",
        "account_limit",
        "account_inactive",
    }
    assert str(FailureReason.STALL) == "stall"


@pytest.mark.parametrize(
    ("reason", "status", "expected"),
    [
        (R.CREDENTIAL_ERROR, None, True),
        (R.ACCOUNT_LIMIT, None, True),
        (R.ACCOUNT_INACTIVE, None, True),
        (R.HTTP_ERROR, 401, True),
        (R.HTTP_ERROR, 403, True),
        (R.HTTP_ERROR, 404, False),
        (R.HTTP_ERROR, 503, False),
        (R.STALL, None, False),
        (R.INVALID_CONTENT, None, False),
    ],
)
def test_is_account_level(reason: FailureReason, status: int | None, expected: bool) -> None:
    assert is_account_level(reason, status) is expected


def test_transient_and_breaker_classification() -> None:
    assert {r for r in FailureReason if is_transient(r)} == {
        R.CONNECTION_ERROR,
        R.STALL,
        R.END_OF_STREAM,
        R.READ_ERROR,
        R.BEHIND_LIVE,
    }
    for content in CONTENT_REASONS:
        assert counts_against_stream(content)
        assert not is_transient(content)
    assert counts_against_stream(R.BEHIND_LIVE)
    assert not counts_against_stream(R.ACCOUNT_LIMIT)
    assert not counts_against_stream(R.BUDGET_EXCEEDED)
    assert counts_against_stream(R.CREDENTIAL_ERROR)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ProviderUnreachable("refused"), R.CONNECTION_ERROR),
        (ProviderTimeout("no headers"), R.HEADER_TIMEOUT),
        (ProviderHTTPError("gone", 404), R.HTTP_ERROR),
        (ProviderHTTPError("denied", 403), R.CREDENTIAL_ERROR),
        (ProviderAuthError("auth 0"), R.CREDENTIAL_ERROR),
        (AccountExpiredError("expired"), R.ACCOUNT_INACTIVE),
        (ProviderBadResponse("html"), R.INVALID_CONTENT),
        (ProviderError("other"), R.CONNECTION_ERROR),
    ],
)
def test_reason_for_error(error: ProviderError, expected: FailureReason) -> None:
    assert reason_for_error(error) is expected


def test_reason_for_http_status() -> None:
    assert reason_for_http_status(401) is R.CREDENTIAL_ERROR
    assert reason_for_http_status(458) is R.HTTP_ERROR


def test_safe_detail_redacts_and_shortens() -> None:
    assert (
        safe_detail("GET http://p/live/u/p4ss/1.ts?username=u&password=x\nfailed")
        == "GET http://p/live/***/***/1.ts?username=***&password=*** failed"
    )
    long = safe_detail("x" * 1000)
    assert len(long) == 300
    assert long.endswith("…")


# -------------------------------------------------------------- candidates


def test_order_streams_by_priority_then_primary_then_mapping() -> None:
    def s(mapping: int, priority: int, primary: bool) -> ProviderStream:
        return ProviderStream(mapping, mapping, mapping, f"s{mapping}", 1, "a", priority, primary)

    streams = [s(5, 1, False), s(4, 0, False), s(3, 0, True), s(2, 1, False)]
    assert [x.mapping_id for x in order_streams(streams)] == [3, 4, 2, 5]


def test_quality_cap() -> None:
    uhd = stream("UHD", 0, quality=QualityTier.UHD)
    fhd = stream("FHD", 1, quality=QualityTier.FHD)
    sd = stream("SD", 2, quality=QualityTier.SD)
    unknown = stream("?", 3)
    streams = [uhd, fhd, sd, unknown]
    assert parse_quality_cap(None) is None
    assert parse_quality_cap(" ") is None
    assert parse_quality_cap("HD") is QualityTier.HD
    assert parse_quality_cap("4k") is QualityTier.UHD
    with pytest.raises(ConfigError, match="quality"):
        parse_quality_cap("best")
    assert apply_quality_cap(streams, None) == tuple(streams)
    assert apply_quality_cap(streams, QualityTier.HD) == (sd, unknown)
    assert apply_quality_cap(streams, QualityTier.FHD) == (fhd, sd, unknown)
    assert apply_quality_cap([uhd, fhd], QualityTier.SD) == (uhd, fhd)


def test_provider_stream_has_no_secret_and_checks_its_limit() -> None:
    assert "password" not in ProviderStream.__slots__
    assert A.describe()["account"] == "acct1"
    with pytest.raises(ConfigError, match="max_connections"):
        stream("bad", 0, max_connections=0)


# --- hedged failover rounds ---

HEDGED = PolicyConfig(probe_min_bytes=3 * TS, hedge_delay=0.4, outage_limit=10.0)


def _playing_a(s: Session) -> None:
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 0.4"]),
            (UpstreamOpened(1, 0.05), []),
            (data(1, 0.1), ["switch 1"]),
        ]
    )


def test_a_hanging_backup_is_hedged_and_the_next_one_wins() -> None:
    s = Session([A, B, C], config=HEDGED)
    _playing_a(s)
    s.transcript(
        [
            (fail(1, R.END_OF_STREAM, 50.0), ["close 1", "open 2 B/play", "wake 50.4"]),
            (UpstreamOpened(2, 50.1), []),  # headers, then nothing
            (Tick(50.4), ["open 3 C/play", "wake 50.8"]),
            (UpstreamOpened(3, 50.45), []),
            (data(3, 50.5), ["switch 3", "close 2", "log warning failover", "wake 110.5"]),
        ]
    )
    details = s.last_log("failover")
    assert (details["from_stream_name"], details["to_stream_name"]) == ("A", "C")
    assert details["gap_ms"] == 500
    assert details["within_budget"] is True
    assert details["hedges"] == 1
    assert details["failures"] == [
        {
            "stream": B.ref,
            "stream_name": "B",
            "xtream_channel_id": B.xtream_channel_id,
            "account": "acct2",
            "reason": "hung",
            "detail": "no video after 500 ms",
        }
    ]
    assert s.policy.open_attempts == (3,)
    assert s.slots.snapshot() == {3: 1}
    failures = {b.key: b.consecutive_failures for b in s.breakers.snapshot(50.5)}
    assert failures == {A.xtream_channel_id: 1, B.xtream_channel_id: 1}  # EOF, hung


def test_a_better_candidate_that_delivers_first_wins_over_the_hedge() -> None:
    s = Session([A, B, C], config=HEDGED)
    _playing_a(s)
    s.transcript(
        [
            (fail(1, R.END_OF_STREAM, 50.0), ["close 1", "open 2 B/play", "wake 50.4"]),
            (Tick(50.4), ["open 3 C/play", "wake 50.8"]),
            (UpstreamOpened(2, 50.5), []),
            (data(2, 50.6), ["switch 2", "close 3", "log warning failover", "wake 110.6"]),
        ]
    )
    details = s.last_log("failover")
    assert details["to_stream_name"] == "B"
    assert details["failures"] == []  # C was abandoned young: no verdict against it
    assert C.xtream_channel_id not in {b.key for b in s.breakers.snapshot(50.6)}
    assert s.slots.snapshot() == {2: 1}


def test_a_round_outlives_the_failover_budget_and_ends_at_the_outage_limit() -> None:
    s = Session([A, B, C], config=HEDGED)
    _playing_a(s)
    s.transcript(
        [
            (fail(1, R.INVALID_CONTENT, 50.0), ["close 1", "open 2 B/play", "wake 50.4"]),
            (Tick(50.4), ["open 3 C/play", "wake 60"]),
            (Tick(52.0), []),  # past the 2 s target: still waiting for B or C
            (Tick(60.0), ["close 2", "close 3", "log error exhausted", "end exhausted"]),
        ]
    )
    details = s.last_log("exhausted")
    assert details["budget_exceeded"] is True
    assert [f["reason"] for f in details["failures"]] == ["hung", "hung"]
    assert s.slots.snapshot() == {}


def test_a_hedge_never_takes_a_connection_the_account_does_not_have() -> None:
    b2 = stream("B2", 2, account=2, max_connections=1)
    c = stream("C", 3, account=3)
    b = stream("B", 1, account=2, max_connections=1)
    s = Session([A, b, b2, c], config=HEDGED)
    _playing_a(s)
    s.transcript(
        [
            (fail(1, R.INVALID_CONTENT, 50.0), ["close 1", "open 2 B/play", "wake 50.4"]),
            # B2 shares B's only connection: it waits, C is opened alongside instead.
            (Tick(50.4), ["open 3 C/play", "wake 50.8"]),
            (Tick(50.8), ["wake 60"]),
            (fail(2, R.INVALID_CONTENT, 51.0), ["close 2", "open 4 B2/play"]),
            (UpstreamOpened(4, 51.1), []),
            (data(4, 51.2), ["switch 4", "close 3", "log warning failover", "wake 111.2"]),
        ]
    )
    assert s.last_log("failover")["to_stream_name"] == "B2"
    assert s.slots.snapshot() == {2: 1}


def test_a_round_is_exhausted_at_once_when_nothing_is_left() -> None:
    s = Session([A, B, C], config=HEDGED)
    _playing_a(s)
    s.transcript(
        [
            (fail(1, R.INVALID_CONTENT, 50.0), ["close 1", "open 2 B/play", "wake 50.4"]),
            (fail(2, R.INVALID_CONTENT, 50.1), ["close 2", "open 3 C/play", "wake 60"]),
            (fail(3, R.INVALID_CONTENT, 50.2), ["close 3", "log error exhausted", "end exhausted"]),
        ]
    )
    assert s.last_log("exhausted")["budget_exceeded"] is False


def test_hedging_settings_reach_the_policy() -> None:
    settings = load_settings(hedge_delay=0.25, outage_limit=12.0)
    config = PolicyConfig.from_settings(settings)
    assert (config.hedge_delay, config.outage_limit) == (0.25, 12.0)
    with pytest.raises(ConfigError, match="hedge_max"):
        PolicyConfig(hedge_max=0)


# --- manual control ---


def test_a_manual_switch_is_seamless_pinned_and_not_upgraded_away() -> None:
    s = Session([A, B, C], config=replace(SEQUENTIAL, outage_limit=10.0))
    _playing_a_sequential(s)
    s.transcript(
        [
            (ManualSwitch(5.0, 2), ["close 1", "open 2 C/play", "wake 7"]),
            (UpstreamOpened(2, 5.1), []),
            (data(2, 5.2), ["switch 2", "log info manual"]),  # pinned: no recovery wakeup
            (Tick(70.0), []),
        ]
    )
    details = s.last_log("manual")
    assert (details["from_stream_name"], details["to_stream_name"], details["pinned"]) == (
        "A",
        "C",
        True,
    )
    assert (details["from_stream"], details["to_stream"]) == (A.ref, C.ref)
    assert s.policy.pinned == C
    assert s.policy.status()["pinned"]["stream"] == "C"
    assert s.policy.failovers == 0
    # Unpinned, the session goes back to upgrading after a recovery period.
    s.transcript([(Unpin(80.0), ["wake 140"]), (Tick(140.0), ["open 3 A/probe", "wake 145"])])
    assert s.policy.pinned is None


def test_a_manual_switch_to_a_dead_stream_falls_back_down_the_list() -> None:
    s = Session([A, B, C], config=replace(SEQUENTIAL, outage_limit=10.0))
    _playing_a_sequential(s)
    s.transcript(
        [
            (ManualSwitch(5.0, None), ["close 1", "open 2 B/play", "wake 7"]),  # "next"
            (fail(2, R.HTTP_ERROR, 5.1, status=404), ["close 2", "open 3 A/play", "wake 7.1"]),
            (UpstreamOpened(3, 5.2), []),
            (data(3, 5.3), ["switch 3", "log info manual"]),
        ]
    )
    details = s.last_log("manual")
    assert (details["requested_stream_name"], details["to_stream_name"]) == ("B", "A")
    assert details["requested_stream"] == B.ref
    assert details["pinned"] is False
    assert s.policy.pinned is None


def test_a_manual_switch_needs_a_playing_stream() -> None:
    s = Session([A, B])
    s.transcript([(Start(0.0), ["open 1 A/play", "wake 8"])])
    with pytest.raises(FailoverProtocolError, match="not allowed in state connecting"):
        s.send(ManualSwitch(0.1, 1))


def _playing_a_sequential(s: Session) -> None:
    s.transcript(
        [
            (Start(0.0), ["open 1 A/play", "wake 8"]),
            (UpstreamOpened(1, 0.05), []),
            (data(1, 0.1), ["switch 1"]),
        ]
    )


# --- outage hold ---


def test_outage_hold_keeps_the_viewer_on_the_slate_and_cuts_back() -> None:
    s = Session([A, B], config=replace(SEQUENTIAL, outage_limit=10.0, outage_hold=15.0))
    _playing_a_sequential(s)
    s.transcript(
        [
            (fail(1, R.INVALID_CONTENT, 5.0), ["close 1", "open 2 B/play", "wake 7"]),
            # Nothing is left: hold on the slate, retry everything after 0.5 s.
            (fail(2, R.INVALID_CONTENT, 5.2), ["close 2", "hold", "log warning hold", "wake 5.7"]),
            (Tick(5.7), ["open 3 A/play", "wake 20.2"]),
            (fail(3, R.CONNECTION_ERROR, 5.8), ["close 3", "open 4 B/play"]),
            (fail(4, R.CONNECTION_ERROR, 5.9), ["close 4", "wake 6.9"]),  # backoff 1 s
            (Tick(6.9), ["open 5 A/play", "wake 20.2"]),
            (UpstreamOpened(5, 7.0), []),
            (data(5, 7.1), ["switch 5", "log warning failover"]),
        ]
    )
    details = s.last_log("failover")
    assert details["phase"] == "hold"
    assert details["gap_ms"] == 2100
    assert details["held_s"] == 1.9
    # The hold's own retries did not push A's breaker open.
    failures = {b.key: b.consecutive_failures for b in s.breakers.snapshot(7.1)}
    assert failures.get(A.xtream_channel_id, 0) == 0


def test_outage_hold_ends_with_the_exhausted_event_when_it_runs_out() -> None:
    s = Session([A], config=replace(SEQUENTIAL, outage_limit=10.0, outage_hold=3.0))
    _playing_a_sequential(s)
    s.transcript(
        [
            (fail(1, R.INVALID_CONTENT, 5.0), ["close 1", "hold", "log warning hold", "wake 5.5"]),
            (Tick(5.5), ["open 2 A/play", "wake 8"]),
            (Tick(8.0), ["close 2", "log error exhausted", "end exhausted"]),
        ]
    )
    details = s.last_log("exhausted")
    assert details["held_s"] == 3.0


def test_outage_hold_shows_the_slate_once_the_failover_budget_is_missed() -> None:
    s = Session([A, B], config=replace(SEQUENTIAL, outage_limit=10.0, outage_hold=15.0))
    _playing_a_sequential(s)
    s.transcript(
        [
            (fail(1, R.INVALID_CONTENT, 5.0), ["close 1", "open 2 B/play", "wake 7"]),
            # B hangs: at the 2 s budget the viewers get the slate, the round goes on.
            (Tick(7.0), ["hold", "log warning hold", "wake 22"]),
            (UpstreamOpened(2, 8.0), []),
            (data(2, 8.1), ["switch 2", "log warning failover", "wake 68.1"]),
        ]
    )
    details = s.last_log("failover")
    assert (details["phase"], details["held_s"], details["gap_ms"]) == ("failover", 1.1, 3100)

"""Hypothesis drives two failover sessions that share slots and breakers.

A small simulated driver turns random operations (start, headers, valid
data, invalid content (reported, as the reader does, as an
``invalid_content`` failure), failures with random reasons, clock jumps, wakeups, viewers
leaving, late reports about closed attempts) into legal events, carries out
the commands it gets back, and checks after every step that the policy

* opens the attempts of a failover round in strictly increasing priority
  (the failed stream itself may only come back as the round's last attempt),
* never holds more connections of an account than its limit, and keeps the
  shared slot count equal to the connections actually open,
* never has two upstreams open except while an upgrade probe runs,
* moves between states only along a row of the transition table
  (:data:`~streamforge.streaming.protocol.TRANSITIONS`),
* switches only to an open attempt that delivered valid TS, make-before-break
  exactly when that attempt was opened as a probe,
* closes a failed attempt in its answer to the failure,
* emits nothing after EndSession (and no open or switch in that batch),
* leaves no attempt open and no slot held once a session has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamforge.streaming.breaker import BreakerConfig, CircuitBreakers
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.policy import FailoverPolicy
from streamforge.streaming.protocol import (
    TRANSITIONS,
    ClientsGone,
    CloseUpstream,
    Command,
    EndSession,
    Event,
    ManualSwitch,
    OpenUpstream,
    PolicyConfig,
    Purpose,
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
)
from streamforge.streaming.reasons import FailureReason
from streamforge.streaming.slots import AccountSlots

TS = 188 * 7
LIMITS = {1: 1, 2: 2, 3: 1}
STREAMS = tuple(
    ProviderStream(
        mapping_id=index,
        xtream_channel_id=100 + index,
        stream_id=1000 + index,
        name=f"S{index}",
        account_id=account,
        account_name=f"acct{account}",
        priority=index,
        max_connections=LIMITS[account],
    )
    for index, account in enumerate((1, 2, 1, 3, 2))
)
ROWS = frozenset((row.state, row.event, row.next) for row in TRANSITIONS)
CONFIG = PolicyConfig(
    failover_budget=2.0,
    tune_budget=4.0,
    outage_limit=3.0,
    hedge_delay=0.3,
    recovery_period=10.0,
    probe_timeout=5.0,
    probe_min_bytes=2 * TS,
)


@dataclass
class _Open:
    index: int
    purpose: Purpose
    headers: bool = False
    valid: int = 0


@dataclass
class _Driver:
    """The test's stand-in for the asyncio driver of one session."""

    name: str
    policy: FailoverPolicy
    open: dict[int, _Open] = field(default_factory=dict)
    closed: list[int] = field(default_factory=list)
    playing: int | None = None
    ended: bool = False
    wakeup: float | None = None
    in_round: bool = False
    round_last: int = -1
    round_origin: int | None = None
    round_retried: bool = False
    round_opened: bool = False
    round_indices: set[int] = field(default_factory=set)
    round_accounts: set[int] = field(default_factory=set)
    round_free_first: bool = False

    def begin_round(self, origin: int | None, *, free_first: bool = False) -> None:
        """A failover round (or, ``free_first``, a swap or manual round: its
        chosen stream comes first, the others in priority order after it)."""
        self.in_round = True
        self.round_free_first = free_first
        self.round_origin = origin
        self.round_retried = False
        self.round_opened = False
        self.round_indices = set()
        self.round_accounts = {STREAMS[o.index].account_id for o in self.open.values()}
        probes = [o.index for o in self.open.values() if o.purpose is Purpose.PROBE]
        self.round_last = probes[0] if probes else -1


class World:
    def __init__(self, external_lease: bool) -> None:
        self.slots = AccountSlots()
        self.external = 0
        if external_lease:
            assert self.slots.try_acquire(3, LIMITS[3], holder="another channel") is not None
            self.external = 1
        self.breakers = CircuitBreakers(
            BreakerConfig(threshold=2, cooldown=5.0, max_cooldown=20.0, trial_lease=3.0)
        )
        self.now = 0.0
        self.drivers = [
            _Driver(
                name,
                FailoverPolicy(
                    STREAMS,
                    slots=self.slots,
                    breakers=self.breakers,
                    config=CONFIG,
                    channel=name,
                    holder=name,
                ),
            )
            for name in ("first", "second")
        ]

    # ------------------------------------------------------------ driving

    def step(self, who: int, kind: str, pick: int, reason: FailureReason, dt: float) -> None:
        driver = self.drivers[who]
        self.now += dt
        event = self._event(driver, kind, pick, reason)
        if event is None:
            return
        stale = self._is_stale(driver, event)
        was_ended = driver.ended
        target = getattr(event, "attempt_id", None)
        playing_fails = (
            target is not None and target == driver.playing and isinstance(event, UpstreamFailed)
        )
        if isinstance(event, UpstreamData) and not stale:
            driver.open[event.attempt_id].valid += event.nbytes
        if isinstance(event, UpstreamOpened) and not stale:
            driver.open[event.attempt_id].headers = True
        if isinstance(event, Start):
            driver.begin_round(None)
        elif playing_fails:
            assert target is not None
            driver.playing = None
            driver.begin_round(STREAMS.index(self._stream_of(driver, target)))
        before = driver.policy.state
        leaving = driver.playing
        commands = driver.policy.handle(event)
        if (
            isinstance(event, Tick | ManualSwitch)
            and leaving is not None
            and CloseUpstream(leaving) in commands
        ):
            # A swap upgrade or a manual switch left the playing stream for a round.
            driver.playing = None
            driver.begin_round(None, free_first=True)
            driver.round_last = -1
        assert (before, type(event), driver.policy.state) in ROWS, (
            f"{before} --{type(event).__name__}--> {driver.policy.state} is not in the table"
        )
        if was_ended or stale:
            assert commands == [], f"{driver.name}: commands after the end or for a closed attempt"
            return
        self._carry_out(driver, commands, isinstance(event, Start) or playing_fails)
        if isinstance(event, UpstreamFailed):
            assert target not in driver.open, "a failed attempt was not closed at once"
        self._check(driver)

    def _event(self, driver: _Driver, kind: str, pick: int, reason: FailureReason) -> Event | None:
        now = self.now
        state = driver.policy.state
        if kind == "start":
            return Start(now) if state is SessionState.IDLE else None
        if kind == "gone":
            return ClientsGone(now)
        if state is SessionState.IDLE:
            return None
        if kind == "tick":
            return Tick(now)
        if kind == "manual":
            if state not in (SessionState.PLAYING, SessionState.PROBING):
                return None
            return ManualSwitch(now, None if pick == 7 else pick % len(STREAMS))
        if kind == "unpin":
            return Unpin(now)
        if kind == "wake":
            # Budgets and probe timeouts are hit one time in eight; recovery
            # periods always, so that sessions get to probe and upgrade.
            patient = state is SessionState.PLAYING or pick == 0
            if driver.wakeup is not None and patient:
                self.now = max(self.now, driver.wakeup)
            return Tick(self.now)
        if kind == "stale":
            if not driver.closed:
                return None
            return UpstreamData(driver.closed[pick % len(driver.closed)], TS, now)
        if not driver.open:
            return None
        attempt_id = sorted(driver.open)[pick % len(driver.open)]
        attempt = driver.open[attempt_id]
        if kind in ("data", "junk") and not attempt.headers:
            return UpstreamOpened(attempt_id, now)
        if kind == "data":
            return UpstreamData(attempt_id, TS * (1 + pick % 3), now)
        if kind == "junk":
            # What the reader reports for bytes that are not MPEG-TS.
            return UpstreamFailed(attempt_id, FailureReason.INVALID_CONTENT, "not MPEG-TS", now)
        detail = "HTTP 403" if reason is FailureReason.HTTP_ERROR and pick % 2 else "failed"
        status = 403 if detail == "HTTP 403" else None
        return UpstreamFailed(attempt_id, reason, detail, now, status)

    def _is_stale(self, driver: _Driver, event: Event) -> bool:
        attempt_id = getattr(event, "attempt_id", None)
        return attempt_id is not None and attempt_id not in driver.open

    def _stream_of(self, driver: _Driver, attempt_id: int) -> ProviderStream:
        return STREAMS[driver.open[attempt_id].index]

    # ------------------------------------------------- carrying out + checks

    def _carry_out(self, driver: _Driver, commands: list[Command], starts_round: bool) -> None:
        kinds = {type(c) for c in commands}
        if EndSession in kinds:
            assert isinstance(commands[-1], EndSession), "EndSession must come last"
            assert not kinds & {OpenUpstream, SwitchTo}, "open/switch in the ending batch"
        for command in commands:
            match command:
                case OpenUpstream(attempt_id=aid, stream=stream, purpose=purpose):
                    assert aid not in driver.open
                    assert aid not in driver.closed
                    index = STREAMS.index(stream)
                    if purpose is Purpose.PLAY:
                        self._check_round_order(driver, index)
                    else:
                        assert not driver.in_round, "probe during a failover round"
                        assert driver.playing is not None
                        assert index < driver.open[driver.playing].index, "probe not better"
                    driver.open[aid] = _Open(index, purpose)
                case CloseUpstream(attempt_id=aid):
                    assert aid in driver.open, "close of an attempt that is not open"
                    del driver.open[aid]
                    driver.closed.append(aid)
                    if aid == driver.playing:
                        driver.playing = None
                    if driver.in_round and starts_round and not driver.round_opened:
                        # A probe closed while the round starts was not adopted:
                        # the round walks the streams from the top.
                        driver.round_last = -1
                case SwitchTo(attempt_id=aid, mode=mode):
                    assert aid in driver.open, "switch to an attempt that is not open"
                    assert driver.open[aid].valid > 0, "switch before valid TS"
                    # The winner is the first (so the best) attempt that delivered.
                    others = [o for k, o in driver.open.items() if k not in (aid, driver.playing)]
                    assert all(o.valid == 0 for o in others), "switched past a delivering attempt"
                    probe = driver.open[aid].purpose is Purpose.PROBE
                    assert (mode is SwitchMode.MAKE_BEFORE_BREAK) == probe, "wrong switch mode"
                    driver.playing = aid
                    driver.open[aid].purpose = Purpose.PLAY  # a probe switched to plays now
                    driver.in_round = False
                case EndSession():
                    driver.ended = True
                    driver.in_round = False
                case RequestWakeup(at=at):
                    assert at >= self.now
                    driver.wakeup = at
                case _:
                    pass

    def _check_round_order(self, driver: _Driver, index: int) -> None:
        assert driver.in_round, "play attempt outside a failover round"
        assert not driver.round_retried, "open after the round's last-resort retry"
        driver.round_opened = True
        account = STREAMS[index].account_id
        if driver.round_free_first:
            driver.round_free_first = False  # the chosen stream: anywhere in the order
        elif index == driver.round_origin and index <= driver.round_last:
            driver.round_retried = True
        elif index < driver.round_last:
            # Out of order only for a candidate that waited for this session's
            # own connection of its account to be released.
            assert index not in driver.round_indices, f"round opened S{index} twice"
            assert account in driver.round_accounts, (
                f"round opened S{index} after S{driver.round_last}"
            )
        else:
            assert index not in driver.round_indices, f"round opened S{index} twice"
            driver.round_last = index
        driver.round_indices.add(index)
        driver.round_accounts.add(account)

    def _check(self, driver: _Driver) -> None:
        assert set(driver.open) == set(driver.policy.open_attempts)
        purposes = [o.purpose for o in driver.open.values()]
        if driver.in_round:
            # A round's attempts in flight (a probe it adopted among them).
            assert len(purposes) <= CONFIG.hedge_max, "more attempts in flight than hedge_max"
            assert purposes.count(Purpose.PROBE) <= 1
        elif Purpose.PROBE in purposes:
            assert len(purposes) <= 2
            assert purposes.count(Purpose.PROBE) == 1
        else:
            assert len(purposes) <= 1, "two upstreams open outside a round without a probe"
        if driver.ended:
            assert not driver.open
            assert not [x for x in self.slots.leases() if x.holder == driver.name]
        for account, limit in LIMITS.items():
            opened = sum(
                1
                for d in self.drivers
                for o in d.open.values()
                if STREAMS[o.index].account_id == account
            )
            external = self.external if account == 3 else 0
            assert self.slots.in_use(account) == opened + external
            assert opened + external <= limit, f"account {account} over its limit"

    def finish(self) -> None:
        for who, driver in enumerate(self.drivers):
            if not driver.ended:
                self.step(who, "gone", 0, FailureReason.STALL, 0.0)
            assert driver.ended
            assert driver.policy.open_attempts == ()
        assert self.slots.snapshot() == ({3: 1} if self.external else {})


# Weighted by repetition: mostly data, so that sessions live long enough to
# fail over, probe and upgrade; viewers rarely leave. Clock steps are short;
# "wake" jumps straight to the deadline the policy asked for (budget, probe
# timeout, recovery period).
KINDS = (
    ["start"] * 2
    + ["data"] * 12
    + ["junk", "tick", "stale", "gone", "manual", "unpin"]
    + ["fail"] * 3
    + ["wake"] * 3
)
OPERATIONS = st.tuples(
    st.integers(0, 1),
    st.sampled_from(KINDS),
    st.integers(0, 7),
    st.sampled_from(list(FailureReason)),
    st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.3, 0.5, 1.0, 2.5]),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(external=st.booleans(), operations=st.lists(OPERATIONS, min_size=20, max_size=80))
def test_random_sessions_keep_every_invariant(
    external: bool, operations: list[tuple[int, str, int, FailureReason, float]]
) -> None:
    world = World(external)
    for who, kind, pick, reason, dt in operations:
        world.step(who, kind, pick, reason, dt)
    world.finish()

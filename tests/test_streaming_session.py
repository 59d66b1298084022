"""ChannelSession, the asyncio driver of the failover policy, without sockets.

The session runs its upstreams through a scripted fake (:class:`Upstreams`,
passed as ``run_upstream``) and reads time from a fake clock
(:class:`FakeClock`, passed as ``clock``) whose timers fire only when the test
advances it. Everything else is real: the policy, the slots and breakers, the
splicer, the fan-out buffer, the metrics and the event log on a real SQLite
file. The upstreams deliver synthetic MPEG-TS (tests/tsmedia.py) so that the
splicer really remaps, rebases and cuts at keyframes, and what the clients'
:class:`FanoutReader` receives is checked packet by packet.

Every test also checks the bookkeeping the policy promises the driver: every
``OpenUpstream`` is followed by exactly one ``CloseUpstream``, and once the
session has ended no upstream task is left running and no slot is held.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from streamforge.events import Event as LoggedEvent
from streamforge.runtime import Runtime
from streamforge.streaming.breaker import CircuitBreakers
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.fanout import FanoutReader
from streamforge.streaming.metrics import StreamMetrics
from streamforge.streaming.protocol import (
    CloseUpstream,
    Command,
    Event,
    OpenUpstream,
    PolicyConfig,
    Purpose,
    SessionState,
    SwitchMode,
    SwitchTo,
)
from streamforge.streaming.reasons import FailureReason, UpstreamFailure
from streamforge.streaming.session import ChannelRef, ChannelSession
from streamforge.streaming.slots import AccountSlots
from streamforge.ts.splicer import TsSplicer
from tests.streamharness import wait_until
from tests.tsmedia import SynthSpec, SynthStream, cc_errors, packets_of, synth_ts

CHUNK = 188 * 7
WAIT = 10.0  # a guard against hangs, never a pause

A_SPEC = SynthSpec()  # program 1, video 0x100, audio 0x101: the session's PIDs
B_SPEC = SynthSpec(
    program=9,
    pmt_pid=0x1200,
    streams=(SynthStream(0x300, 0x1B), SynthStream(0x301, 0x0F, "eng")),
    first_pts=5_000_000,
    first_frame=5,  # starts mid-GOP: its first keyframe is frame 12
    cc_start=7,
)
A_TS = synth_ts(A_SPEC)
B_TS = synth_ts(B_SPEC)
A_PIDS = {0x0000, A_SPEC.pmt_pid, 0x100, 0x101}
B_PIDS = {0x0000, B_SPEC.pmt_pid, 0x300, 0x301}


def provider_stream(name: str, index: int, account: int) -> ProviderStream:
    return ProviderStream(
        mapping_id=100 + index,
        xtream_channel_id=10 + index,
        stream_id=1000 + index,
        name=name,
        account_id=account,
        account_name=f"acct{account}",
        priority=index,
        is_primary=index == 0,
        max_connections=1,
    )


A = provider_stream("A", 0, account=1)
B = provider_stream("B", 1, account=2)


def chunks(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def video_frames(data: bytes, pid: int) -> list[int]:
    """The frame number each video PES carries (synth_ts ends each with it)."""
    frames: list[int] = []
    last: int | None = None
    for packet in packets_of(data):
        if packet.pid != pid or not packet.payload:
            continue
        if packet.pusi and last is not None:
            frames.append(last)
        last = packet.body[-1]
    if last is not None:
        frames.append(last)
    return frames


# ------------------------------------------------------------ the fakes


@dataclass(order=True)
class FakeTimer:
    when: float
    serial: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Monotonic time that moves only when the test says; timers fire as it passes them."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._timers: list[FakeTimer] = []
        self._serial = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, next(self._serial), callback)
        self._timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            due = sorted(t for t in self._timers if not t.cancelled and t.when <= target)
            if not due:
                break
            timer = due[0]
            self._timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback()
        self.now = target

    @property
    def pending(self) -> list[float]:
        return sorted(t.when for t in self._timers if not t.cancelled)


_OPEN = object()


class FakeUpstream:
    """One upstream the session opened; the test scripts what it does."""

    def __init__(self, stream: ProviderStream) -> None:
        self.stream = stream
        self.actions: asyncio.Queue[tuple[object, asyncio.Future[None]]] = asyncio.Queue()
        self.cancelled = False
        self.ended = False

    async def _do(self, action: object) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.actions.put_nowait((action, done))
        await asyncio.wait_for(done, WAIT)

    async def opened(self) -> None:
        """The provider answers with acceptable headers."""
        await self._do(_OPEN)

    async def send(self, data: bytes) -> None:
        """The provider delivers ``data``, one read after another."""
        for chunk in chunks(data):
            await self._do(chunk)

    async def fail(self, reason: FailureReason, detail: str) -> None:
        """The stream dies the way the reader reports it."""
        await self._do(UpstreamFailure(reason, detail))


class Upstreams:
    """The session's ``run_upstream``: one :class:`FakeUpstream` per attempt run."""

    def __init__(self) -> None:
        self.started: list[FakeUpstream] = []
        self._new: asyncio.Queue[FakeUpstream] = asyncio.Queue()

    async def run(
        self,
        stream: ProviderStream,
        on_open: Callable[[], None],
        on_data: Callable[[bytes], None],
    ) -> None:
        upstream = FakeUpstream(stream)
        self.started.append(upstream)
        self._new.put_nowait(upstream)
        try:
            while True:
                action, done = await upstream.actions.get()
                try:
                    if action is _OPEN:
                        on_open()
                    elif isinstance(action, bytes):
                        on_data(action)
                    elif isinstance(action, UpstreamFailure):
                        raise action
                finally:
                    done.set_result(None)
        except asyncio.CancelledError:
            upstream.cancelled = True
            raise
        finally:
            upstream.ended = True

    async def next(self) -> FakeUpstream:
        """The next upstream the session starts running."""
        return await asyncio.wait_for(self._new.get(), WAIT)


@dataclass
class Harness:
    session: ChannelSession
    clock: FakeClock
    upstreams: Upstreams
    slots: AccountSlots
    metrics: StreamMetrics
    logged: list[LoggedEvent]
    commands: list[Command]

    def state(self) -> SessionState:
        return self.session.policy.state

    def switches(self) -> list[tuple[int, SwitchMode]]:
        return [(c.attempt_id, c.mode) for c in self.commands if isinstance(c, SwitchTo)]

    def logged_kinds(self) -> list[str]:
        return [str(e.details["kind"]) for e in self.logged]

    def last_logged(self, kind: str) -> LoggedEvent:
        return [e for e in self.logged if e.details["kind"] == kind][-1]

    async def check_all_closed(self) -> None:
        """Every open was closed exactly once; no upstream task, no slot is left."""
        opened = Counter(c.attempt_id for c in self.commands if isinstance(c, OpenUpstream))
        closed = Counter(c.attempt_id for c in self.commands if isinstance(c, CloseUpstream))
        assert opened == closed
        assert set(closed.values()) == {1}
        await wait_until(lambda: all(u.ended for u in self.upstreams.started))
        prefix = f"session:{self.session.channel.guide_number}:"
        await wait_until(
            lambda: not [t for t in asyncio.all_tasks() if t.get_name().startswith(prefix)]
        )
        assert self.session.policy.open_attempts == ()
        assert self.slots.snapshot() == {}


@pytest.fixture
def harness(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Harness]:
    def build(
        streams: tuple[ProviderStream, ...] = (A, B), config: PolicyConfig | None = None
    ) -> Harness:
        clock = FakeClock()
        upstreams = Upstreams()
        slots = AccountSlots()
        metrics = StreamMetrics()
        logged: list[LoggedEvent] = []
        runtime.events.subscribe(logged.append)
        session = ChannelSession(
            ChannelRef(id=7, guide_number="101", name="BBC One"),
            streams,
            policy_config=config or PolicyConfig(recovery_period=30.0, probe_min_bytes=40 * 188),
            slots=slots,
            breakers=CircuitBreakers(),
            events=runtime.events,
            metrics=metrics,
            buffer_bytes=4 * 1024 * 1024,
            run_upstream=upstreams.run,
            clock=clock,
        )
        commands: list[Command] = []
        handle = session.policy.handle

        def recording(event: Event) -> list[Command]:
            out = handle(event)
            commands.extend(out)
            return out

        monkeypatch.setattr(session.policy, "handle", recording)
        return Harness(session, clock, upstreams, slots, metrics, logged, commands)

    return build


async def drain(session: ChannelSession, reader: FanoutReader) -> bytes:
    """Everything published to the client and not read yet (nothing was skipped)."""
    parts = []
    while reader.bytes_sent < session.fanout.published_bytes:
        chunk = await asyncio.wait_for(reader.next(), WAIT)
        assert chunk is not None
        parts.append(chunk)
    assert reader.skipped_chunks == 0
    return b"".join(parts)


async def read_to_end(reader: FanoutReader) -> bytes:
    parts = []
    while (chunk := await asyncio.wait_for(reader.next(), WAIT)) is not None:
        parts.append(chunk)
    return b"".join(parts)


def spliced(*pieces: tuple[str, bytes]) -> bytes:
    """What a lone TsSplicer makes of the same reads: ("push"|"switch", data)."""
    splicer = TsSplicer()
    out = []
    for how, data in pieces:
        if how == "switch":
            splicer.switch()
        for chunk in chunks(data):
            out.append(splicer.push(chunk))
    return b"".join(out)


# ---------------------------------------------------------------- tuning


async def test_tune_forwards_the_first_stream_through_the_splicer(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    reader = h.session.join()
    h.session.start()
    upstream = await h.upstreams.next()
    assert upstream.stream == A
    assert h.state() is SessionState.CONNECTING
    await upstream.opened()
    await upstream.send(A_TS)

    assert h.session.first_data.is_set()
    assert h.switches() == [(1, SwitchMode.BREAK_BEFORE_MAKE)]
    assert h.state() is SessionState.PLAYING
    assert h.session.status()["stream"] == "A"
    out = await drain(h.session, reader)
    assert out == spliced(("push", A_TS))
    assert video_frames(out, 0x100) == list(range(47))  # 47 is held back
    assert {p.pid for p in packets_of(out)} <= A_PIDS
    assert h.session.last_gap_ms is None  # nothing failed
    assert h.logged == []  # the primary playing is no event

    h.session.leave(reader)
    assert h.session.ended.is_set()
    await h.check_all_closed()
    assert upstream.cancelled


async def test_tune_budget_runs_out_on_the_clock(harness: Callable[..., Harness]) -> None:
    h = harness(streams=(A,))
    reader = h.session.join()
    h.session.start()
    upstream = await h.upstreams.next()
    await upstream.opened()
    assert h.clock.pending == [1008.0]  # the tune budget, 8 s
    h.clock.advance(7.5)
    assert not h.session.ended.is_set()
    h.clock.advance(0.5)
    assert h.session.ended.is_set()
    assert await read_to_end(reader) == b""
    exhausted = h.last_logged("exhausted")
    assert exhausted.level == "error"
    assert exhausted.details["budget_exceeded"] is True
    assert exhausted.channel_id == 7
    await h.check_all_closed()
    assert upstream.cancelled


# -------------------------------------------------------------- failover


async def test_failover_splices_the_backup_and_measures_the_gap(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    reader = h.session.join()
    h.session.start()
    primary = await h.upstreams.next()
    await primary.opened()
    await primary.send(A_TS)
    before = await drain(h.session, reader)

    h.clock.advance(5.0)
    await primary.fail(FailureReason.STALL, "no bytes for 3 s")
    assert h.state() is SessionState.CONNECTING
    backup = await h.upstreams.next()
    assert backup.stream == B
    h.clock.advance(0.25)
    await backup.opened()
    # B starts mid-GOP: its first read wins the round, but nothing can be
    # published before its first keyframe arrives 100 ms later.
    first, rest = B_TS[: 4 * CHUNK], B_TS[4 * CHUNK :]
    await backup.send(first)
    assert h.switches() == [(1, SwitchMode.BREAK_BEFORE_MAKE), (2, SwitchMode.BREAK_BEFORE_MAKE)]
    assert h.session.splicer.switching
    assert await drain(h.session, reader) == b""
    h.clock.advance(0.1)
    await backup.send(rest)
    after = await drain(h.session, reader)

    assert before + after == spliced(("push", A_TS), ("switch", B_TS))
    # A up to its last frame known whole (47 died unfinished, as far as anyone
    # can tell), then B from its first keyframe (its newest frame is held back
    # until the next one starts: one frame of latency).
    assert video_frames(before + after, 0x100) == list(range(47)) + list(range(12, 52))
    packets = packets_of(before + after)
    assert {p.pid for p in packets} <= A_PIDS
    assert cc_errors(packets) == []

    failover = h.last_logged("failover")
    assert failover.details["gap_ms"] == 250  # the policy's gap: failure to valid data
    assert (failover.details["from_stream_name"], failover.details["to_stream_name"]) == (
        "A",
        "B",
    )
    assert failover.details["reason"] == "stall"
    assert h.session.last_gap_ms == 350.0  # the clients' gap: failure to published bytes
    assert h.session.status()["last_gap_ms"] == 350.0
    gap_sum = h.metrics.registry.get_sample_value("streamforge_output_gap_seconds_sum")
    assert gap_sum == pytest.approx(0.35)
    assert h.session.status()["failovers"] == 1
    assert primary.ended  # it failed on its own:
    assert not primary.cancelled

    h.session.leave(reader)
    await h.check_all_closed()
    assert backup.cancelled


# --------------------------------------------------------------- upgrade


async def test_upgrade_probe_is_make_before_break(harness: Callable[..., Harness]) -> None:
    h = harness()
    reader = h.session.join()
    h.session.start()
    primary = await h.upstreams.next()
    await primary.fail(FailureReason.CONNECTION_ERROR, "refused")
    backup = await h.upstreams.next()
    await backup.opened()
    b_reads = chunks(B_TS)
    await backup.send(b"".join(b_reads[:20]))
    assert h.session.policy.playing == B
    assert h.clock.pending == [1030.0]  # the recovery period

    h.clock.advance(30.0)
    assert h.state() is SessionState.PROBING
    probe = await h.upstreams.next()
    assert probe.stream == A
    assert len(h.session.policy.open_attempts) == 2
    await probe.opened()
    # The probe delivers while the backup keeps playing to the clients.
    await probe.send(A_TS[: 2 * CHUNK])
    on_backup = await drain(h.session, reader)
    await backup.send(b"".join(b_reads[20:30]))
    during_probe = await drain(h.session, reader)
    assert during_probe, "the old stream must keep playing during the probe"
    on_backup += during_probe
    assert not backup.cancelled
    await probe.send(A_TS[2 * CHUNK : 6 * CHUNK])  # past probe_min_bytes: switch

    assert h.switches()[-1] == (3, SwitchMode.MAKE_BEFORE_BREAK)
    assert h.state() is SessionState.PLAYING
    assert h.session.policy.playing == A
    await wait_until(lambda: backup.ended)
    assert backup.cancelled
    await probe.send(A_TS[6 * CHUNK :])
    out = on_backup + await drain(h.session, reader)
    packets = packets_of(out)
    assert {p.pid for p in packets} <= B_PIDS  # B defined the session
    assert cc_errors(packets) == []
    # B from its first keyframe to its last whole frame (36 was cut unfinished
    # by the switch), then A from the keyframe it started with; A's newest
    # frame is held back until the next one starts.
    assert video_frames(out, 0x300) == list(range(12, 36)) + list(range(47))
    assert h.session.last_gap_ms == 0.0  # the candidate was ready: nothing to wait for
    upgrade = h.last_logged("upgrade")
    assert (upgrade.details["from_stream_name"], upgrade.details["to_stream_name"]) == (
        "B",
        "A",
    )
    assert h.session.status()["upgrades"] == 1
    opened = [c for c in h.commands if isinstance(c, OpenUpstream)]
    assert [o.purpose for o in opened] == [Purpose.PLAY, Purpose.PLAY, Purpose.PROBE]

    h.session.leave(reader)
    await h.check_all_closed()


# ----------------------------------------------------------------- ending


async def test_clients_gone_closes_every_upstream_at_once(harness: Callable[..., Harness]) -> None:
    h = harness()
    first, second = h.session.join(), h.session.join()
    h.session.start()
    primary = await h.upstreams.next()
    await primary.fail(FailureReason.HTTP_ERROR, "HTTP 404")
    backup = await h.upstreams.next()
    await backup.opened()
    await backup.send(B_TS[: 20 * CHUNK])
    h.clock.advance(30.0)
    probe = await h.upstreams.next()
    await probe.opened()
    await probe.send(A_TS[:CHUNK])
    assert h.slots.snapshot() == {1: 1, 2: 1}  # probe and backup

    h.session.leave(first)
    assert not h.session.ended.is_set(), "one client is still watching"
    h.session.leave(second)
    assert h.session.ended.is_set()
    assert h.state() is SessionState.ENDED
    assert h.clock.pending == []  # the probe timeout was cancelled with the session
    for reader in (first, second):
        out = await read_to_end(reader)
        assert video_frames(out, 0x300)[0] == 12
    await h.check_all_closed()
    assert backup.cancelled
    assert probe.cancelled
    assert h.session.status()["clients"] == 0

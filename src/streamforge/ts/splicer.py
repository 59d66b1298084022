"""The MPEG-TS splicer: one continuous program out of successive upstreams.

Theory of operation
-------------------
A channel session shows its clients *one* transport stream for its whole
life, while the bytes behind it may come from a primary provider stream, then
a backup after a failure, then the primary again.  :class:`TsSplicer` is a
pure bytes-in/bytes-out transformer that makes those upstreams look like a
single, unchanged program.

*Session.*  The first upstream defines the session: its program number, PMT
PID, elementary PIDs, stream types and PCR PID.  The splicer regenerates the
session's PAT (that one program only) and PMT (the first upstream's PMT,
byte-for-byte, same version) and emits them wherever an upstream PAT/PMT
packet appears; upstream PSI and every PID outside the program (SDT, EIT,
null packets, other programs) are dropped.  When the current upstream changes
its own PMT (new version, streams moved) or moves its PMT PID, the splicer
remaps it; the clients' PAT and PMT never change.

Known limit: a PES header must start and end within one packet (every muxer
seen in the wild does this); one split across packets keeps its timestamps
unrebased.

*Splice.*  A new upstream becomes a *candidate*.  The candidate path is a
Python loop over packets (it runs only while a switch is pending): it learns
the candidate's PAT and PMT, maps its elementary streams onto the session's by
codec (video onto video, audio by order preferring the same language; a
stream the session lacks is dropped, a session stream the backup lacks
pauses), then looks for a random-access point on the anchor stream (the
session's video, else its first mapped stream) using the adaptation field's
random_access_indicator or the NAL units of the PES (see
:class:`~streamforge.ts.pes.KeyframeProbe`).  Both waits are bounded
(``psi_wait_packets``, ``keyframe_wait_packets``); past the bound the splicer
raises :class:`SpliceError` so the driver can try the next backup.

At the cut, the candidate's packets from the keyframe onward are processed by
the steady-state path with a new route: a PID lookup table (upstream PID →
session PID), *gates* that hold each non-anchor stream back until its first
PES whose PTS is at or after the keyframe (so audio starts at the same point
in time) and after the last timestamp already output on that PID, and a
timestamp offset.  The offset moves the candidate onto the session's
timeline: ``offset = last output DTS + one frame - keyframe DTS`` (raised if
needed so the keyframe's PTS follows the latest output PTS and, within
``max_pcr_gap``, so the PCR does not step backwards), all modulo 2^33.  When
no rebase is possible (the keyframe PES has no PTS) or the PCR would have to
jump by more than ``max_pcr_gap``, the first PCR after the cut carries the
discontinuity_indicator instead.

*Steady state.*  Every packet takes :meth:`TsSplicer.push`, so that path is
vectorised with NumPy over an ``(n, 188)`` view: the PID column indexes the
lookup table, dropped rows are filtered out, PIDs are rewritten, and the
continuity counters are recomputed per output PID from cumulative counts of
payload-carrying packets (packets without payload repeat the previous
counter, as the standard requires).  Python touches only the few packets that
start a PES (timestamps are rebased and the timeline is tracked there), carry
a PCR, carry PSI, or belong to a stream still behind its gate.

*Driving it.*  ``push(data)`` feeds the current upstream.  Break-before-make
failover: call :meth:`TsSplicer.switch` and push the new upstream's bytes;
output resumes at the first keyframe.  Make-before-break (upgrading back to
the primary): call :meth:`TsSplicer.prepare`, keep pushing the old upstream
with ``push`` while feeding the new one with :meth:`TsSplicer.push_candidate`,
and when :attr:`TsSplicer.candidate_ready` is true call
:meth:`TsSplicer.commit`, which cuts over and returns the candidate's bytes
from its latest keyframe; afterwards ``push`` carries the new upstream.  The
candidate survives a ``switch()``; committing it also ends that switch.  While
a switch is pending, :meth:`TsSplicer.null_packets` produces keep-alive
padding for clients with short read timeouts.

*Clean ends.*  ``push`` holds the current upstream back from its anchor
stream's latest PES start until the next one arrives (at most one frame of
latency).  So when an upstream is cut, by a commit or by a switch after it
died mid-frame, its video ends on the last whole frame and the other streams
keep only the continuation of PES they had already started: the clients'
demuxers and decoders never see a truncated access unit.  After a switch that
tail is emitted just before the new upstream's first packets.

Public API::

    TsSplicer(*, psi_wait_packets=8000, keyframe_wait_packets=40000, max_pcr_gap=90000)
    push(data) -> bytes            # current upstream in, whole packets out
    switch() -> None               # break-before-make: next push() is a new upstream
    switching -> bool              # output waits for the new upstream's PSI/keyframe
    prepare() -> None              # make-before-break: start a candidate
    push_candidate(data) -> None   # feed the candidate (raises SpliceError on give-up)
    candidate_ready -> bool        # commit() may cut now
    commit() -> bytes              # cut over; candidate's bytes from its keyframe
    cancel() -> None               # drop the candidate
    null_packets(n) -> bytes       # keep-alive padding
    flush() -> bytes               # end of input: release the held-back packet
    stats -> SpliceStats           # packets in/out/dropped, resyncs, splices, give-ups
    session_pat / session_pmt      # what the clients see
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from streamforge.errors import MediaError
from streamforge.ts.packets import (
    PACKET_SIZE,
    PAT_PID,
    PID_COUNT,
    PacketAligner,
    packet_pid,
    payload_offset,
    pcr_packet,
    pcr_position,
    random_access,
    read_pcr,
    set_discontinuity,
    write_pcr,
)
from streamforge.ts.packets import null_packets as _null_packets
from streamforge.ts.pes import (
    PCR_MODULUS,
    PCR_PER_PTS,
    PTS_HZ,
    PTS_MODULUS,
    KeyframeProbe,
    pes_payload_start,
    read_timestamp,
    timestamp_positions,
    ts_diff,
    write_timestamp,
)
from streamforge.ts.psi import (
    Pat,
    Pmt,
    PmtStream,
    PsiError,
    SectionAssembler,
    build_pat,
    build_pmt,
    packetize_section,
    parse_pat,
    parse_pmt,
)

# Lookup-table actions (non-negative values are output PIDs).
_DROP: Final = -1
_PAT: Final = -2
_PMT: Final = -3
_GATE: Final = -4

_DEFAULT_VIDEO_FRAME: Final = PTS_HZ // 25
_DEFAULT_AUDIO_FRAME: Final = 1920
_MAX_FRAME: Final = PTS_HZ // 5
_WORDS: Final = PACKET_SIZE // 2
# A hold is released early when the anchor stream pauses: after this many
# packets of other streams (about a second of one audio track), or this many
# packets in all (a very large frame).
_HOLD_OTHERS: Final = 100
# Continuity counting packs one 15-bit running count per output PID, four to
# an int64 word (see TsSplicer._rewrite_cc).
_CC_FIELD_BITS: Final = 15
_CC_FIELD_MAX: Final = (1 << _CC_FIELD_BITS) - 1
_CC_FIELDS: Final = 4
_HOLD_LIMIT: Final = 8_000


class SpliceError(MediaError):
    """An upstream cannot be spliced in (no PAT/PMT or keyframe in time, no common stream)."""


@dataclass(slots=True)
class SpliceStats:
    """Counters of one splicer (packets are 188-byte TS packets)."""

    packets_in: int = 0
    packets_out: int = 0
    packets_dropped: int = 0
    null_packets: int = 0
    splices: int = 0
    give_ups: int = 0
    resyncs: int = 0
    bytes_skipped: int = 0


@dataclass(frozen=True, slots=True)
class _Session:
    """The program the clients see, fixed by the first upstream."""

    pat: Pat
    pmt: Pmt
    pmt_pid: int
    pat_packet: bytes
    pmt_packets: tuple[bytes, ...]
    anchor_pid: int

    @classmethod
    def learn(cls, pat: Pat, program_number: int, pmt_pid: int, pmt: Pmt) -> _Session:
        out_pat = Pat(pat.transport_stream_id, pat.version, ((program_number, pmt_pid),))
        video = [s.pid for s in pmt.streams if s.kind == "video"]
        anchor = video[0] if video else pmt.streams[0].pid
        return cls(
            pat=out_pat,
            pmt=pmt,
            pmt_pid=pmt_pid,
            pat_packet=bytes(packetize_section(build_pat(out_pat), PAT_PID)[0]),
            pmt_packets=tuple(bytes(p) for p in packetize_section(build_pmt(pmt), pmt_pid)),
            anchor_pid=anchor,
        )

    def kind(self, pid: int) -> str:
        stream = self.pmt.stream(pid)
        return stream.kind if stream is not None else "data"


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one upstream program maps onto the session."""

    program_number: int
    pmt_pid: int
    pmt: Pmt
    es_map: dict[int, int]
    anchor_up: int
    anchor_codec: str
    anchor_video: bool
    pcr_passthrough: bool
    synth_pcr_up: int | None


def map_streams(session: Pmt, upstream: Pmt) -> dict[int, int]:
    """Map upstream elementary PIDs onto session PIDs (upstream PID → session PID).

    Each session stream, in PMT order, takes the first unused upstream stream
    of the same codec, preferring one with the same language.  Upstream streams
    left over are not mapped (the splicer drops them).
    """
    used: set[int] = set()
    mapping: dict[int, int] = {}
    for s in session.streams:
        candidates = [u for u in upstream.streams if u.pid not in used and u.codec == s.codec]
        if not candidates:
            continue
        pick = candidates[0]
        language = s.language
        if language is not None:
            pick = next((u for u in candidates if u.language == language), pick)
        mapping[pick.pid] = s.pid
        used.add(pick.pid)
    return mapping


def _make_plan(session: _Session, program_number: int, pmt_pid: int, pmt: Pmt) -> _Plan:
    es_map = map_streams(session.pmt, pmt)
    if not es_map:
        raise SpliceError("the new stream shares no elementary stream with the session")
    by_session = {out: up for up, out in es_map.items()}
    anchor_up = by_session.get(session.anchor_pid)
    if anchor_up is None:
        anchor_up = next(by_session[s.pid] for s in session.pmt.streams if s.pid in by_session)
    anchor: PmtStream | None = pmt.stream(anchor_up)
    codec = anchor.codec if anchor is not None else ""
    session_pcr = session.pmt.pcr_pid
    session_pcr_is_es = session.pmt.stream(session_pcr) is not None
    up_pcr_is_es = pmt.stream(pmt.pcr_pid) is not None
    passthrough = False
    synth: int | None = None
    if es_map.get(pmt.pcr_pid) != session_pcr:
        if not session_pcr_is_es and not up_pcr_is_es:
            passthrough = True
        elif pmt.pcr_pid != 0x1FFF:
            synth = pmt.pcr_pid
    return _Plan(
        program_number=program_number,
        pmt_pid=pmt_pid,
        pmt=pmt,
        es_map=es_map,
        anchor_up=anchor_up,
        anchor_codec=codec,
        anchor_video=anchor is not None and anchor.kind == "video",
        pcr_passthrough=passthrough,
        synth_pcr_up=synth,
    )


@dataclass(slots=True)
class _Cut:
    """Where a candidate's output starts: the anchor PES with its timestamps."""

    pts: int | None
    dts: int | None
    pcr: int | None


class _Candidate:
    """A new upstream being probed for PSI and a keyframe (per-packet Python)."""

    def __init__(
        self, session: _Session | None, *, auto: bool, psi_wait: int, key_wait: int
    ) -> None:
        self.session = session
        self.auto = auto
        self.aligner = PacketAligner()
        self._psi_wait = psi_wait
        self._key_wait = key_wait
        self.pat_asm = SectionAssembler()
        self.pmt_asm = SectionAssembler()
        self.pat: Pat | None = None
        self.pmt_pid: int | None = None
        self.plan: _Plan | None = None
        self.seen = 0
        self._seen_at_plan = 0
        self._pre = bytearray()
        self.buffer = bytearray()
        self.cut: _Cut | None = None
        self._probe: KeyframeProbe | None = None
        self._probe_buf = bytearray()
        self._probe_cut: _Cut | None = None
        self._last_pcr: int | None = None

    @property
    def ready(self) -> bool:
        return self.cut is not None

    def absorb(self, buf: bytearray) -> None:
        """Take aligned packets; raise :class:`SpliceError` when a wait bound is exceeded."""
        for pos in range(0, len(buf), PACKET_SIZE):
            self.seen += 1
            if buf[pos + 1] & 0x80:
                continue
            if self.plan is None:
                self._learn(buf, pos)
                if self.plan is None:
                    self._pre += buf[pos : pos + PACKET_SIZE]
                    if self.seen > self._psi_wait:
                        raise SpliceError(
                            f"no usable PAT/PMT within {self._psi_wait} packets of the new stream"
                        )
                    continue
                pre, self._pre = self._pre, bytearray()
                for p in range(0, len(pre), PACKET_SIZE):
                    self._scan(pre, p)
            if self.auto and self.cut is not None:
                self.buffer += buf[pos:]
                self.seen += (len(buf) - pos) // PACKET_SIZE - 1
                return
            self._scan(buf, pos)
            if self.cut is None and self.seen - self._seen_at_plan > self._key_wait:
                raise SpliceError(f"no keyframe within {self._key_wait} packets of the new stream")
            if len(self.buffer) > self._key_wait * PACKET_SIZE:
                self.cut = None
                self.buffer = bytearray()

    def rebind(self, session: _Session | None) -> None:
        """Map this candidate onto ``session`` (defined meanwhile by another upstream)."""
        self.session = session
        plan = self.plan
        if plan is not None and session is not None:
            self.plan = _make_plan(session, plan.program_number, plan.pmt_pid, plan.pmt)
            self.cut = None
            self.buffer = bytearray()

    def _learn(self, buf: bytearray, pos: int) -> None:
        pid = packet_pid(buf, pos)
        if pid == PAT_PID:
            for section in self.pat_asm.feed(buf, pos):
                try:
                    self.pat = parse_pat(section)
                except PsiError:
                    continue
                first = self.pat.first_program()
                if first is not None and first[1] != self.pmt_pid:
                    self.pmt_pid = first[1]
                    self.pmt_asm = SectionAssembler()
        elif self.pmt_pid is not None and pid == self.pmt_pid and self.pat is not None:
            for section in self.pmt_asm.feed(buf, pos):
                try:
                    pmt = parse_pmt(section)
                except PsiError:
                    continue
                if not pmt.streams:
                    continue
                if self.session is None:
                    self.session = _Session.learn(self.pat, pmt.program_number, pid, pmt)
                self.plan = _make_plan(self.session, pmt.program_number, pid, pmt)
                self._seen_at_plan = self.seen
                return

    def _scan(self, buf: bytearray, pos: int) -> None:
        plan = self.plan
        if plan is None:
            return
        packet = buf[pos : pos + PACKET_SIZE]
        pid = packet_pid(buf, pos)
        if pid == plan.pmt.pcr_pid:
            at = pcr_position(buf, pos)
            if at >= 0:
                self._last_pcr = read_pcr(buf, at)
        if pid == plan.anchor_up and buf[pos + 1] & 0x40:
            self._start_probe(buf, pos)
        elif pid == plan.anchor_up and self._probe is not None:
            start = pos + payload_offset(buf, pos)
            self._probe.feed(buf[start : pos + PACKET_SIZE])
        if self.cut is not None:
            self.buffer += packet
        if self._probe is not None:
            self._probe_buf += packet
            verdict = self._probe.verdict
            if verdict is not None:
                if verdict:
                    self.cut = self._probe_cut
                    self.buffer = self._probe_buf
                self._probe = None
                self._probe_buf = bytearray()

    def _start_probe(self, buf: bytearray, pos: int) -> None:
        plan = self.plan
        if plan is None:  # pragma: no cover - guarded by the caller
            return
        end = pos + PACKET_SIZE
        start = pos + payload_offset(buf, pos)
        pts_at, dts_at = timestamp_positions(buf, start, end)
        pts = read_timestamp(buf, pts_at) if pts_at >= 0 else None
        dts = read_timestamp(buf, dts_at) if dts_at >= 0 else None
        here = pcr_position(buf, pos) if packet_pid(buf, pos) == plan.pmt.pcr_pid else -1
        pcr = read_pcr(buf, here) if here >= 0 else self._last_pcr
        self._probe_cut = _Cut(pts=pts, dts=dts, pcr=pcr)
        self._probe_buf = bytearray()
        if plan.anchor_video:
            probe = KeyframeProbe(plan.anchor_codec, random_access=random_access(buf, pos))
            probe.feed(buf[pes_payload_start(buf, start, end) : end])
        else:
            probe = KeyframeProbe("", random_access=True)
        self._probe = probe


@dataclass(slots=True)
class _Gate:
    out_pid: int
    cut_pts: int | None


@dataclass(slots=True)
class _Route:
    """The steady-state mapping of the current upstream."""

    plan: _Plan
    lut: npt.NDArray[np.int32]
    identity: bool
    offset: int
    gates: dict[int, _Gate]
    started: set[int] = field(default_factory=set)
    discontinuity_pending: bool = False
    pat_asm: SectionAssembler = field(default_factory=SectionAssembler)
    pmt_asm: SectionAssembler = field(default_factory=SectionAssembler)
    pmt_section: bytes = b""


class TsSplicer:
    """Splices successive MPEG-TS upstreams into one continuous program.

    See the module docstring for the theory of operation.  Not thread-safe;
    one instance per channel session, driven from one task.

    ``psi_wait_packets``: packets of a new upstream to read for its PAT/PMT
    before giving up; ``keyframe_wait_packets``: packets after the PMT to wait
    for a keyframe (make it cover the longest GOP expected; 40 000 packets is
    about 10 s at 6 Mbit/s); ``max_pcr_gap``: the largest forward step, in
    90 kHz ticks, the timeline may take at a cut to keep the PCR from going
    backwards, beyond which the discontinuity_indicator is used instead.
    """

    def __init__(
        self,
        *,
        psi_wait_packets: int = 8_000,
        keyframe_wait_packets: int = 40_000,
        max_pcr_gap: int = PTS_HZ,
    ) -> None:
        self._psi_wait = psi_wait_packets
        self._key_wait = keyframe_wait_packets
        self._max_pcr_gap = max_pcr_gap
        self._session: _Session | None = None
        self._route: _Route | None = None
        self._aligner = PacketAligner()
        # The upstream that push() feeds while a switch waits for it (auto cut) ...
        self._pending: _Candidate | None = self._new_candidate(auto=True)
        # ... and the make-before-break candidate that push_candidate() feeds.
        self._probe: _Candidate | None = None
        # The current upstream's packets from its last anchor PES start on are
        # held back until the next one, so any cut falls on a frame boundary
        # (see _hold_back); the old upstream's finished tail waits in _tail
        # for the cut that follows a switch().
        self._held = bytearray()
        self._tail = b""
        # Continuity counters: one column per session output PID (see _rewrite_cc).
        self._column = np.zeros(PID_COUNT, dtype=np.intp)
        self._word = np.zeros(0, dtype=np.intp)
        self._shift = np.zeros(0, dtype=np.int64)
        self._words = 0
        self._cc = np.zeros(0, dtype=np.int64)
        self._last_dts: dict[int, int] = {}
        self._max_pts: dict[int, int] = {}
        self._frame: dict[int, int] = {}
        self._last_pcr: int | None = None
        self._stats = SpliceStats()
        self._retired_resyncs = 0
        self._retired_skipped = 0

    # ------------------------------------------------------------ public API

    @property
    def stats(self) -> SpliceStats:
        """A snapshot of the counters."""
        s = replace(self._stats)
        aligners = [self._aligner]
        aligners += [c.aligner for c in (self._pending, self._probe) if c is not None]
        s.resyncs = self._retired_resyncs + sum(a.resyncs for a in aligners)
        s.bytes_skipped = self._retired_skipped + sum(a.bytes_skipped for a in aligners)
        return s

    @property
    def switching(self) -> bool:
        """True while output waits for a new upstream's PSI and keyframe."""
        return self._pending is not None

    @property
    def candidate_ready(self) -> bool:
        """A make-before-break candidate has PSI and a keyframe; :meth:`commit` may cut."""
        return self._probe is not None and self._probe.ready

    @property
    def session_pat(self) -> Pat | None:
        """The PAT the clients see (None until the first upstream is learned)."""
        return self._session.pat if self._session else None

    @property
    def session_pmt(self) -> Pmt | None:
        """The PMT the clients see (None until the first upstream is learned)."""
        return self._session.pmt if self._session else None

    def push(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed bytes of the current upstream; return whole packets for the clients."""
        if self._pending is not None:
            return self._feed_pending(self._pending, data)
        packets = self._aligner.feed(data)
        self._stats.packets_in += len(packets) // PACKET_SIZE
        packets = self._hold_back(packets)
        return self._process(packets) if packets else b""

    def switch(self) -> None:
        """The current upstream is gone; following :meth:`push` calls carry a new one.

        A make-before-break candidate, if any, is unaffected and may still be
        committed (which then also ends this switch).
        """
        self._retire(self._aligner)
        self._aligner = PacketAligner()
        self._tail += self._finish_held()
        if self._pending is not None:
            self._stats.packets_dropped += self._pending.seen
            self._retire(self._pending.aligner)
        self._pending = self._new_candidate(auto=True)

    def prepare(self) -> None:
        """Start a make-before-break candidate fed through :meth:`push_candidate`.

        An earlier candidate is abandoned.
        """
        self.cancel()
        self._probe = self._new_candidate(auto=False)

    def push_candidate(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the candidate's bytes (raises :class:`SpliceError` and drops it on give-up)."""
        probe = self._probe
        if probe is None:
            raise RuntimeError("no make-before-break candidate; call prepare() first")
        packets = probe.aligner.feed(data)
        self._stats.packets_in += len(packets) // PACKET_SIZE
        try:
            probe.absorb(packets)
        except SpliceError:
            self._give_up(probe)
            self._probe = None
            raise

    def commit(self) -> bytes:
        """Cut over to the ready candidate.

        Returns the end of the old upstream (the rest of its last whole frame's
        companions, see :meth:`_finish_held`), the session's PAT and PMT, then
        the candidate's bytes from its keyframe on.  Afterwards :meth:`push`
        carries the candidate's upstream; a pending :meth:`switch` is abandoned.
        """
        probe = self._probe
        if probe is None or not probe.ready:
            raise RuntimeError("no ready candidate to commit")
        self._probe = None
        if self._pending is not None:
            self._stats.packets_dropped += self._pending.seen
            self._retire(self._pending.aligner)
            self._pending = None
        old_tail = self._tail + self._finish_held()
        self._tail = b""
        return old_tail + self._cut(probe)

    def cancel(self) -> None:
        """Abandon the make-before-break candidate, if any."""
        probe = self._probe
        if probe is not None:
            self._stats.packets_dropped += probe.seen
            self._retire(probe.aligner)
            self._probe = None

    def null_packets(self, count: int) -> bytes:
        """Spec-correct null packets to keep clients reading while a switch is pending."""
        self._stats.null_packets += count
        return _null_packets(count)

    def flush(self) -> bytes:
        """The input ended cleanly (end of a file): release everything held back.

        That is the last packet awaiting sync verification and the last
        frame awaiting the next PES start.  For an upstream that died
        mid-frame call :meth:`switch` instead, which ends it on a whole frame.
        """
        pending = self._pending
        if pending is not None:
            out = self._feed_pending(pending, b"", final=True)
            if self._pending is not pending:
                return out + self.flush()  # it cut over: release its held frame too
            # The input ended before the new upstream reached a keyframe.
            self._stats.packets_dropped += pending.seen
            self._pending = self._new_candidate(auto=True)
            tail, self._tail = self._tail, b""
            return tail
        last = self._aligner.flush()
        self._stats.packets_in += len(last) // PACKET_SIZE
        packets, self._held = self._held + last, bytearray()
        return self._process(packets) if packets else b""

    # --------------------------------------------------------------- switching

    def _hold_back(self, packets: bytearray) -> bytearray:
        """Release the current upstream's packets up to its latest anchor PES start.

        The packets from the anchor stream's latest PES start on wait in
        ``_held`` until a later PES start shows that frame is complete, which
        costs at most one frame of latency.  Should the upstream be cut there
        (a commit, or a switch after a failure), the clients never see half a
        frame: see :meth:`_finish_held`.  If the anchor stream falls silent the
        hold is released after ``_HOLD_OTHERS`` packets of other streams (or
        ``_HOLD_LIMIT`` packets in all), so the other streams keep flowing.
        """
        route = self._route
        if self._held:
            packets = self._held + packets
            self._held = bytearray()
        if route is None or not packets:
            return packets
        last, others = _anchor_scan(packets, route.plan.anchor_up)
        split = max(last, 0) * PACKET_SIZE
        if others > _HOLD_OTHERS or len(packets) - split > _HOLD_LIMIT * PACKET_SIZE:
            return packets  # the anchor stream paused: let the others flow
        if split == 0:
            self._held = packets
            return bytearray()
        self._held = packets[split:]
        del packets[split:]
        return packets

    def _finish_held(self) -> bytes:
        """End the current upstream cleanly from its held-back packets.

        The anchor stream stops before its held (possibly partial) PES; every
        other stream keeps the continuation packets of a PES it had already
        started (so audio frames are not cut short) and stops at its next PES
        start.  Returns the output bytes of that tail.
        """
        held, self._held = self._held, bytearray()
        route = self._route
        if not held or route is None:
            return b""
        closed = {route.plan.anchor_up, PAT_PID, route.plan.pmt_pid}
        tail = bytearray()
        for pos in range(0, len(held), PACKET_SIZE):
            pid = packet_pid(held, pos)
            if pid in closed:
                continue
            if held[pos + 1] & 0x40:
                closed.add(pid)
                continue
            tail += held[pos : pos + PACKET_SIZE]
        self._stats.packets_dropped += (len(held) - len(tail)) // PACKET_SIZE
        return self._process(tail) if tail else b""

    def _new_candidate(self, *, auto: bool) -> _Candidate:
        return _Candidate(
            self._session, auto=auto, psi_wait=self._psi_wait, key_wait=self._key_wait
        )

    def _retire(self, aligner: PacketAligner) -> None:
        self._retired_resyncs += aligner.resyncs
        self._retired_skipped += aligner.bytes_skipped

    def _give_up(self, cand: _Candidate) -> None:
        self._stats.give_ups += 1
        self._stats.packets_dropped += cand.seen
        self._retire(cand.aligner)

    def _feed_pending(
        self, cand: _Candidate, data: bytes | bytearray | memoryview, *, final: bool = False
    ) -> bytes:
        packets = cand.aligner.flush() if final else cand.aligner.feed(data)
        self._stats.packets_in += len(packets) // PACKET_SIZE
        try:
            cand.absorb(packets)
        except SpliceError:
            self._give_up(cand)
            self._pending = self._new_candidate(auto=True)
            raise
        if not cand.ready:
            return b""
        self._pending = None
        out = self._tail + self._cut(cand)
        self._tail = b""
        probe = self._probe
        if probe is not None and probe.session is not self._session:
            # The probe started before the session existed: map it onto the session.
            try:
                probe.rebind(self._session)
            except SpliceError:
                self._give_up(probe)
                self._probe = None
        return out

    def _cut(self, cand: _Candidate) -> bytes:
        plan, cut = cand.plan, cand.cut
        if plan is None or cut is None or cand.session is None:  # pragma: no cover
            raise RuntimeError("candidate is not ready")
        first = self._session is None
        self._session = session = cand.session
        if first:
            self._start_counters(session)
        offset, discontinuity = self._offset_for(plan, cut)
        lut = np.full(PID_COUNT, _DROP, dtype=np.int32)
        gates: dict[int, _Gate] = {}
        for up, out in plan.es_map.items():
            if up == plan.anchor_up:
                lut[up] = out
            else:
                lut[up] = _GATE
                gates[up] = _Gate(out_pid=out, cut_pts=cut.pts)
        if plan.pcr_passthrough:
            lut[plan.pmt.pcr_pid] = session.pmt.pcr_pid
        lut[PAT_PID] = _PAT
        lut[plan.pmt_pid] = _PMT
        identity = all(up == out for up, out in plan.es_map.items())
        if plan.pcr_passthrough and plan.pmt.pcr_pid != session.pmt.pcr_pid:
            identity = False
        self._route = _Route(
            plan=plan,
            lut=lut,
            identity=identity,
            offset=offset,
            gates=gates,
            started={plan.anchor_up},
            discontinuity_pending=discontinuity,
            pat_asm=cand.pat_asm,
            pmt_asm=cand.pmt_asm,
            pmt_section=build_pmt(plan.pmt),
        )
        self._retire(self._aligner)
        self._aligner = cand.aligner
        if not first:
            self._stats.splices += 1
        kept = len(cand.buffer) // PACKET_SIZE
        self._stats.packets_dropped += max(0, cand.seen - kept)
        tables = [(session.pat_packet, PAT_PID)]
        tables += [(p, session.pmt_pid) for p in session.pmt_packets]
        return self._process(self._hold_back(cand.buffer), prefix=tables)

    def _start_counters(self, session: _Session) -> None:
        pids = {PAT_PID, session.pmt_pid, session.pmt.pcr_pid}
        pids.update(s.pid for s in session.pmt.streams)
        ordered = sorted(pids)
        columns = np.arange(len(ordered), dtype=np.intp)
        self._column[ordered] = columns
        self._word = columns // _CC_FIELDS
        self._shift = (columns % _CC_FIELDS).astype(np.int64) * _CC_FIELD_BITS
        self._words = int(self._word[-1]) + 1
        self._cc = np.full(len(ordered), 15, dtype=np.int64)

    def _offset_for(self, plan: _Plan, cut: _Cut) -> tuple[int, bool]:
        """Timestamp offset for the new route, and whether to flag a PCR discontinuity."""
        if not self._last_dts:
            return 0, False
        key = cut.dts if cut.dts is not None else cut.pts
        if key is None or cut.pts is None:
            return 0, True
        out = plan.es_map[plan.anchor_up]
        head = self._last_dts.get(out)
        if head is None:
            head = self._latest(self._last_dts.values())
        frame = self._frame.get(out, self._default_frame(out))
        offset = (head + frame - key) % PTS_MODULUS
        max_pts = self._max_pts.get(out)
        if max_pts is not None:
            by_pts = (max_pts + frame - cut.pts) % PTS_MODULUS
            if ts_diff(by_pts, offset) > 0:
                offset = by_pts
        if self._last_pcr is not None and cut.pcr is not None:
            need = ts_diff(self._last_pcr + 1, cut.pcr, PCR_MODULUS)
            by_pcr = (-(-need // PCR_PER_PTS)) % PTS_MODULUS
            gap = ts_diff(by_pcr, offset)
            if gap > 0:
                if gap <= self._max_pcr_gap:
                    offset = by_pcr
                else:
                    return offset, True
        return offset, False

    def _default_frame(self, pid: int) -> int:
        session = self._session
        if session is not None and session.kind(pid) == "video":
            return _DEFAULT_VIDEO_FRAME
        return _DEFAULT_AUDIO_FRAME

    @staticmethod
    def _latest(values: Iterable[int]) -> int:
        items = list(values)
        best = items[0]
        for v in items[1:]:
            if ts_diff(v, best) > 0:
                best = v
        return best

    # ------------------------------------------------------------ steady state

    def _process(self, buf: bytearray, *, prefix: list[tuple[bytes, int]] | None = None) -> bytes:
        """Map one batch of aligned packets of the current route to output bytes."""
        route, session = self._route, self._session
        n = len(buf) // PACKET_SIZE
        if route is None or session is None:  # pragma: no cover - routes exist after a cut
            return b""
        if n == 0:
            return self._emit_only(prefix or [])
        pk = np.frombuffer(buf, dtype=np.uint8).reshape(n, PACKET_SIZE)
        # Bytes 1-2 of every packet as one big-endian word: TEI, PUSI, priority, PID.
        head = np.frombuffer(buf, dtype=">u2", count=(len(buf) - 1) // 2, offset=1)[::_WORDS]
        pid = head & 0x1FFF
        act = route.lut[pid]
        if int(head.max(initial=0)) & 0x8000:
            act[head >= 0x8000] = _DROP
        inserts: list[tuple[int, bytes, int]] = [(0, p, o) for p, o in prefix or ()]
        special = np.flatnonzero(act < _DROP).tolist()
        psi: set[int] = set()
        if special:
            psi = {i for i in special if act[i] in (_PAT, _PMT)}
            self._special_rows(route, session, buf, pk, pid, act, special, inserts)
        keep = act >= 0
        kept = int(np.count_nonzero(keep))
        self._stats.packets_dropped += n - kept
        for i in np.flatnonzero(head & 0x4000).tolist():
            out_pid = int(act[i])
            if out_pid >= 0 and i not in psi:
                self._pes_row(route, buf, i * PACKET_SIZE, out_pid)
        synth = route.plan.synth_pcr_up
        pcr_pid = session.pmt.pcr_pid
        for i in np.flatnonzero(pk[:, 3] & 0x20).tolist():
            pos = i * PACKET_SIZE
            if buf[pos + 4] < 7 or not buf[pos + 5] & 0x10 or i in psi:
                continue
            if synth is not None and int(pid[i]) == synth:
                self._synth_pcr(route, buf, pos, i, pcr_pid, inserts)
            out_pid = int(act[i])
            if out_pid >= 0:
                self._pcr_row(route, buf, pos, out_pid == pcr_pid)
        if inserts:
            inserts.sort(key=lambda t: t[0])
            idx = [t[0] for t in inserts]
            rows = np.frombuffer(b"".join(t[1] for t in inserts), dtype=np.uint8)
            pk = np.insert(pk, idx, rows.reshape(-1, PACKET_SIZE), axis=0)
            act = np.insert(act, idx, [t[2] for t in inserts])
            keep = act >= 0
            kept = int(np.count_nonzero(keep))
        if kept == len(act):
            out, opid = pk, act
        else:
            out, opid = pk[keep], act[keep]
        if kept == 0:
            return b""
        if not route.identity:
            out[:, 1] = (out[:, 1] & 0xE0) | (opid >> 8).astype(np.uint8)
            out[:, 2] = opid.astype(np.uint8)
        self._rewrite_cc(out, opid)
        self._stats.packets_out += kept
        return out.tobytes()

    def _emit_only(self, packets: list[tuple[bytes, int]]) -> bytes:
        """Output packets the splicer made itself (tables at a cut) with their counters."""
        if not packets:
            return b""
        rows = np.frombuffer(b"".join(p for p, _ in packets), dtype=np.uint8)
        out = rows.reshape(-1, PACKET_SIZE).copy()
        self._rewrite_cc(out, np.array([pid for _, pid in packets], dtype=np.int32))
        self._stats.packets_out += len(out)
        return out.tobytes()

    def _rewrite_cc(self, out: npt.NDArray[np.uint8], opid: npt.NDArray[np.int32]) -> None:
        """Give every output PID a continuous counter (payload packets count, others repeat).

        Output PIDs are few (the session's), so each gets a 15-bit field of a
        64-bit word (four per word).  One running sum over the packets, each
        contributing 1 in its PID's field when it carries payload, gives every
        packet the number of payload packets of its PID up to and including
        it; the counter is the PID's previous counter plus that, modulo 16.
        """
        rows = len(opid)
        if rows > _CC_FIELD_MAX:
            for start in range(0, rows, _CC_FIELD_MAX):
                end = start + _CC_FIELD_MAX
                self._rewrite_cc(out[start:end], opid[start:end])
            return
        col = self._column[opid]
        shift = self._shift[col]
        flags = out[:, 3]
        bits = ((flags & 0x10) >> 4).astype(np.int64) << shift
        if self._words == 1:
            running = np.cumsum(bits)
            within = (running >> shift) & _CC_FIELD_MAX
            totals = (running[-1] >> self._shift) & _CC_FIELD_MAX
        else:
            word = self._word[col]
            within = np.zeros(rows, dtype=np.int64)
            totals = np.zeros(len(self._cc), dtype=np.int64)
            for w in range(self._words):
                mine = word == w
                running = np.cumsum(np.where(mine, bits, 0))
                within = np.where(mine, (running >> shift) & _CC_FIELD_MAX, within)
                ours = (running[-1] >> self._shift) & _CC_FIELD_MAX
                totals = np.where(self._word == w, ours, totals)
        cc = (self._cc[col] + within) & 0x0F
        out[:, 3] = (flags & 0xF0) | cc.astype(np.uint8)
        self._cc = (self._cc + totals) & 0x0F

    def _special_rows(
        self,
        route: _Route,
        session: _Session,
        buf: bytearray,
        pk: npt.NDArray[np.uint8],
        pid: npt.NDArray[np.integer[Any]],
        act: npt.NDArray[np.int32],
        rows: list[int],
        inserts: list[tuple[int, bytes, int]],
    ) -> None:
        """PSI packets are replaced by the session's tables; gated streams wait for their start."""
        for i in rows:
            pos = i * PACKET_SIZE
            kind = int(act[i])
            up = int(pid[i])
            pusi = bool(buf[pos + 1] & 0x40)
            if kind == _PAT:
                self._watch_pat(route, buf, pos)
                if pusi:
                    pk[i] = np.frombuffer(session.pat_packet, dtype=np.uint8)
                    act[i] = PAT_PID
                else:
                    act[i] = _DROP
            elif kind == _PMT:
                self._watch_pmt(route, session, buf, pos)
                if pusi:
                    pk[i] = np.frombuffer(session.pmt_packets[0], dtype=np.uint8)
                    act[i] = session.pmt_pid
                    inserts.extend((i + 1, p, session.pmt_pid) for p in session.pmt_packets[1:])
                else:
                    act[i] = _DROP
            else:
                act[i] = self._gate_row(route, buf, pos, up, pusi)

    def _gate_row(self, route: _Route, buf: bytearray, pos: int, up: int, pusi: bool) -> int:
        gate = route.gates.get(up)
        if gate is None:
            return _DROP
        if up in route.started:
            return gate.out_pid
        if not pusi:
            return _DROP
        start = pos + payload_offset(buf, pos)
        pts_at, _ = timestamp_positions(buf, start, pos + PACKET_SIZE)
        if pts_at >= 0:
            pts = read_timestamp(buf, pts_at)
            if gate.cut_pts is not None and ts_diff(pts, gate.cut_pts) < 0:
                return _DROP
            floor = self._max_pts.get(gate.out_pid)
            if floor is not None and ts_diff(pts + route.offset, floor) <= 0:
                return _DROP
        route.started.add(up)
        route.lut[up] = gate.out_pid
        return gate.out_pid

    def _watch_pat(self, route: _Route, buf: bytearray, pos: int) -> None:
        for section in route.pat_asm.feed(buf, pos):
            try:
                pat = parse_pat(section)
            except PsiError:
                continue
            pmt_pid = pat.pmt_pid(route.plan.program_number)
            if pmt_pid is not None and pmt_pid != route.plan.pmt_pid:
                route.lut[route.plan.pmt_pid] = _DROP
                route.lut[pmt_pid] = _PMT
                route.pmt_asm = SectionAssembler()
                route.plan = _replace_pmt_pid(route.plan, pmt_pid)

    def _watch_pmt(self, route: _Route, session: _Session, buf: bytearray, pos: int) -> None:
        for section in route.pmt_asm.feed(buf, pos):
            if section == route.pmt_section:
                continue
            try:
                pmt = parse_pmt(section)
            except PsiError:
                continue
            if pmt.program_number != route.plan.program_number or not pmt.streams:
                continue
            try:
                plan = _make_plan(session, pmt.program_number, route.plan.pmt_pid, pmt)
            except SpliceError:
                continue
            route.pmt_section = section
            self._reroute(route, session, plan)

    def _reroute(self, route: _Route, session: _Session, plan: _Plan) -> None:
        """The current upstream changed its PMT: remap, gating streams that are new."""
        old = route.plan
        for up in old.es_map:
            route.lut[up] = _DROP
        if old.pcr_passthrough:
            route.lut[old.pmt.pcr_pid] = _DROP
        for up, out in plan.es_map.items():
            if old.es_map.get(up) == out and up in route.started:
                route.lut[up] = out
            else:
                route.started.discard(up)
                route.lut[up] = _GATE
                route.gates[up] = _Gate(out_pid=out, cut_pts=None)
        if plan.pcr_passthrough:
            route.lut[plan.pmt.pcr_pid] = session.pmt.pcr_pid
        route.lut[PAT_PID] = _PAT
        route.lut[plan.pmt_pid] = _PMT
        route.identity = route.identity and all(up == out for up, out in plan.es_map.items())
        route.plan = plan

    def _pes_row(self, route: _Route, buf: bytearray, pos: int, out: int) -> None:
        """Rebase a PES header's PTS/DTS and record the session timeline."""
        start = pos + payload_offset(buf, pos)
        pts_at, dts_at = timestamp_positions(buf, start, pos + PACKET_SIZE)
        if pts_at < 0:
            return
        off = route.offset
        pts = (read_timestamp(buf, pts_at) + off) % PTS_MODULUS
        if off:
            write_timestamp(buf, pts_at, pts)
        if dts_at >= 0:
            dts = (read_timestamp(buf, dts_at) + off) % PTS_MODULUS
            if off:
                write_timestamp(buf, dts_at, dts)
        else:
            dts = pts
        last = self._last_dts.get(out)
        if last is not None:
            step = ts_diff(dts, last)
            if 0 < step <= _MAX_FRAME:
                self._frame[out] = step
        self._last_dts[out] = dts
        top = self._max_pts.get(out)
        if top is None or ts_diff(pts, top) > 0:
            self._max_pts[out] = pts

    def _pcr_row(self, route: _Route, buf: bytearray, pos: int, on_pcr_pid: bool) -> None:
        at = pos + 6
        if route.offset:
            write_pcr(buf, at, read_pcr(buf, at) + route.offset * PCR_PER_PTS)
        if on_pcr_pid:
            if route.discontinuity_pending:
                set_discontinuity(buf, pos)
                route.discontinuity_pending = False
            self._last_pcr = read_pcr(buf, at)

    def _synth_pcr(
        self,
        route: _Route,
        buf: bytearray,
        pos: int,
        row: int,
        pcr_pid: int,
        inserts: list[tuple[int, bytes, int]],
    ) -> None:
        """Carry an upstream PCR onto the session's PCR PID as a PCR-only packet."""
        pcr = (read_pcr(buf, pos + 6) + route.offset * PCR_PER_PTS) % PCR_MODULUS
        packet = pcr_packet(pcr_pid, pcr, discontinuity=route.discontinuity_pending)
        route.discontinuity_pending = False
        self._last_pcr = pcr
        inserts.append((row, bytes(packet), pcr_pid))


def _anchor_scan(packets: bytearray, pid: int) -> tuple[int, int]:
    """Index of the last PES start on ``pid`` (-1 if none), and how many packets
    of other PIDs follow it (or are in ``packets`` at all, if there is none);
    when that cannot exceed ``_HOLD_OTHERS``, an upper bound instead."""
    head = np.frombuffer(packets, dtype=">u2", count=(len(packets) - 1) // 2, offset=1)
    head = head[::_WORDS]
    starts = np.flatnonzero((head & 0x5FFF) == (0x4000 | pid))
    last = int(starts[-1]) if len(starts) else -1
    tail = head[max(last, 0) :]
    if len(tail) <= _HOLD_OTHERS:
        return last, len(tail)  # an upper bound is enough below the limit
    return last, int(np.count_nonzero((tail & 0x1FFF) != pid))


def _replace_pmt_pid(plan: _Plan, pmt_pid: int) -> _Plan:
    return _Plan(
        program_number=plan.program_number,
        pmt_pid=pmt_pid,
        pmt=plan.pmt,
        es_map=plan.es_map,
        anchor_up=plan.anchor_up,
        anchor_codec=plan.anchor_codec,
        anchor_video=plan.anchor_video,
        pcr_passthrough=plan.pcr_passthrough,
        synth_pcr_up=plan.synth_pcr_up,
    )

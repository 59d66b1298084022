"""The media clock of one upstream: how much media time it has delivered, against the wall.

Theory of operation
-------------------
A provider can keep sending valid MPEG-TS and still fail its viewers: a trickle,
or delivery at 0.6x real time, starves every player within seconds although no
byte timeout ever fires.  :class:`MediaClock` measures that.  It is fed the raw
chunks of one upstream (exactly as the reader delivers them, with the caller's
wall-clock ``now``; it never reads a clock itself) and follows one *media
clock* through them:

1. the PCR (27 MHz: 33-bit base x 300 + 9-bit extension) of the program's PCR
   PID, taken from its PMT;
2. else the PTS (90 kHz, 33 bits) of the program's first video stream;
3. else the PTS of its first audio stream (a radio channel without PCR).

A PCR PID that carries no PCR within ``pcr_wait_seconds`` of the PMT is passed
over.  When no PMT turns up within ``psi_wait_bytes``, the clock guesses: the
first PID seen carrying a PCR, else PES stream ids (``0xE0``-``0xEF`` video,
``0xC0``-``0xDF`` audio).  If the chosen source produces nothing for
``source_timeout`` seconds while another one does, the clock moves to that one
(a new segment; the media of the silent interval is not credited, so such a
move costs up to ``source_timeout`` of lag).

**Media delivered.**  Successive timestamps of the source advance the
delivered media time by their difference on the 33-bit circle (so the wrap
every ~26.5 h is a small step like any other).  A step backwards of up to
``reorder_seconds`` (0.5 s) is ignored (B-frame PTS reordering, PCR jitter);
the clock keeps the highest timestamp.  A *discontinuity* - the adaptation
field's discontinuity_indicator on the source PID, a step forwards of more than
``jump_seconds`` (3 s) or a step backwards of more than ``reorder_seconds`` -
starts a new timeline segment: the media
accumulated so far carries over and the step across the break counts as one
typical timestamp interval (a running mean of the recent steps), so a stream
that restarts its timestamps at every HLS segment is not slowly starved of
credit.

**Lag.**  ``lag(now) = (now - origin) - media``, where ``origin`` is the wall
time of the first timestamp and ``media`` the media time delivered since.
Positive lag means the upstream is behind live: a player that started with
the first byte would have run dry ``lag`` seconds ago.  This is judged against
the media *delivered*, so an initial burst or an HLS restream's periodic burst
(4-10 s of media at once) is credit only for as long as it lasts: a stream
that sends a 10 s burst and then stalls has lag ``-10 + t`` and is behind live
``limit`` seconds after its buffered media ran out, i.e. at ``t = 10 + limit``.
A stream ahead of live (negative lag) is healthy.

Credit is not kept forever: a lead beyond ``max_lead`` (30 s, the three
10-second segments an HLS client starts behind the live edge) is forgotten,
because no player buffers more than that of a live channel and the fan-out
drops what a client cannot take.  Without the cap a stream that ran 5 % fast
for an hour would stall for three minutes before being judged.

**Credit fits the delivery.**  A lead is only worth keeping for a stream
that needs it.  A stream delivered *steadily* - over the last
``rate_window`` (0.5 s) its media advanced at most ``steady_rate`` (1.5x)
as fast as the wall - keeps at most ``lead_per_gap`` (1.5) times the longest
pause between two deliveries of the last ``gap_memory`` (30 s), at least
``min_gap`` (0.1 s) of it (the fields of :class:`LeadFit`).  So a provider
that paces real-time packets keeps ~0.15 s and, when it stalls or drips, is
behind live ``limit + 0.15`` s later, however large the burst it opened with
(that burst is forgotten once it has been followed by half a second of steady
delivery); a provider that
sends 8 s every 8 s keeps up to 12 s, more than each pause takes; and during
a burst (media arriving faster than ``steady_rate``) nothing is forgotten, so
an HLS restream's opening segments carry it through its first pause.

**Default limit, 1.5 s** (:data:`DEFAULT_LAG_LIMIT`).  Plex and most IPTV
players start a live channel with 2-4 s of buffer; a stream lagging 1.5 s
behind its own start has eaten about half of that, so failing over then leaves
the splicer time to cut to a backup before the viewer sees a stall.  Healthy
delivery never gets there: real-time delivery sits at one timestamp interval
plus network jitter (tens of milliseconds), and a bursty HLS restream carries
the media of each segment before that media is due, so its lag stays negative
until a burst is more than 1.5 s late - by which time a player that started
on its first burst is stalling too.  A caller wanting more tolerance passes a
larger ``limit`` (up to the 2 s the settings allow).

Streams without readable timestamps (scrambled PES and no PCR, or no PCR/PTS
at all) report ``has_clock = False``; :attr:`clockless` turns True once
``probe_bytes`` went by without one, and the caller falls back to its no-bytes
timeout.

Cost: the packet work is a handful of NumPy column operations over an
``(n, 188)`` view per chunk; Python touches only the packets that carry a PCR of
the source PID or start a PES of the source PID (and the rare PAT/PMT).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from streamforge.ts.packets import (
    NULL_PID,
    PACKET_SIZE,
    PacketAligner,
    discontinuity_column,
    packet_rows,
    payload_offset,
    pcr_column,
    pid_column,
    read_pcrs,
)
from streamforge.ts.pes import (
    PCR_MODULUS,
    PTS_HZ,
    PTS_MODULUS,
    read_timestamp,
    timestamp_positions,
    ts_diff,
)
from streamforge.ts.psi import Pmt, ProgramTracker

#: The default lag, in seconds, beyond which an upstream is behind live (see the module doc).
DEFAULT_LAG_LIMIT: Final = 1.5
#: A timestamp step forwards of more than this starts a new timeline segment.
DEFAULT_JUMP_SECONDS: Final = 3.0
#: A step backwards of up to this is reordering (B-frames) or jitter; more is a new segment.
DEFAULT_REORDER_SECONDS: Final = 0.5
#: Lead (media ahead of the wall) beyond this is forgotten.
DEFAULT_MAX_LEAD: Final = 30.0
#: Wall seconds over which the delivery rate is judged steady or a burst.
DEFAULT_RATE_WINDOW: Final = 0.5
#: Media seconds per wall second up to which delivery is steady (above: a burst).
DEFAULT_STEADY_RATE: Final = 1.5
#: Lead a steady stream keeps, per second of its longest recent delivery pause.
DEFAULT_LEAD_PER_GAP: Final = 1.5
#: The shortest pause counted (a paced stream's chunk interval is tens of ms).
DEFAULT_MIN_GAP: Final = 0.1
#: How long a delivery pause is remembered.
DEFAULT_GAP_MEMORY: Final = 30.0
#: Bytes without any usable timestamp after which the stream is :attr:`MediaClock.clockless`.
DEFAULT_PROBE_BYTES: Final = 2_000_000

PCR_HZ: Final = PTS_HZ * 300
SOURCE_PCR: Final = "pcr"
SOURCE_VIDEO_PTS: Final = "video_pts"
SOURCE_AUDIO_PTS: Final = "audio_pts"

_PRIORITY: Final = (SOURCE_PCR, SOURCE_VIDEO_PTS, SOURCE_AUDIO_PTS)
#: Starting guess of the timestamp interval, per source (the running mean takes over).
_FIRST_STEP: Final = {SOURCE_PCR: 0.04, SOURCE_VIDEO_PTS: 0.04, SOURCE_AUDIO_PTS: 0.0213}
_MAX_STEP: Final = 0.5


@dataclass(frozen=True, slots=True)
class LeadFit:
    """How much lead a stream keeps for its delivery (the module doc's
    "Credit fits the delivery")."""

    rate_window: float = DEFAULT_RATE_WINDOW
    steady_rate: float = DEFAULT_STEADY_RATE
    lead_per_gap: float = DEFAULT_LEAD_PER_GAP
    min_gap: float = DEFAULT_MIN_GAP
    gap_memory: float = DEFAULT_GAP_MEMORY

    def __post_init__(self) -> None:
        values = (self.rate_window, self.steady_rate, self.lead_per_gap, self.min_gap)
        if min(*values, self.gap_memory) <= 0:
            raise ValueError("the lead-fitting parameters must be positive")


@dataclass(slots=True)
class _Timeline:
    """One segment of the source's timestamps."""

    last: int
    modulus: int
    hz: int


class MediaClock:
    """Media time delivered by one upstream against the wall clock; see the module doc.

    Not thread-safe: one instance per upstream, fed from the task that reads it.
    """

    def __init__(
        self,
        *,
        jump_seconds: float = DEFAULT_JUMP_SECONDS,
        reorder_seconds: float = DEFAULT_REORDER_SECONDS,
        max_lead: float = DEFAULT_MAX_LEAD,
        lead_fit: LeadFit = LeadFit(),
        probe_bytes: int = DEFAULT_PROBE_BYTES,
        psi_wait_bytes: int = 1_000_000,
        pcr_wait_seconds: float = 0.5,
        source_timeout: float = 2.0,
        sources: tuple[str, ...] = _PRIORITY,
    ) -> None:
        """``sources`` restricts (and orders) the timestamp sources the clock may
        follow, e.g. ``(SOURCE_AUDIO_PTS,)`` for a clock of the sound alone."""
        if not sources or any(s not in _PRIORITY for s in sources):
            raise ValueError(f"sources must be some of {_PRIORITY}")
        self._priority = sources
        if min(jump_seconds, reorder_seconds, source_timeout) <= 0 or max_lead < 0:
            raise ValueError("jump, reorder and source timeout must be positive, max_lead >= 0")
        self._jump = jump_seconds
        self._reorder = reorder_seconds
        self._max_lead = max_lead
        self._fit = lead_fit
        # (wall, media) at each delivery with a running clock, back to one
        # ``rate_window`` old; (wall, length) of the pauses of ``min_gap`` or
        # more within ``gap_memory``, each longer than every later one.
        self._marks: deque[tuple[float, float]] = deque()
        self._gaps: deque[tuple[float, float]] = deque()
        self._last_feed: float | None = None
        self._probe_bytes = probe_bytes
        self._psi_wait_bytes = psi_wait_bytes
        self._pcr_wait = pcr_wait_seconds
        self._source_timeout = source_timeout
        self._aligner = PacketAligner()
        self._program = ProgramTracker()
        self._guessing = False
        self._program_at: float | None = None
        self._pids: dict[str, int] = {}
        self._bytes = 0
        self._source: str | None = None
        self._timeline: _Timeline | None = None
        self._pending_disc = False
        self._origin: float | None = None
        self._media = 0.0
        self._step = 0.04
        self._source_seen_at = 0.0
        self.segments = 0
        self.switches = 0

    # ------------------------------------------------------------ feeding

    def feed(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Take a raw chunk of the upstream (any size, any alignment) received at ``now``."""
        packets = self._aligner.feed(data)
        if packets:
            self.feed_packets(packets, now)

    def feed_packets(self, packets: bytes | bytearray | memoryview, now: float) -> None:
        """Take whole, aligned packets (for a caller that aligns already)."""
        if not len(packets):
            return
        buf = packets if isinstance(packets, bytes | bytearray) else bytes(packets)
        rows = packet_rows(buf)
        self._bytes += len(buf)
        pids = pid_column(rows)
        # Packets flagged with a transport error carry nothing we can trust.
        pids = np.where((rows[:, 1] & 0x80) == 0, pids, NULL_PID)
        pmt = self._program.feed(buf, pids)
        if pmt is not None:
            self._adopt(pmt, now)
        if self._program_at is None:
            if self._bytes < self._psi_wait_bytes:
                return
            self._guessing = True
            self._program_at = now
        if self._guessing:
            self._guess_pids(rows, pids)
        self._advance(buf, rows, pids, now)
        self._note_delivery(now)
        self._forget_excess_lead(now)

    # ------------------------------------------------------------ results

    @property
    def has_clock(self) -> bool:
        """True once a timestamp source is found and the clock runs."""
        return self._origin is not None

    @property
    def clockless(self) -> bool:
        """True when ``probe_bytes`` went by and no timestamp was usable."""
        return self._origin is None and self._bytes >= self._probe_bytes

    @property
    def source(self) -> str | None:
        """``"pcr"``, ``"video_pts"``, ``"audio_pts"`` or None (no clock yet)."""
        return self._source

    @property
    def media_seconds(self) -> float:
        """Media time delivered since the origin."""
        return self._media

    def lag(self, now: float) -> float:
        """Wall time since the origin minus media delivered; positive = behind live.

        0.0 while :attr:`has_clock` is False.
        """
        if self._origin is None:
            return 0.0
        return (now - self._origin) - self._media

    def behind_live(self, now: float, limit: float = DEFAULT_LAG_LIMIT) -> bool:
        """True when the clock runs and :meth:`lag` exceeds ``limit`` seconds."""
        return self._origin is not None and self.lag(now) > limit

    def rebase(self, now: float) -> None:
        """Start the accounting afresh at ``now`` (lag 0), keeping the timeline.

        For a caller that decided to stay on a stream after judging it behind:
        without a rebase the lag it already accrued would keep it behind for good.
        """
        if self._origin is not None:
            self._origin = now
            self._media = 0.0
            self._marks.clear()

    # ------------------------------------------------------------ the program

    def _adopt(self, pmt: Pmt, now: float) -> None:
        found: dict[str, int] = {}
        if pmt.pcr_pid != NULL_PID:
            found[SOURCE_PCR] = pmt.pcr_pid
        for stream in pmt.streams:
            key = {"video": SOURCE_VIDEO_PTS, "audio": SOURCE_AUDIO_PTS}.get(stream.kind)
            if key is not None and key not in found:
                found[key] = stream.pid
        found = {k: v for k, v in found.items() if k in self._priority}
        if self._source is not None and found.get(self._source) != self._pids.get(self._source):
            self._drop_source()
        self._pids = found
        self._guessing = False
        if self._program_at is None:
            self._program_at = now

    def _guess_pids(self, rows: npt.NDArray[np.uint8], pids: npt.NDArray[np.int32]) -> None:
        if SOURCE_PCR in self._priority and SOURCE_PCR not in self._pids:
            carriers = np.flatnonzero(pcr_column(rows) & (pids != NULL_PID))
            if len(carriers):
                self._pids[SOURCE_PCR] = int(pids[carriers[0]])
        if all(k in self._pids for k in self._priority if k != SOURCE_PCR):
            return
        starts = np.flatnonzero(_pes_starts(rows) & (pids != NULL_PID))
        if not len(starts):
            return
        at = _payload_offsets(rows[starts])
        ok = at <= PACKET_SIZE - 4
        starts, at = starts[ok], at[ok]
        sub = rows[starts]
        idx = np.arange(len(starts))
        prefix = (sub[idx, at] == 0) & (sub[idx, at + 1] == 0) & (sub[idx, at + 2] == 1)
        sid = sub[idx, np.minimum(at + 3, PACKET_SIZE - 1)]
        for key, lo, hi in ((SOURCE_VIDEO_PTS, 0xE0, 0xEF), (SOURCE_AUDIO_PTS, 0xC0, 0xDF)):
            if key in self._pids or key not in self._priority:
                continue
            match = np.flatnonzero(prefix & (sid >= lo) & (sid <= hi))
            if len(match):
                self._pids[key] = int(pids[starts[match[0]]])

    # ------------------------------------------------------------ the clock

    def _advance(
        self,
        packets: bytes | bytearray,
        rows: npt.NDArray[np.uint8],
        pids: npt.NDArray[np.int32],
        now: float,
    ) -> None:
        current = self._source
        if current is not None:
            stamps = self._stamps(current, packets, rows, pids)
            if stamps:
                self._source_seen_at = now
                self._apply(stamps, now)
                return
            if now - self._source_seen_at <= self._source_timeout:
                return
        assert self._program_at is not None
        pcr_due = now - self._program_at >= self._pcr_wait or self._bytes >= self._psi_wait_bytes
        for key in self._priority:
            if key == current or key not in self._pids:
                continue
            stamps = self._stamps(key, packets, rows, pids)
            if not stamps:
                if key == SOURCE_PCR and not pcr_due:
                    return  # give the PCR a moment before settling for PTS
                continue
            if current is not None:
                self.switches += 1
                self._drop_source()
            self._source = key
            self._source_seen_at = now
            self._apply(stamps, now)
            return

    def _drop_source(self) -> None:
        """Leave the current source; the next timestamps start a new segment."""
        self._source = None
        if self._timeline is not None:
            self._timeline = None
            self._pending_disc = True

    def _stamps(
        self,
        key: str,
        packets: bytes | bytearray,
        rows: npt.NDArray[np.uint8],
        pids: npt.NDArray[np.int32],
    ) -> list[tuple[int, bool]]:
        """The source's timestamps in this chunk, each with "a discontinuity precedes it"."""
        on_pid = pids == self._pids[key]
        disc = discontinuity_column(rows) & on_pid
        if key == SOURCE_PCR:
            has = pcr_column(rows) & on_pid
            if not has.any():
                return []
            values = read_pcrs(rows[has])
            idx = np.flatnonzero(has | disc)
            out: list[tuple[int, bool]] = []
            flag = False
            k = 0
            for i in idx:
                flag = flag or bool(disc[i])
                if has[i]:
                    out.append((int(values[k]), flag))
                    k += 1
                    flag = False
            if flag:
                self._pending_disc = True
            return out
        starts = np.flatnonzero(_pes_starts(rows) & on_pid)
        if not len(starts):
            return []
        out = []
        buf = packets
        for i in starts:
            pos = int(i) * PACKET_SIZE
            at = pos + payload_offset(buf, pos)
            pts_at = timestamp_positions(buf, at, pos + PACKET_SIZE)[0]
            if pts_at >= 0:
                out.append((read_timestamp(buf, pts_at), bool(disc[i])))
        return out

    def _apply(self, stamps: list[tuple[int, bool]], now: float) -> None:
        source = self._source
        assert source is not None
        modulus, hz = (PCR_MODULUS, PCR_HZ) if source == SOURCE_PCR else (PTS_MODULUS, PTS_HZ)
        if self._origin is None:
            self._origin = now
            self._step = _FIRST_STEP[source]
        for value, disc in stamps:
            tl = self._timeline
            if tl is None or tl.hz != hz:
                if self._pending_disc:
                    self._media += self._step
                    self.segments += 1
                    self._pending_disc = False
                self._timeline = _Timeline(value, modulus, hz)
                continue
            step = ts_diff(value, tl.last, modulus) / hz
            if disc or self._pending_disc or step > self._jump or step < -self._reorder:
                self._media += self._step
                self.segments += 1
                self._pending_disc = False
                tl.last = value
            elif step > 0:
                self._media += step
                self._step += (min(step, _MAX_STEP) - self._step) * 0.1
                tl.last = value

    def _note_delivery(self, now: float) -> None:
        """Remember this delivery's pause and its (wall, media) mark."""
        fit = self._fit
        last, self._last_feed = self._last_feed, now
        gaps = self._gaps
        if last is not None and now - last >= fit.min_gap:
            # Longest first: a pause shorter than a later one can never be the
            # longest again, so the front is always the longest remembered.
            while gaps and gaps[-1][1] <= now - last:
                gaps.pop()
            gaps.append((now, now - last))
        while gaps and gaps[0][0] < now - fit.gap_memory:
            gaps.popleft()
        if self._origin is None:
            return
        marks = self._marks
        marks.append((now, self._media))
        while len(marks) > 2 and marks[1][0] <= now - fit.rate_window:
            marks.popleft()

    def lead_allowed(self, now: float) -> float:
        """The most lead the stream keeps at ``now`` (see "Credit fits the delivery")."""
        fit, marks = self._fit, self._marks
        if not marks or marks[0][0] > now - fit.rate_window:
            return self._max_lead  # not delivered long enough to tell a burst
        wall_then, media_then = marks[0]
        if self._media - media_then > fit.steady_rate * (now - wall_then):
            return self._max_lead  # a burst
        pause = self._gaps[0][1] if self._gaps else fit.min_gap
        return min(self._max_lead, fit.lead_per_gap * max(pause, fit.min_gap))

    def _forget_excess_lead(self, now: float) -> None:
        if self._origin is None:
            return
        allowed = self.lead_allowed(now)
        if -self.lag(now) > allowed:
            self._origin = now + allowed - self._media


def _pes_starts(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Rows starting a PES (or section) with a clear payload."""
    flags: npt.NDArray[np.bool_] = (
        ((rows[:, 1] & 0x40) != 0) & ((rows[:, 3] & 0x10) != 0) & ((rows[:, 3] & 0xC0) == 0)
    )
    return flags


def _payload_offsets(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    """Payload offset of each row (the vector form of ``payload_offset``)."""
    af = (rows[:, 3] & 0x20) != 0
    offsets: npt.NDArray[np.intp] = np.where(af, 5 + rows[:, 4].astype(np.intp), 4)
    return np.minimum(offsets, PACKET_SIZE)

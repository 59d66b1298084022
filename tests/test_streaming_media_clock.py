"""Tests for streamforge.streaming.media_clock and the vector header helpers it uses."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streamforge.streaming.media_clock import (
    DEFAULT_GAP_MEMORY,
    DEFAULT_LAG_LIMIT,
    DEFAULT_LEAD_PER_GAP,
    DEFAULT_MIN_GAP,
    DEFAULT_RATE_WINDOW,
    SOURCE_AUDIO_PTS,
    SOURCE_PCR,
    SOURCE_VIDEO_PTS,
    LeadFit,
    MediaClock,
)
from streamforge.ts.packets import (
    NULL_PID,
    PACKET_SIZE,
    discontinuity_column,
    packet_pid,
    packet_rows,
    pcr_column,
    pcr_position,
    pid_column,
    read_pcr,
    read_pcrs,
    set_discontinuity,
)
from streamforge.ts.psi import ProgramTracker
from tests.tsmedia import MediaSpec, SynthSpec, SynthStream, make_ts, split_at, synth_ts

FRAME = 0.04  # seconds per frame at the SynthSpec default of 3600 ticks
BASE = SynthSpec(frames=1, video_bytes=400, audio_bytes=200)
PCR_LESS = replace(BASE, pcr_pid=NULL_PID)
RADIO = replace(BASE, streams=(SynthStream(0x101, 0x0F, "eng"),), pcr_pid=NULL_PID)


def frame(n: int, spec: SynthSpec = BASE, first_pts: int | None = None) -> bytes:
    """The packets of frame ``n`` (PAT/PMT, PCR, video and audio PES)."""
    if first_pts is not None:
        spec = replace(spec, first_pts=first_pts)
    return synth_ts(replace(spec, first_frame=n))


def frames(count: int, start: int = 0, spec: SynthSpec = BASE) -> Iterator[tuple[int, bytes]]:
    for n in range(start, start + count):
        yield n, frame(n, spec)


def feed_paced(clock: MediaClock, count: int, rate: float, t0: float = 0.0) -> float:
    """Feed ``count`` frames delivered at ``rate`` x real time; returns the last wall time."""
    now = t0
    for n, data in frames(count):
        now = t0 + n * FRAME / rate
        clock.feed(data, now)
    return now


# ---------------------------------------------------------------- ts helpers


def test_vector_header_columns_agree_with_the_scalar_helpers() -> None:
    data = bytearray(synth_ts(SynthSpec(frames=24)))
    rows = packet_rows(data)
    pids = pid_column(rows)
    has = pcr_column(rows)
    for i in range(len(rows)):
        pos = i * PACKET_SIZE
        assert pids[i] == packet_pid(data, pos)
        assert bool(has[i]) == (pcr_position(data, pos) >= 0)
    positions = [pcr_position(data, int(i) * PACKET_SIZE) for i in np.flatnonzero(has)]
    assert read_pcrs(rows[has]).tolist() == [read_pcr(data, at) for at in positions]
    assert len(positions) == 24
    # the discontinuity column sees exactly the flags set
    pcr_rows = np.flatnonzero(has)
    set_discontinuity(data, int(pcr_rows[5]) * PACKET_SIZE)
    assert np.flatnonzero(discontinuity_column(packet_rows(data))).tolist() == [pcr_rows[5]]
    with pytest.raises(ValueError, match="whole"):
        packet_rows(data[:-1])


def test_read_pcrs_decodes_the_full_33_bit_base_and_extension() -> None:
    data = bytearray(synth_ts(replace(BASE, first_pts=(1 << 33) - 1, pcr_delay=0)))
    rows = packet_rows(data)
    (value,) = read_pcrs(rows[pcr_column(rows)]).tolist()
    assert value == ((1 << 33) - 1) * 300


# ---------------------------------------------------------------- sources


def test_pcr_is_the_clock_and_real_time_delivery_has_no_lag() -> None:
    clock = MediaClock()
    assert not clock.has_clock
    assert clock.lag(0.0) == 0.0
    now = feed_paced(clock, 250, 1.0)
    assert clock.source == SOURCE_PCR
    assert clock.media_seconds == pytest.approx(249 * FRAME)
    assert abs(clock.lag(now)) < 1e-6
    assert not clock.behind_live(now)
    assert clock.segments == 0


def test_pcr_less_stream_falls_back_to_video_pts() -> None:
    clock = MediaClock()
    for n, data in frames(50, spec=PCR_LESS):
        clock.feed(data, n * FRAME)
    assert clock.source == SOURCE_VIDEO_PTS
    assert clock.media_seconds == pytest.approx(49 * FRAME)


def test_radio_without_pcr_runs_on_audio_pts() -> None:
    clock = MediaClock()
    for n, data in frames(50, spec=RADIO):
        clock.feed(data, n * FRAME)
    assert clock.source == SOURCE_AUDIO_PTS
    assert clock.media_seconds == pytest.approx(49 * FRAME)


def test_a_pcr_pid_without_pcr_is_passed_over_after_a_moment() -> None:
    # The PMT names the audio PID as PCR PID, but no PCR ever rides on it.
    spec = replace(BASE, pcr_pid=0x101)
    clock = MediaClock(pcr_wait_seconds=0.5)
    for n, data in frames(50, spec=spec):
        rows = packet_rows(bytearray(data))
        stripped = bytearray(data)
        for i in np.flatnonzero(pcr_column(rows)):
            stripped[int(i) * PACKET_SIZE + 5] &= ~0x10 & 0xFF  # clear PCR_flag
        clock.feed(bytes(stripped), n * FRAME)
    assert clock.source == SOURCE_VIDEO_PTS
    assert clock.has_clock


def test_scrambled_stream_without_pcr_has_no_clock() -> None:
    clock = MediaClock(probe_bytes=100_000)
    for n, data in frames(200, spec=PCR_LESS):
        buf = bytearray(data)
        for i in range(0, len(buf), PACKET_SIZE):
            if packet_pid(buf, i) in (0x100, 0x101):
                buf[i + 3] |= 0x80  # transport_scrambling_control: scrambled
        clock.feed(bytes(buf), n * FRAME)
    assert not clock.has_clock
    assert clock.clockless
    assert clock.source is None
    assert not clock.behind_live(100.0)


def test_stream_without_psi_guesses_the_pcr_pid() -> None:
    clock = MediaClock(psi_wait_bytes=20_000)
    for n, data in frames(200):
        buf = b"".join(
            data[i : i + PACKET_SIZE]
            for i in range(0, len(data), PACKET_SIZE)
            if packet_pid(data, i) not in (0, 0x1000)
        )
        clock.feed(buf, n * FRAME)
    assert clock.source == SOURCE_PCR
    assert clock.media_seconds > 5.0
    assert abs(clock.lag(199 * FRAME)) < 1.0


def test_chunking_does_not_change_the_result() -> None:
    data = synth_ts(SynthSpec(frames=100))
    whole = MediaClock()
    whole.feed(data, 0.0)
    cut = MediaClock()
    for chunk in split_at(data, list(range(7, len(data), 1013))):
        cut.feed(chunk, 0.0)
    assert cut.media_seconds == whole.media_seconds == pytest.approx(99 * FRAME)


# ---------------------------------------------------------------- timelines


def test_wrap_at_2_pow_33_is_a_small_step() -> None:
    first = (1 << 33) - 2 * 90_000  # wraps two seconds in (PCR 0.7 s later)
    clock = MediaClock()
    for n in range(150):
        clock.feed(frame(n, first_pts=first), n * FRAME)
    assert clock.segments == 0
    assert clock.media_seconds == pytest.approx(149 * FRAME)
    assert abs(clock.lag(149 * FRAME)) < 1e-6


def test_pts_wrap_is_a_small_step() -> None:
    clock = MediaClock()
    for n in range(150):
        clock.feed(frame(n, PCR_LESS, first_pts=(1 << 33) - 90_000), n * FRAME)
    assert clock.source == SOURCE_VIDEO_PTS
    assert clock.segments == 0
    assert clock.media_seconds == pytest.approx(149 * FRAME)


def _flag_pcr_discontinuity(data: bytes) -> bytes:
    buf = bytearray(data)
    rows = packet_rows(buf)
    first = int(np.flatnonzero(pcr_column(rows))[0])
    assert set_discontinuity(buf, first * PACKET_SIZE)
    return bytes(buf)


def test_discontinuity_indicator_starts_a_new_segment_and_keeps_the_media() -> None:
    clock = MediaClock()
    for n in range(100):
        clock.feed(frame(n), n * FRAME)
    # A new timeline one second *behind* the old one: without the flag this
    # small backwards step would be ignored and a second of media lost.
    back = BASE.first_pts + 99 * 3600 - 90_000
    for k in range(100):
        data = frame(k, first_pts=back)
        clock.feed(_flag_pcr_discontinuity(data) if k == 0 else data, (100 + k) * FRAME)
    assert clock.segments == 1
    # 99 frame steps before, one credited step across the break, 99 after
    assert clock.media_seconds == pytest.approx(199 * FRAME, abs=0.01)
    assert abs(clock.lag(199 * FRAME)) < 0.05


def test_a_big_jump_either_way_starts_a_new_segment() -> None:
    for offset in (3600 * 90_000, -600 * 90_000):
        clock = MediaClock()
        for n in range(100):
            clock.feed(frame(n, first_pts=10 * 3600 * 90_000), n * FRAME)
        for k in range(100):
            clock.feed(frame(k, first_pts=10 * 3600 * 90_000 + offset), (100 + k) * FRAME)
        assert clock.segments == 1
        assert clock.media_seconds == pytest.approx(199 * FRAME, abs=0.01)
        assert not clock.behind_live(199 * FRAME)


def test_timestamps_restarting_at_every_segment_do_not_starve_the_clock() -> None:
    # A sloppy restream re-muxes every 2 s segment from the same timestamps.
    clock = MediaClock()
    now = 0.0
    for seg in range(60):
        for k in range(50):
            now = (seg * 50 + k) * FRAME
            clock.feed(frame(k), now)
    assert clock.segments == 59
    assert abs(clock.lag(now)) < 0.1


# ---------------------------------------------------------------- lag


def test_initial_burst_is_forgotten_once_steady_delivery_follows() -> None:
    clock = MediaClock()
    for n in range(250):  # 10 s of media at once
        clock.feed(frame(n), 0.0)
    assert clock.lag(0.0) == pytest.approx(-10.0 + FRAME, abs=0.01)
    for n in range(250, 1000):  # then real time
        now = (n - 250) * FRAME + 0.02
        clock.feed(frame(n), now)
        assert not clock.behind_live(now)
        if now < DEFAULT_RATE_WINDOW:  # not yet long enough to tell a burst
            assert clock.lag(now) < -9.0
    # a paced stream keeps lead_per_gap x min_gap of lead, not its opening burst
    kept = DEFAULT_LEAD_PER_GAP * DEFAULT_MIN_GAP
    assert clock.lag(now) == pytest.approx(-kept, abs=0.01)
    # so a stall (or a drip) now is behind live at the limit plus that
    assert not clock.behind_live(now + DEFAULT_LAG_LIMIT + kept - 0.01)
    assert clock.behind_live(now + DEFAULT_LAG_LIMIT + kept + 0.01)


def test_stall_after_a_burst_is_behind_limit_seconds_after_the_buffer_ran_out() -> None:
    clock = MediaClock()
    for n in range(250):
        clock.feed(frame(n), 0.0)
    buffered = clock.media_seconds
    assert buffered == pytest.approx(10.0 - FRAME)
    assert not clock.behind_live(buffered + DEFAULT_LAG_LIMIT - 0.01)
    assert clock.behind_live(buffered + DEFAULT_LAG_LIMIT + 0.01)


def test_hls_restream_bursts_are_never_behind() -> None:
    # One 6 s segment at once every 6 s, each up to 1 s late, no initial buffer.
    rng = random.Random(7)
    clock = MediaClock()
    per = 150
    for seg in range(20):
        arrive = seg * 6.0 + (rng.uniform(0.0, 1.0) if seg else 0.0)
        # just before the burst arrives, the previous media is nearly played out
        assert not clock.behind_live(arrive - 1e-3)
        for n in range(seg * per, (seg + 1) * per):
            clock.feed(frame(n), arrive + (n - seg * per) * 0.0005)


def test_a_stream_ahead_of_live_is_healthy() -> None:
    clock = MediaClock()
    now = feed_paced(clock, 500, 1.3)  # steady, a little fast: ahead, its lead trimmed
    assert -DEFAULT_LEAD_PER_GAP * DEFAULT_MIN_GAP - 0.01 < clock.lag(now) < 0
    assert not clock.behind_live(now)
    now = feed_paced(clock, 500, 3.0, t0=now + FRAME)  # a burst: all of it is credit
    assert clock.lag(now) < -10.0
    assert not clock.behind_live(now)


def test_a_bursty_provider_keeps_the_lead_its_pauses_need() -> None:
    # An HLS restream: three 8 s segments at once, then one 8 s segment every
    # 8 s (arriving over 0.4 s, up to 1.5 s late) for two minutes.
    rng = random.Random(11)
    clock = MediaClock()
    per = 200
    n = 0
    for seg in range(3 + 15):
        arrive = 0.0 if seg < 3 else (seg - 2) * 8.0 + rng.uniform(0.0, 1.5)
        assert not clock.behind_live(arrive - 1e-3), (seg, clock.lag(arrive - 1e-3))
        for k in range(per):
            clock.feed(frame(n), arrive + k * 0.002)
            n += 1
    assert clock.lead_allowed(arrive + 0.4) >= DEFAULT_LEAD_PER_GAP * 6.5


def test_lead_beyond_max_lead_is_forgotten() -> None:
    clock = MediaClock(max_lead=5.0)
    now = feed_paced(clock, 1500, 2.0)  # 60 s of media in 30 s
    assert clock.lag(now) == pytest.approx(-5.0, abs=0.05)
    assert clock.behind_live(now + 5.0 + DEFAULT_LAG_LIMIT + 0.05)


@pytest.mark.parametrize("rate", [0.6, 0.9])
def test_slow_delivery_is_detected_within_limit_plus_half_a_second(rate: float) -> None:
    clock = MediaClock()
    for n, data in frames(3000):
        now = n * FRAME / rate
        clock.feed(data, now)
        if clock.behind_live(now):
            break
    else:
        pytest.fail("slow delivery never judged behind live")
    assert DEFAULT_LAG_LIMIT < clock.lag(now) <= DEFAULT_LAG_LIMIT + 0.5
    # the media time it took is what the lag formula predicts
    assert clock.media_seconds == pytest.approx(DEFAULT_LAG_LIMIT * rate / (1 - rate), abs=0.5)


def test_real_time_with_jitter_is_never_behind() -> None:
    rng = random.Random(3)
    clock = MediaClock()
    for n, data in frames(2500):  # 100 s
        now = n * FRAME + rng.uniform(0.0, 0.8)  # network jitter up to 0.8 s
        clock.feed(data, now)
        assert not clock.behind_live(now), (n, clock.lag(now))


def test_rebase_forgives_the_lag_so_far() -> None:
    clock = MediaClock()
    now = feed_paced(clock, 200, 0.5)
    assert clock.behind_live(now)
    clock.rebase(now)
    assert clock.lag(now) == 0.0
    for _n, data in frames(100, start=200):
        now += FRAME
        clock.feed(data, now)
    assert abs(clock.lag(now)) < 0.1


def test_source_moves_when_the_pcr_stops_but_video_continues() -> None:
    clock = MediaClock(source_timeout=1.0)
    for n in range(100):
        clock.feed(frame(n), n * FRAME)
    assert clock.source == SOURCE_PCR
    for n in range(100, 300):
        data = bytearray(frame(n))
        rows = packet_rows(data)
        for i in np.flatnonzero(pcr_column(rows)):
            data[int(i) * PACKET_SIZE + 5] &= ~0x10 & 0xFF
        clock.feed(bytes(data), n * FRAME)
    assert clock.source == SOURCE_VIDEO_PTS
    assert clock.switches == 1
    # the second without any clock is not credited: the move costs the timeout
    assert clock.lag(299 * FRAME) == pytest.approx(1.0, abs=0.1)
    assert not clock.behind_live(299 * FRAME)


def test_constructor_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        MediaClock(jump_seconds=0)
    with pytest.raises(ValueError, match="positive"):
        MediaClock(reorder_seconds=0)
    for field_name in ("rate_window", "steady_rate", "lead_per_gap", "min_gap", "gap_memory"):
        with pytest.raises(ValueError, match="lead-fitting"):
            LeadFit(**{field_name: 0.0})


def test_a_tighter_fit_keeps_less_lead() -> None:
    clock = MediaClock(lead_fit=LeadFit(lead_per_gap=1.0, min_gap=0.05))
    for n in range(100):  # a 4 s opening burst
        clock.feed(frame(n), 0.0)
    now = 0.0
    for n in range(100, 200):  # then real time
        now = (n - 100) * FRAME + 0.02
        clock.feed(frame(n), now)
    assert clock.lag(now) == pytest.approx(-0.05, abs=0.01)


def test_real_encoded_clip_with_b_frames(tmp_path: Path) -> None:
    data = make_ts(tmp_path / "b.ts", MediaSpec(seconds=4.0, bframes=2)).read_bytes()
    by_pcr = MediaClock()
    by_pcr.feed(data, 0.0)
    assert by_pcr.source == SOURCE_PCR
    # without the PCR the clock runs on video PTS, reordered by the B-frames
    buf = bytearray(data)
    rows = packet_rows(buf)
    for i in np.flatnonzero(pcr_column(rows)):
        buf[int(i) * PACKET_SIZE + 5] &= ~0x10 & 0xFF
    by_pts = MediaClock(pcr_wait_seconds=0.0)
    by_pts.feed(bytes(buf), 0.0)
    assert by_pts.source == SOURCE_VIDEO_PTS
    assert by_pts.segments == by_pcr.segments == 0
    assert by_pts.media_seconds == pytest.approx(4.0 - FRAME, abs=0.05)
    assert by_pcr.media_seconds == pytest.approx(4.0, abs=0.3)


def test_program_tracker_reports_the_pmt_once_and_again_on_change() -> None:
    tracker = ProgramTracker()
    first = bytearray(synth_ts(SynthSpec(frames=24)))
    seen = tracker.feed(first, pid_column(packet_rows(first)))
    assert seen is not None
    assert tracker.pmt_pid == 0x1000
    assert [s.pid for s in seen.streams] == [0x100, 0x101]
    again = synth_ts(SynthSpec(frames=24, first_frame=24))
    assert tracker.feed(again, pid_column(packet_rows(again))) is None
    radio = synth_ts(replace(RADIO, frames=6))
    changed = tracker.feed(radio, pid_column(packet_rows(radio)))
    assert changed is not None
    assert [s.pid for s in changed.streams] == [0x101]
    assert tracker.pmt == changed


def test_a_long_pause_is_remembered_for_gap_memory_then_forgotten() -> None:
    clock = MediaClock()
    now = 0.0
    n = 0
    for _ in range(50):  # 2 s steady
        clock.feed(frame(n), now)
        n += 1
        now += FRAME
    now += 2.0  # one 2 s hiccup
    for _ in range(50):
        clock.feed(frame(n), now)
        n += 1
        now += FRAME
    assert clock.lead_allowed(now - FRAME) == pytest.approx(DEFAULT_LEAD_PER_GAP * 2.04, abs=0.01)
    for _ in range(int(DEFAULT_GAP_MEMORY / FRAME) + 10):  # steady past the memory
        clock.feed(frame(n), now)
        n += 1
        now += FRAME
    kept = DEFAULT_LEAD_PER_GAP * DEFAULT_MIN_GAP
    assert clock.lead_allowed(now - FRAME) == pytest.approx(kept, abs=0.01)

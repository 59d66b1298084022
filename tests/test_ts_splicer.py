"""Tests for streamforge.ts.splicer (and the PES helpers in streamforge.ts.pes)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.errors import MediaError, ProviderError
from streamforge.ts.packets import NULL_PACKET, PACKET_SIZE
from streamforge.ts.pes import (
    PTS_MODULUS,
    KeyframeProbe,
    read_timestamp,
    timestamp_positions,
    ts_add,
    ts_diff,
    write_timestamp,
)
from streamforge.ts.psi import Pmt, PmtStream, SectionAssembler, parse_pat, parse_pmt
from streamforge.ts.splicer import SpliceError, TsSplicer, map_streams
from tests.tsmedia import (
    MediaSpec,
    PacketInfo,
    SynthSpec,
    SynthStream,
    cc_errors,
    decode_ts,
    make_ts,
    mpeg_crc,
    packets_of,
    split_at,
    synth_ts,
)

A = SynthSpec()
B = SynthSpec(
    program=9,
    pmt_pid=0x1200,
    streams=(SynthStream(0x300, 0x1B), SynthStream(0x301, 0x0F, "eng")),
    first_pts=5_000_000,
    first_frame=5,  # starts mid-GOP: the first keyframe is frame 12
    cc_start=7,
)


def run(splicer: TsSplicer, data: bytes, chunk: int = 1316) -> bytes:
    return b"".join(splicer.push(data[i : i + chunk]) for i in range(0, len(data), chunk))


def by_pid(info: list[PacketInfo], pid: int) -> list[PacketInfo]:
    return [p for p in info if p.pid == pid]


def video_frames(info: list[PacketInfo], pid: int) -> list[int]:
    """The frame number each video PES carries (its last payload byte)."""
    frames: list[int] = []
    last = None
    for p in info:
        if p.pid != pid or not p.payload:
            continue
        if p.pusi and last is not None:
            frames.append(last)
        last = p.body[-1]
    if last is not None:
        frames.append(last)
    return frames


def psi_sections(info: list[PacketInfo], pid: int) -> list[bytes]:
    asm = SectionAssembler()
    out: list[bytes] = []
    for p in info:
        if p.pid == pid:
            raw = bytes([0x47, (0x40 if p.pusi else 0) | (pid >> 8), pid & 0xFF, 0x10 | p.cc])
            out += asm.feed(raw + p.body)
    return out


def splice(first: bytes, *rest: bytes, chunk: int = 1316) -> tuple[TsSplicer, bytes]:
    sp = TsSplicer()
    out = run(sp, first, chunk)
    for data in rest:
        sp.switch()
        out += run(sp, data, chunk)
    return sp, out + sp.flush()


# ---------------------------------------------------------------- PES helpers


@pytest.mark.parametrize("value", [0, 1, 90_000, PTS_MODULUS - 1, 0x1_2345_6789])
def test_timestamp_round_trip(value: int) -> None:
    field = bytearray(b"\x31\x00\x01\x00\x01")
    write_timestamp(field, 0, value)
    assert read_timestamp(field, 0) == value
    assert field[0] >> 4 == 3  # prefix kept
    assert field[0] & 1
    assert field[2] & 1
    assert field[4] & 1


def test_clock_arithmetic_wraps() -> None:
    assert ts_diff(5, PTS_MODULUS - 5) == 10
    assert ts_diff(PTS_MODULUS - 5, 5) == -10
    assert ts_add(PTS_MODULUS - 1, 2) == 1


def test_timestamp_positions() -> None:
    pes = b"\x00\x00\x01\xe0\x00\x00\x80\xc0\x0a" + bytes(10) + b"data"
    assert timestamp_positions(pes, 0, len(pes)) == (9, 14)
    pes = b"\x00\x00\x01\xc0\x00\x10\x80\x80\x05" + bytes(5) + b"data"
    assert timestamp_positions(pes, 0, len(pes)) == (9, -1)
    pes = b"\x00\x00\x01\xbe\x00\x10" + bytes(20)  # padding stream: no header
    assert timestamp_positions(pes, 0, len(pes)) == (-1, -1)
    assert timestamp_positions(b"\x47" * 30, 0, 30) == (-1, -1)


@pytest.mark.parametrize(
    ("codec", "es", "key"),
    [
        (
            "h264",
            b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x67\x42" + bytes(9) + b"\x00\x00\x01\x65",
            True,
        ),
        ("h264", b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x41\x9a\x00", False),
        ("hevc", b"\x00\x00\x01\x46\x01\x50\x00\x00\x01\x40\x01\x00\x00\x01\x26\x01", True),
        ("hevc", b"\x00\x00\x01\x02\x01\xaa\xbb", False),
        ("mpeg2v", b"\x00\x00\x01\xb3\x14\x00\xf0", True),
        ("mpeg2v", b"\x00\x00\x01\x00\x00\x10\xff", False),  # P-picture
        ("mpeg2v", b"\x00\x00\x01\x00\x00\x08\xff", True),  # I-picture
    ],
)
def test_keyframe_probe(codec: str, es: bytes, key: bool) -> None:
    probe = KeyframeProbe(codec)
    verdict = None
    for i in range(0, len(es), 3):  # spread over several feeds
        verdict = probe.feed(es[i : i + 3])
    verdict = probe.feed(b"\xaa" * 8)
    assert verdict is key


def test_keyframe_probe_uses_random_access_and_gives_up() -> None:
    assert KeyframeProbe("h264", random_access=True).verdict is True
    assert KeyframeProbe("type0x99").verdict is True
    probe = KeyframeProbe("h264")
    assert probe.feed(b"\x00\x00\x01\x06" + bytes(5000)) is False


# ------------------------------------------------------------------- mapping


def test_map_streams_by_codec_order_and_language() -> None:
    session = Pmt(
        1,
        0,
        0x100,
        (
            PmtStream(0x1B, 0x100),
            PmtStream(0x0F, 0x101, bytes([0x0A, 4]) + b"eng\x00"),
            PmtStream(0x0F, 0x102, bytes([0x0A, 4]) + b"fra\x00"),
            PmtStream(0x81, 0x103),
        ),
    )
    backup = Pmt(
        3,
        0,
        0x200,
        (
            PmtStream(0x0F, 0x201, bytes([0x0A, 4]) + b"fra\x00"),
            PmtStream(0x0F, 0x202, bytes([0x0A, 4]) + b"eng\x00"),
            PmtStream(0x24, 0x203),  # HEVC cannot feed the session's H.264 PID
            PmtStream(0x1B, 0x204),
            PmtStream(0x0F, 0x205),
        ),
    )
    assert map_streams(session, backup) == {0x204: 0x100, 0x202: 0x101, 0x201: 0x102}


# ------------------------------------------------------------ first stream


def test_first_stream_defines_the_session() -> None:
    sp, out = splice(synth_ts(A))
    info = packets_of(out)
    assert not cc_errors(info)
    assert info[0].pid == 0
    assert info[1].pid == 0x1000
    assert info[2].pid == 0x100
    assert info[2].pusi
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}
    pat = parse_pat(psi_sections(info, 0)[0])
    assert pat.programs == ((1, 0x1000),)
    pmts = psi_sections(info, 0x1000)
    assert all(mpeg_crc(s) == 0 for s in pmts)
    assert parse_pmt(pmts[0]).streams[1].language == "eng"
    assert video_frames(info, 0x100) == list(range(48))
    assert sp.session_pmt is not None
    assert sp.session_pmt.program_number == 1
    stats = sp.stats
    assert stats.splices == 0
    assert stats.packets_in == len(synth_ts(A)) // PACKET_SIZE
    assert stats.packets_out == len(info)
    assert stats.packets_out == stats.packets_in - stats.packets_dropped + 2  # tables at the cut


def test_first_stream_waits_for_a_keyframe() -> None:
    _, out = splice(synth_ts(SynthSpec(first_frame=3, rai=False)))
    info = packets_of(out)
    assert video_frames(info, 0x100)[0] == 12
    first_audio = next(p for p in info if p.pid == 0x101)
    first_video = next(p for p in info if p.pid == 0x100)
    assert first_audio.pusi
    assert first_video.pts is not None
    assert first_audio.pts is not None
    assert ts_diff(first_audio.pts, first_video.pts) >= 0


def test_extra_pids_and_errored_packets_are_dropped() -> None:
    data = bytearray(synth_ts(SynthSpec(extra_pid=0x11)))
    data[40 * PACKET_SIZE + 1] |= 0x80  # transport_error_indicator
    _, out = splice(bytes(data))
    info = packets_of(out)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}
    assert not any(p.tei for p in info)
    assert not cc_errors(info)


# -------------------------------------------------------------------- splices


def test_switch_remaps_pids_tables_and_continues_counters() -> None:
    sp, out = splice(synth_ts(A), synth_ts(B))
    info = packets_of(out)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}
    assert not cc_errors(info)
    # The PMT the client sees never changes.
    assert len(set(psi_sections(info, 0x1000))) == 1
    assert len(set(psi_sections(info, 0))) == 1
    frames = video_frames(info, 0x100)
    # The old stream's last frame cannot be known complete when it dies: dropped.
    assert frames == list(range(47)) + list(range(12, 53))
    assert sp.stats.splices == 1


def test_timestamps_are_rebased_continuously() -> None:
    _, out = splice(synth_ts(A), synth_ts(B), synth_ts(A))
    info = packets_of(out)
    video = [p.pts for p in by_pid(info, 0x100) if p.pusi]
    assert all(v is not None for v in video)
    steps = {ts_diff(b, a) for a, b in itertools.pairwise(video) if a and b}
    assert steps == {3600}  # one frame per PES, no gap, no overlap
    audio = [p.pts for p in by_pid(info, 0x101) if p.pusi and p.pts is not None]
    assert all(ts_diff(b, a) > 0 for a, b in itertools.pairwise(audio))
    pcrs = [p.pcr for p in info if p.pcr is not None]
    assert all(ts_diff(b, a, PTS_MODULUS * 300) > 0 for a, b in itertools.pairwise(pcrs))
    assert not any(p.discontinuity for p in info)


def test_timestamps_wrap_at_33_bits() -> None:
    near_wrap = SynthSpec(first_pts=PTS_MODULUS - 30 * 3600, frames=24)
    _, out = splice(synth_ts(near_wrap), synth_ts(B))
    info = packets_of(out)
    video = [p.pts for p in by_pid(info, 0x100) if p.pusi]
    assert any(v is not None and v < 90_000 for v in video)  # it did wrap
    assert all(
        a is not None and b is not None and ts_diff(b, a) == 3600
        for a, b in itertools.pairwise(video)
    )


def test_audio_before_the_cut_is_dropped() -> None:
    late_audio = SynthSpec(
        program=2,
        pmt_pid=0x1300,
        streams=(SynthStream(0x400, 0x1B), SynthStream(0x401, 0x0F)),
        first_frame=1,
        audio_lead=-3 * 3600,  # audio trails video by three frames
    )
    _, out = splice(synth_ts(A), synth_ts(late_audio))
    info = packets_of(out)
    cut = [i for i, p in enumerate(info) if p.pid == 0x100 and p.pusi][47]
    key_pts = info[cut].pts
    assert key_pts is not None
    after = [p for p in info[cut:] if p.pid == 0x101 and p.pusi]
    assert after
    assert all(p.pts is not None and ts_diff(p.pts, key_pts) >= 0 for p in after)
    assert not cc_errors(info)


def test_backup_without_audio_pauses_it_and_extra_streams_are_dropped() -> None:
    video_only = SynthSpec(
        program=3,
        pmt_pid=0x1400,
        streams=(SynthStream(0x500, 0x1B), SynthStream(0x501, 0x81)),
        first_pts=77_777,
    )
    _, out = splice(synth_ts(A), synth_ts(video_only), synth_ts(A))
    info = packets_of(out)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}
    assert not cc_errors(info)
    audio = [p.pts for p in by_pid(info, 0x101) if p.pusi and p.pts is not None]
    assert all(ts_diff(b, a) > 0 for a, b in itertools.pairwise(audio))


def test_keyframe_found_from_nal_units_without_random_access_flag() -> None:
    no_rai = SynthSpec(program=4, pmt_pid=0x1500, first_frame=20, rai=False)
    _, out = splice(synth_ts(A), synth_ts(no_rai))
    frames = video_frames(packets_of(out), 0x100)
    assert frames[47] == 24


def test_hevc_session() -> None:
    hevc = (SynthStream(0x100, 0x24), SynthStream(0x101, 0x0F))
    first = SynthSpec(streams=hevc)
    second = SynthSpec(streams=hevc, first_frame=6, rai=False, first_pts=1)
    _, out = splice(synth_ts(first), synth_ts(second))
    info = packets_of(out)
    assert video_frames(info, 0x100)[47] == 12
    assert not cc_errors(info)


def test_garbage_and_partial_packets_between_streams() -> None:
    a = synth_ts(A)
    b = synth_ts(B)
    sp = TsSplicer()
    out = run(sp, a[: 100 * PACKET_SIZE + 77])  # the old stream dies mid-packet
    sp.switch()
    out += run(sp, b"<html>502</html>" + b[5:])  # new stream starts with junk
    out += sp.flush()
    info = packets_of(out)
    assert not cc_errors(info)
    assert sp.stats.resyncs >= 1
    assert sp.stats.bytes_skipped > 0


def test_no_pcr_jump_backwards_when_new_stream_has_longer_mux_delay() -> None:
    deep = SynthSpec(program=5, pmt_pid=0x1600, first_pts=900_000, pcr_delay=150_000)
    _, out = splice(synth_ts(A), synth_ts(deep))
    info = packets_of(out)
    pcrs = [p.pcr for p in info if p.pcr is not None]
    assert all(b > a for a, b in itertools.pairwise(pcrs))
    video = [p.pts for p in by_pid(info, 0x100) if p.pusi and p.pts is not None]
    assert all(ts_diff(b, a) > 0 for a, b in itertools.pairwise(video))


def test_discontinuity_flagged_when_pcr_would_jump_too_far() -> None:
    deep = SynthSpec(program=5, pmt_pid=0x1600, first_pts=900_000, pcr_delay=400_000)
    sp = TsSplicer(max_pcr_gap=90_000)
    out = run(sp, synth_ts(A))
    sp.switch()
    out += run(sp, synth_ts(deep)) + sp.flush()
    info = packets_of(out)
    flagged = [i for i, p in enumerate(info) if p.discontinuity]
    assert len(flagged) == 1
    assert info[flagged[0]].pcr is not None
    assert info[flagged[0]].pid == 0x100


@pytest.mark.parametrize("pcr_pid", [0x301, 0x3FF])
def test_pcr_from_another_pid_is_carried_onto_the_session_pcr_pid(pcr_pid: int) -> None:
    """The backup's PCR rides on its audio PID, or on a PCR-only PID."""
    backup = SynthSpec(
        program=9,
        pmt_pid=0x1200,
        streams=(SynthStream(0x300, 0x1B), SynthStream(0x301, 0x0F, "eng")),
        first_pts=5_000_000,
        pcr_pid=pcr_pid,
    )
    first = packets_of(splice(synth_ts(A))[1])
    _sp, out = splice(synth_ts(A), synth_ts(backup))
    info = packets_of(out)
    assert not cc_errors(info)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}
    tail = info[len(first) :]
    synthetic = [p for p in tail if p.pid == 0x100 and p.pcr is not None and not p.payload]
    assert len(synthetic) >= 40
    pcrs = [p.pcr for p in info if p.pid == 0x100 and p.pcr is not None]
    assert all(b > a for a, b in itertools.pairwise(pcrs))


def test_give_up_without_psi_or_keyframe() -> None:
    sp = TsSplicer(psi_wait_packets=50, keyframe_wait_packets=60)
    run(sp, synth_ts(A))
    sp.switch()
    with pytest.raises(SpliceError, match="PAT/PMT"):
        run(sp, NULL_PACKET * 60)
    assert sp.switching
    no_key = SynthSpec(program=6, pmt_pid=0x1700, first_frame=1, gop=1000)
    with pytest.raises(SpliceError, match="keyframe") as err:
        run(sp, synth_ts(no_key))
    assert isinstance(err.value, MediaError)
    assert not isinstance(err.value, ProviderError), "a splice failure is not the provider's answer"
    assert sp.stats.give_ups == 2


def test_no_common_stream_is_rejected() -> None:
    radio = SynthSpec(program=6, pmt_pid=0x1700, streams=(SynthStream(0x600, 0x24),))
    sp = TsSplicer()
    run(sp, synth_ts(A))
    sp.switch()
    with pytest.raises(SpliceError, match="no elementary stream"):
        run(sp, synth_ts(radio))


def test_null_packets_while_switching() -> None:
    sp = TsSplicer()
    run(sp, synth_ts(A))
    sp.switch()
    assert sp.switching
    assert sp.push(synth_ts(B)[: 10 * PACKET_SIZE]) == b""
    assert sp.null_packets(2) == NULL_PACKET * 2
    assert sp.stats.null_packets == 2


def test_make_before_break_upgrade() -> None:
    a = synth_ts(SynthSpec(frames=72))
    b = synth_ts(B)
    sp = TsSplicer()
    out = run(sp, a[: len(a) // 2])
    sp.prepare()
    assert not sp.switching
    with pytest.raises(RuntimeError):
        sp.commit()
    third = len(b) // 3
    sp.push_candidate(b[:third])
    out += run(sp, a[len(a) // 2 : len(a) * 3 // 4])  # the old stream keeps playing
    sp.push_candidate(b[third : 2 * third])
    assert sp.candidate_ready
    out += run(sp, a[len(a) * 3 // 4 : len(a) * 3 // 4 + 5000])  # held back up to a PES start
    out += sp.commit()
    out += run(sp, b[2 * third :]) + sp.flush()
    info = packets_of(out)
    assert not cc_errors(info)
    frames = video_frames(info, 0x100)
    # The old stream ends on a frame boundary (its last, possibly partial, frame
    # is held back and dropped at the commit); the candidate enters at a keyframe.
    cut = next(i for i, f in enumerate(frames) if f != i)
    assert cut >= 50
    assert frames[cut] % 12 == 0
    video = [p.pts for p in by_pid(info, 0x100) if p.pusi and p.pts is not None]
    assert all(ts_diff(b, a) == 3600 for a, b in itertools.pairwise(video))
    assert sp.stats.splices == 1


def test_cancel_candidate() -> None:
    sp = TsSplicer()
    out = run(sp, synth_ts(A)[: 50 * PACKET_SIZE])
    sp.prepare()
    sp.push_candidate(synth_ts(B))
    sp.cancel()
    assert not sp.candidate_ready
    out += run(sp, synth_ts(A)[50 * PACKET_SIZE :])
    assert not cc_errors(packets_of(out))
    with pytest.raises(RuntimeError):
        sp.push_candidate(b"")


# ---------------------------------------------------------------- properties

STREAMS = (synth_ts(SynthSpec(frames=30)), synth_ts(B), synth_ts(SynthSpec(frames=30, first_pts=3)))
REFERENCE = splice(*STREAMS, chunk=1 << 20)[1]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=60_000), max_size=15),
    st.lists(st.integers(min_value=0, max_value=60_000), max_size=15),
)
def test_chunking_never_changes_the_output(cuts_a: list[int], cuts_b: list[int]) -> None:
    sp = TsSplicer()
    out = bytearray()
    for n, data in enumerate(STREAMS):
        if n:
            sp.switch()
        for chunk in split_at(data, cuts_a if n % 2 == 0 else cuts_b):
            got = sp.push(chunk)
            assert len(got) % PACKET_SIZE == 0
            out += got
    out += sp.flush()
    assert bytes(out) == REFERENCE
    info = packets_of(bytes(out))
    assert not cc_errors(info)
    assert all(mpeg_crc(s) == 0 for s in psi_sections(info, 0x1000) + psi_sections(info, 0))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(STREAMS[0])),
    st.integers(min_value=0, max_value=len(STREAMS[1])),
    st.binary(max_size=400),
    st.integers(min_value=100, max_value=5000),
)
def test_any_cut_points_keep_whole_packets_and_counters(
    end_a: int, start_b: int, junk: bytes, chunk: int
) -> None:
    sp = TsSplicer()
    out = run(sp, STREAMS[0][:end_a], chunk)
    sp.switch()
    out += run(sp, junk + STREAMS[1][start_b:], chunk) + sp.flush()
    info = packets_of(out)
    assert not cc_errors(info)
    pids = {p.pid for p in info}
    assert pids <= {0, 0x1000, 0x100, 0x101} or pids <= {0, 0x1200, 0x300, 0x301}
    assert all(mpeg_crc(s) == 0 for s in psi_sections(info, 0x1000) + psi_sections(info, 0))
    video_pid = 0x100 if 0x1000 in pids else 0x300
    video = [p.pts for p in by_pid(info, video_pid) if p.pusi and p.pts is not None]
    assert all(ts_diff(b, a) > 0 for a, b in itertools.pairwise(video))
    stats = sp.stats
    cuts = stats.splices + 1 if info else 0
    assert stats.packets_out == len(info)
    assert stats.packets_out == stats.packets_in - stats.packets_dropped + 2 * cuts


# ------------------------------------------------------------- real decoders


def ffmpeg_warnings(path: Path) -> str:
    """Everything FFmpeg says at warning level or above while decoding ``path``."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "warning", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.fixture(scope="module")
def real_media(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """Two small H.264/AAC streams: different size, PIDs, program number, tone,
    and B-frames (PTS != DTS) in the first only."""
    where = tmp_path_factory.mktemp("media")
    a = make_ts(where / "a.ts", MediaSpec(seconds=2.4, bframes=2))
    b = make_ts(
        where / "b.ts",
        MediaSpec(
            width=352,
            height=288,
            seconds=2.4,
            service_id=7,
            pmt_pid=0x1100,
            start_pid=0x200,
            tone_hz=660.0,
        ),
    )
    return a.read_bytes(), b.read_bytes()


@pytest.mark.parametrize(
    ("a_end", "b_start", "b_end", "a_again", "chunk"),
    [(0.5, 0.2, 0.75, 0.33, 4096), (0.37, 0.51, 0.93, 0.61, 1000), (0.81, 0.03, 0.47, 0.12, 7777)],
)
def test_real_h264_aac_splice_decodes(
    tmp_path: Path,
    real_media: tuple[bytes, bytes],
    a_end: float,
    b_start: float,
    b_end: float,
    a_again: float,
    chunk: int,
) -> None:
    """Failover A -> B -> A, each old stream dying at an arbitrary byte."""
    da, db = real_media
    sp = TsSplicer()
    out = run(sp, da[: int(len(da) * a_end)], chunk)
    sp.switch()
    out += run(sp, db[int(len(db) * b_start) : int(len(db) * b_end)], chunk)
    sp.switch()
    out += run(sp, da[int(len(da) * a_again) :], chunk) + sp.flush()
    path = tmp_path / "out.ts"
    path.write_bytes(out)

    assert not cc_errors(packets_of(out))
    assert sp.stats.splices == 2
    decoded = decode_ts(path)
    sizes = decoded.video_sizes
    assert sizes[0] == (320, 240)
    assert (352, 288) in sizes
    assert sizes[-1] == (320, 240)  # back on A after B
    switches = sum(1 for x, y in itertools.pairwise(sizes) if x != y)
    assert switches == 2
    assert all(y > x for x, y in zip(decoded.video_pts, decoded.video_pts[1:], strict=False))
    assert all(y > x for x, y in zip(decoded.audio_pts, decoded.audio_pts[1:], strict=False))
    # Both streams keep decoding after the last switch.
    assert decoded.video_pts[-1] > decoded.video_pts[0] + 2.0
    assert decoded.audio_pts[-1] > decoded.video_pts[-1] - 0.5

    # The old streams end on whole frames (held back until the next frame
    # starts), so not even FFmpeg's demuxer and decoders have a warning.
    assert decoded.errors == 0
    assert ffmpeg_warnings(path) == ""


# ------------------------------------------------- PCR PIDs and PSI changes


def audio_frames(info: list[PacketInfo], pid: int) -> list[int]:
    """The frame number each audio PES carries (its last payload byte)."""
    return video_frames(info, pid)


def test_session_with_a_pcr_only_pid() -> None:
    own_pcr = SynthSpec(pcr_pid=0x1FF)
    backup_own_pcr = SynthSpec(
        program=9,
        pmt_pid=0x1200,
        streams=(SynthStream(0x300, 0x1B), SynthStream(0x301, 0x0F, "eng")),
        first_pts=5_000_000,
        pcr_pid=0x3FF,
    )
    sp, out = splice(synth_ts(own_pcr), synth_ts(B), synth_ts(backup_own_pcr))
    info = packets_of(out)
    assert not cc_errors(info)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101, 0x1FF}
    pcrs = [p.pcr for p in info if p.pid == 0x1FF and p.pcr is not None]
    assert len(pcrs) >= 3 * 40
    assert all(b > a for a, b in itertools.pairwise(pcrs))
    assert not any(p.pcr is not None for p in info if p.pid == 0x100 and p.payload is False)
    assert sp.stats.splices == 2


def test_pmt_change_in_the_current_stream_is_followed() -> None:
    before = synth_ts(SynthSpec(frames=24))
    moved = SynthSpec(
        streams=(SynthStream(0x100, 0x1B), SynthStream(0x105, 0x0F, "eng")),
        first_frame=24,
    )
    sp = TsSplicer()
    out = run(sp, before + synth_ts(moved)) + sp.flush()
    info = packets_of(out)
    assert not cc_errors(info)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}
    frames = audio_frames(info, 0x101)
    assert frames[:24] == list(range(24))
    assert frames[-1] == 71  # audio from the moved PID arrives on the session's PID
    assert len(set(psi_sections(info, 0x1000))) == 1  # clients see the same PMT


def test_pmt_pid_change_in_the_current_stream_is_followed() -> None:
    before = synth_ts(SynthSpec(frames=24))
    after = synth_ts(SynthSpec(pmt_pid=0x1010, first_frame=24))
    sp = TsSplicer()
    out = run(sp, before + after) + sp.flush()
    info = packets_of(out)
    assert not cc_errors(info)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}
    second_half = info[len(info) // 2 :]
    assert sum(1 for p in second_half if p.pid == 0x1000) >= 3


def test_candidate_survives_a_failover_and_can_end_it() -> None:
    a = synth_ts(A)
    b = synth_ts(B)
    sp = TsSplicer()
    out = run(sp, a[: len(a) // 2])
    sp.prepare()
    sp.push_candidate(b[: len(b) // 2])
    sp.switch()  # the old stream died while the candidate was being probed
    assert sp.switching
    assert sp.push(synth_ts(SynthSpec(program=3, first_frame=1))[: 9 * PACKET_SIZE]) == b""
    assert sp.candidate_ready
    out += sp.commit()
    assert not sp.switching
    out += run(sp, b[len(b) // 2 :]) + sp.flush()
    info = packets_of(out)
    assert not cc_errors(info)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}
    video = [p.pts for p in by_pid(info, 0x100) if p.pusi and p.pts is not None]
    assert all(ts_diff(b, a) > 0 for a, b in itertools.pairwise(video))


def test_candidate_prepared_before_the_session_exists_is_remapped() -> None:
    sp = TsSplicer()
    sp.prepare()
    sp.push_candidate(synth_ts(B)[: 30 * PACKET_SIZE])
    out = run(sp, synth_ts(A))  # the first stream defines the session
    assert sp.session_pmt is not None
    assert sp.session_pmt.program_number == 1
    sp.push_candidate(synth_ts(B)[30 * PACKET_SIZE :])
    assert sp.candidate_ready
    out += sp.commit() + sp.flush()
    info = packets_of(out)
    assert not cc_errors(info)
    assert {p.pid for p in info} == {0, 0x1000, 0x100, 0x101}


def test_real_make_before_break_is_clean(tmp_path: Path) -> None:
    """Upgrades (A -> B -> A) cut on frame boundaries: the decoders report nothing."""
    a = make_ts(tmp_path / "a.ts", MediaSpec(seconds=2.4)).read_bytes()
    b = make_ts(
        tmp_path / "b.ts",
        MediaSpec(width=352, height=288, seconds=2.4, service_id=3, start_pid=0x200),
    ).read_bytes()
    sp = TsSplicer()
    out = run(sp, a[: len(a) // 3], 4096)
    sp.prepare()
    old, new = len(a) // 3, 0
    while not sp.candidate_ready:
        sp.push_candidate(b[new : new + 2000])
        new += 2000
        out += sp.push(a[old : old + 2000])
        old += 2000
    out += run(sp, a[old : old + 30_000], 3000)  # the old stream keeps playing a while
    out += sp.commit()
    out += run(sp, b[new : new + len(b) // 3], 4096)
    sp.prepare()
    new += len(b) // 3
    old = len(a) // 2
    while not sp.candidate_ready:
        sp.push_candidate(a[old : old + 2000])
        old += 2000
        out += sp.push(b[new : new + 2000])
        new += 2000
    out += sp.commit()
    out += run(sp, a[old:], 4096) + sp.flush()
    path = tmp_path / "out.ts"
    path.write_bytes(out)
    assert not cc_errors(packets_of(out))
    assert sp.stats.splices == 2
    decoded = decode_ts(path)
    assert decoded.errors == 0
    assert sum(1 for x, y in itertools.pairwise(decoded.video_sizes) if x != y) == 2
    assert all(y > x for x, y in itertools.pairwise(decoded.video_pts))
    assert all(y > x for x, y in itertools.pairwise(decoded.audio_pts))
    assert ffmpeg_warnings(path) == ""


def test_hold_back_lets_other_streams_flow_when_video_pauses() -> None:
    data = synth_ts(SynthSpec(frames=400, video_bytes=100))
    half = len(data) // 2 // PACKET_SIZE * PACKET_SIZE
    rest = b"".join(
        data[i : i + PACKET_SIZE]
        for i in range(half, len(data), PACKET_SIZE)
        if (data[i + 1] & 0x1F, data[i + 2]) != (0x01, 0x00)  # the video PID pauses
    )
    sp = TsSplicer()
    out = run(sp, data[:half] + rest)  # no flush: only what is released on the way
    audio_in = sum(1 for p in packets_of(data[:half] + rest) if p.pid == 0x101)
    audio_out = sum(1 for p in packets_of(out) if p.pid == 0x101)
    assert audio_in - audio_out <= 100
    assert audio_in - 100 > sum(1 for p in packets_of(data[:half]) if p.pid == 0x101)
    assert not cc_errors(packets_of(out))


def test_keyframe_without_pts_flags_a_discontinuity() -> None:
    data = bytearray(synth_ts(B))
    info = packets_of(bytes(data))
    key = [n for n, p in enumerate(info) if p.pid == 0x300 and p.pusi][12 - B.first_frame]
    pos = key * PACKET_SIZE
    start = pos + 5 + data[pos + 4]
    assert data[start : start + 3] == b"\x00\x00\x01"
    data[start + 7] = 0x00  # PTS_DTS_flags = 00: the five header bytes become stuffing
    sp = TsSplicer()
    out = run(sp, synth_ts(A))
    sp.switch()
    out += run(sp, bytes(data)) + sp.flush()
    got = packets_of(out)
    assert not cc_errors(got)
    flagged = [p for p in got if p.discontinuity]
    assert len(flagged) == 1
    assert flagged[0].pid == 0x100
    assert flagged[0].pcr is not None
    # Not rebased: the backup's own timestamps follow the flag.
    later = [p.pts for p in got if p.pid == 0x100 and p.pts is not None]
    assert later[-1] == B.first_pts + (B.first_frame + B.frames - 1) * B.frame_ticks


def test_audio_only_session() -> None:
    radio = SynthSpec(streams=(SynthStream(0x101, 0x0F, "eng"),), pcr_pid=0x101)
    other = SynthSpec(
        program=4,
        pmt_pid=0x1400,
        streams=(SynthStream(0x401, 0x0F, "eng"),),
        pcr_pid=0x401,
        first_pts=999_999,
        first_frame=3,
    )
    sp, out = splice(synth_ts(radio), synth_ts(other))
    info = packets_of(out)
    assert not cc_errors(info)
    assert {p.pid for p in info} == {0, 0x1000, 0x101}
    pts = [p.pts for p in info if p.pid == 0x101 and p.pts is not None]
    assert len(pts) == 48 + 48 - 1  # the old stream's last PES could not be known whole
    assert all(ts_diff(b, a) == 3600 for a, b in itertools.pairwise(pts))
    assert sp.stats.splices == 1


def test_counters_with_many_pids_and_a_huge_push() -> None:
    """More output PIDs than one counting word holds, and more packets per push
    than one counting field holds."""
    tracks = tuple(SynthStream(0x101 + i, 0x0F, c * 3) for i, c in enumerate("abcdefg"))
    many = SynthSpec(streams=(SynthStream(0x100, 0x1B), *tracks), frames=24, video_bytes=2000)
    huge = SynthSpec(
        program=2,
        pmt_pid=0x1300,
        streams=(SynthStream(0x200, 0x1B), *(SynthStream(s.pid + 0x100, 0x0F) for s in tracks)),
        frames=200,
        video_bytes=33_000,
        first_pts=10**6,
    )
    first = synth_ts(many)
    second = synth_ts(huge)
    assert len(second) // PACKET_SIZE > 1 << 15
    sp = TsSplicer()
    out = run(sp, first)
    sp.switch()
    out += sp.push(second) + sp.flush()
    info = packets_of(out)
    assert not cc_errors(info)
    assert {p.pid for p in info} == {0, 0x1000, 0x100} | {s.pid for s in tracks}

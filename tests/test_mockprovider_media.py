"""Mock provider media: real H.264/AAC TS, per-profile identifiers, seamless endless loop."""

from __future__ import annotations

import io
from collections import defaultdict

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.errors import ConfigError
from streamforge.mockprovider import clip as clip_mod
from streamforge.mockprovider import media as media_mod
from streamforge.mockprovider.media import TS_PACKET, MediaLibrary, MediaProfile
from tests.mockfixtures import cc_errors, psi


def test_profile_validation() -> None:
    with pytest.raises(ConfigError, match="AAC"):
        MediaProfile("bad", 320, 240, loop_frames=241)
    with pytest.raises(ConfigError, match="even"):
        MediaProfile("odd", 321, 240)
    with pytest.raises(ConfigError, match="mux_rate"):
        MediaProfile("tight", 320, 240, video_bitrate=2_000_000, mux_rate=1_000_000)


def test_profiles_differ_in_ids_and_pictures(mock_media: MediaLibrary) -> None:
    seen_programs = set()
    seen_pmts = set()
    sizes = set()
    for name, profile in mock_media.profiles.items():
        clip = mock_media.load_sync(name)
        program, pmt, pids = psi(clip.data)
        assert (program, pmt) == (profile.service_id, profile.pmt_pid)
        assert pids == {profile.video_pid, profile.audio_pid}
        seen_programs.add(program)
        seen_pmts.add(pmt)
        sizes.add((profile.width, profile.height))
    assert len(seen_programs) == len(mock_media.profiles)
    assert len(seen_pmts) == len(mock_media.profiles)
    assert len(sizes) >= 3


@pytest.mark.parametrize("name", ["sd", "fhd"])
def test_clip_is_real_h264_and_aac(mock_media: MediaLibrary, name: str) -> None:
    clip = mock_media.load_sync(name)
    profile = clip.profile
    with av.open(io.BytesIO(clip.data), format="mpegts") as container:
        codecs = {s.type: s.codec_context.name for s in container.streams}
        assert codecs == {"video": "h264", "audio": "aac"}
        video = container.streams.video[0]
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == 30:
                break
        assert (frames[0].width, frames[0].height) == (profile.width, profile.height)
        assert video.id == profile.video_pid
    with av.open(io.BytesIO(clip.data), format="mpegts") as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.sample_rate == 48_000
        decoded = sum(f.samples for _, f in zip(range(20), container.decode(audio=0), strict=False))
        assert decoded == 20 * 1024


def test_byte_rate_matches_mux_rate(mock_media: MediaLibrary) -> None:
    for name in mock_media.profiles:
        clip = mock_media.load_sync(name)
        assert clip.byte_rate * 8 == pytest.approx(clip.profile.mux_rate, rel=0.02)
    assert mock_media.load_sync("high").byte_rate * 8 >= 7_500_000


def test_entry_points_start_with_pat_before_a_keyframe(mock_media: MediaLibrary) -> None:
    clip = mock_media.load_sync("hd")
    assert len(clip.entry_points) >= clip.period - 1  # one per second (GOP 1 s)
    for offset in clip.entry_points[:4]:
        pkt = clip.data[int(offset) : int(offset) + TS_PACKET]
        assert ((pkt[1] & 0x1F) << 8 | pkt[2]) == 0


def test_loop_seam_keeps_counters_and_timestamps_continuous(mock_media: MediaLibrary) -> None:
    clip = mock_media.load_sync("sd")
    size = clip.loop_bytes
    seam = clip.read(size - 3000 * TS_PACKET, size * 2 + 3000 * TS_PACKET)
    assert cc_errors(seam) == 0
    # Start at an entry point so the demuxer sees PAT/PMT and a keyframe first.
    start = clip.entry_points[-2]
    data = clip.read(int(start), size + 4 * TS_PACKET * 1000)
    last: dict[int, int] = defaultdict(lambda: -1)
    with av.open(io.BytesIO(data), format="mpegts") as container:
        for packet in container.demux():
            if packet.pts is None:
                continue
            index = packet.stream.index
            assert packet.pts > last[index]
            last[index] = packet.pts
    assert all(v > 0 for v in last.values())


@settings(max_examples=25, deadline=None)
@given(
    loop=st.integers(min_value=0, max_value=2_000_000),
    a=st.integers(min_value=0, max_value=6000),
    length=st.integers(min_value=0, max_value=3000),
)
def test_render_of_a_range_equals_slice_of_the_whole_loop(
    mock_media: MediaLibrary, loop: int, a: int, length: int
) -> None:
    clip = mock_media.load_sync("sd")
    packets = clip.loop_bytes // TS_PACKET
    a = min(a, packets)
    b = min(a + length, packets)
    whole = clip.render(loop, 0, clip.loop_bytes)
    assert clip.render(loop, a * TS_PACKET, b * TS_PACKET) == whole[a * TS_PACKET : b * TS_PACKET]


def test_render_shifts_timestamps_by_whole_loops(mock_media: MediaLibrary) -> None:
    clip = mock_media.load_sync("sd")
    index = clip.index
    off = int(index.ts_offsets[0])
    for loop in (1, 7, 123_456):
        data = clip.render(loop, 0, clip.loop_bytes)
        got = clip_mod._read_ts(data, off)
        expected = (int(index.ts_values[0]) + loop * clip.profile.period_90k) % (1 << 33)
        assert got == expected


def test_pts_offset_shifts_every_timestamp(mock_media: MediaLibrary) -> None:
    clip = mock_media.load_sync("sd")
    index = clip.index
    plain = clip.render(2, 0, clip.loop_bytes)
    shifted = clip.read(2 * clip.loop_bytes, 3 * clip.loop_bytes, pts_offset=12_345)
    for off, pcr_off in zip(index.ts_offsets[:50], index.pcr_offsets[:50], strict=True):
        delta = clip_mod._read_ts(shifted, int(off)) - clip_mod._read_ts(plain, int(off))
        assert delta == 12_345
        pcr_delta = clip_mod._read_pcr_base(shifted, int(pcr_off)) - clip_mod._read_pcr_base(
            plain, int(pcr_off)
        )
        assert pcr_delta == 12_345
    assert clip_mod.pts_offset_for(101) != clip_mod.pts_offset_for(102)
    assert all(clip_mod.pts_offset_for(i) < 1 << 32 for i in range(1, 2000))


def test_render_rejects_unaligned_ranges(mock_media: MediaLibrary) -> None:
    clip = mock_media.load_sync("sd")
    with pytest.raises(ValueError, match="aligned"):
        clip.render(1, 5, 188)


def test_disk_cache_is_reused(mock_media: MediaLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_encoding(*_args: object) -> None:
        raise AssertionError("a cached profile was encoded again")

    monkeypatch.setattr(media_mod, "encode_clip", no_encoding)
    again = MediaLibrary(mock_media.cache_dir)
    assert again.load_sync("sd").data == mock_media.load_sync("sd").data


def test_unknown_profile_is_a_config_error(mock_media: MediaLibrary) -> None:
    with pytest.raises(ConfigError, match="unknown media profile"):
        mock_media.profile("nope")

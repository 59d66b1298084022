"""Tests for streamforge.streaming.health: the detectors on synthetic samples, and the
sampler on real H.264 + AAC transport streams encoded with PyAV."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pytest

from streamforge.streaming.health import (
    BlackPicture,
    ComponentWatch,
    ContentReason,
    ContentSampler,
    DecodeWatch,
    FrozenPicture,
    HealthConfig,
    SilentAudio,
    downscale_luma,
    rms_dbfs,
)
from streamforge.streaming.health.decode import decode_level, decode_picture, elementary_stream
from streamforge.ts.packets import PACKET_SIZE, packet_pid
from tests.tsmedia import MediaSpec, make_ts

RNG = np.random.default_rng(11)


def thumb(level: float, noise: float = 0.0) -> npt.NDArray[np.float32]:
    base = np.full((36, 64), level, dtype=np.float32)
    return (base + RNG.normal(0.0, noise, base.shape)).astype(np.float32) if noise else base


def scene(n: int) -> npt.NDArray[np.float32]:
    """A moving picture: a bright bar sweeping over a mid-grey background."""
    img = np.full((36, 64), 110.0, dtype=np.float32)
    img[:, (n * 5) % 64 : (n * 5) % 64 + 8] = 220.0
    return img


# ---------------------------------------------------------------- picture


def test_downscale_is_a_block_mean_for_any_size() -> None:
    plane = np.zeros((1080, 1920), dtype=np.uint8)
    plane[:540] = 200
    small = downscale_luma(plane)
    assert small.shape == (36, 64)
    assert np.allclose(small[:18], 200)
    assert np.allclose(small[18:], 0)
    odd = downscale_luma(np.full((181, 321), 77, dtype=np.uint8))
    assert odd.shape == (36, 64)
    assert np.allclose(odd, 77)
    tiny = downscale_luma(np.full((20, 30), 5, dtype=np.uint8))
    assert tiny.shape == (36, 64)
    assert np.allclose(tiny, 5)


def test_black_picture_is_flagged_after_black_seconds() -> None:
    black = BlackPicture(seconds=8.0)
    verdicts = [black.update(thumb(16.0, 1.0), float(t)) for t in range(12)]
    assert all(v is None for v in verdicts[:8])
    first = verdicts[8]
    assert first is not None
    assert first.reason is ContentReason.BLACK_PICTURE
    assert first.seconds == 8.0
    assert first.since == 0.0
    assert verdicts[11] is not None
    assert verdicts[11].seconds == 11.0


def test_black_with_a_small_logo_is_still_black_but_a_dark_scene_is_not() -> None:
    black = BlackPicture()
    logo = thumb(18.0)
    logo[1:4, 55:62] = 235.0  # 21 of 2304 blocks
    assert black.is_black(logo)
    night = thumb(18.0)
    night[20:, :] = 60.0  # a dim but visible lower half
    assert not black.is_black(night)
    assert black.is_black(thumb(3.0), full_range=True)
    assert not black.is_black(thumb(40.0), full_range=True)


def test_fade_to_black_of_two_seconds_is_not_flagged() -> None:
    black = BlackPicture(seconds=8.0)
    t = 0.0
    for cycle in range(5):  # programme, fade, 2 s black, programme again
        for n in range(6):
            assert black.update(scene(n + cycle), t) is None
            t += 1.0
        for level in (80.0, 40.0, 16.0, 16.0):
            assert black.update(thumb(level, 0.5), t) is None
            t += 1.0


def test_frozen_picture_is_flagged_after_frozen_seconds() -> None:
    frozen = FrozenPicture(seconds=10.0)
    still = scene(3)
    noisy = [(still + RNG.normal(0, 0.2, still.shape)).astype(np.float32) for _ in range(13)]
    out = [frozen.update(noisy[t], float(t)) for t in range(13)]
    assert all(v is None for v in out[:10])
    verdict = out[10]
    assert verdict is not None
    assert verdict.reason is ContentReason.FROZEN_PICTURE
    assert verdict.seconds == 10.0
    assert verdict.since == 0.0


def test_still_scene_of_three_seconds_is_not_flagged() -> None:
    frozen = FrozenPicture(seconds=10.0)
    t = 0.0
    for k in range(6):
        for _ in range(4):  # a held shot for 3 s (4 equal samples)
            assert frozen.update(scene(k), t) is None
            t += 1.0
        for n in range(5):
            assert frozen.update(scene(100 + n + 7 * k), t) is None
            t += 1.0


def test_static_slate_with_text_is_frozen() -> None:
    slate = np.full((36, 64), 30.0, dtype=np.float32)
    slate[:, ::9] = 200.0  # bars
    slate[15:20, 10:54] = np.where(np.arange(44) % 3 == 0, 235.0, 30.0)  # "text"
    frozen = FrozenPicture(seconds=10.0)
    black = BlackPicture()
    verdict = None
    for t in range(15):
        assert not black.is_black(slate)
        verdict = frozen.update(slate + RNG.normal(0, 0.3, slate.shape).astype(np.float32), t)
    assert verdict is not None
    assert verdict.reason is ContentReason.FROZEN_PICTURE
    assert verdict.seconds == 14.0


def test_a_moving_picture_is_never_frozen() -> None:
    frozen = FrozenPicture(seconds=2.0)
    assert all(frozen.update(scene(n), float(n)) is None for n in range(30))


# ---------------------------------------------------------------- sound


def tone(db: float, seconds: float = 1.0, rate: int = 48_000) -> npt.NDArray[np.float32]:
    t = np.arange(int(rate * seconds)) / rate
    amplitude = np.sqrt(2.0) * 10.0 ** (db / 20.0)  # a sine's RMS is amplitude / sqrt 2
    wave = (amplitude * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    return np.stack([wave, wave])


def test_rms_dbfs_of_known_signals() -> None:
    assert rms_dbfs(tone(-20.0)) == pytest.approx(-20.0, abs=0.05)
    assert rms_dbfs(np.zeros(1000, dtype=np.float32)) == -120.0
    assert rms_dbfs(np.zeros(0, dtype=np.float32)) == -120.0
    full = np.array([32767, -32767] * 100, dtype=np.int16)
    assert rms_dbfs(full) == pytest.approx(0.0, abs=0.01)


def test_silence_is_flagged_after_silence_seconds() -> None:
    silent = SilentAudio(seconds=15.0)
    dither = RNG.normal(0.0, 1e-4, (2, 48_000)).astype(np.float32)  # about -80 dBFS
    out = [silent.update(dither, float(t)) for t in range(17)]
    assert all(v is None for v in out[:15])
    verdict = out[15]
    assert verdict is not None
    assert verdict.reason is ContentReason.SILENT_AUDIO
    assert verdict.seconds == 15.0


def test_quiet_but_not_silent_audio_is_not_flagged() -> None:
    silent = SilentAudio(seconds=5.0)
    for t in range(30):
        assert silent.update(tone(-50.0 if t % 2 else -45.0), float(t)) is None
    # a short pause inside quiet speech is not 15 s of silence either
    silent = SilentAudio(seconds=15.0)
    for t in range(40):
        level = tone(-90.0) if t % 10 < 4 else tone(-42.0)
        assert silent.update(level, float(t)) is None


# ---------------------------------------------------------------- components


def test_component_gone_while_the_rest_flows() -> None:
    watch = ComponentWatch(seconds=3.0)
    watch.set_program([0x100], [0x101, 0x102], 0.0)
    both = np.array([0x100, 0x101, 0x100, 0x11], dtype=np.int32)
    video_only = np.array([0x100, 0x100, 0x0], dtype=np.int32)
    for k in range(10):
        watch.arrived(both, k * 0.1)
    assert watch.check() == []
    for k in range(10, 50):
        watch.arrived(video_only, k * 0.1)
    (verdict,) = watch.check()
    assert verdict.reason is ContentReason.NO_AUDIO
    assert verdict.seconds == pytest.approx(4.0)
    assert verdict.since == pytest.approx(0.9)
    # the second audio track alone keeps audio alive
    watch.arrived(np.array([0x102], dtype=np.int32), 5.0)
    assert watch.check() == []


def test_a_total_stall_is_not_reported_as_components_gone() -> None:
    watch = ComponentWatch(seconds=3.0)
    watch.set_program([0x100], [0x101], 0.0)
    watch.arrived(np.array([0x100, 0x101], dtype=np.int32), 1.0)
    # nothing arrives any more: that is the byte-stall timeout's business
    assert watch.check() == []


def test_radio_program_never_reports_no_video() -> None:
    watch = ComponentWatch(seconds=3.0)
    watch.set_program([], [0x101], 0.0)
    for k in range(100):
        watch.arrived(np.array([0x101, 0x0], dtype=np.int32), k * 0.1)
    assert watch.check() == []


def test_component_timers_restart_when_the_program_changes() -> None:
    watch = ComponentWatch(seconds=3.0)
    watch.set_program([0x100], [0x101], 0.0)
    for k in range(20):
        watch.arrived(np.array([0x100, 0x101], dtype=np.int32), k * 0.1)
    watch.set_program([0x200], [0x101], 2.0)  # new video PID
    for k in range(20, 40):
        watch.arrived(np.array([0x101, 0x200], dtype=np.int32), k * 0.1)
    assert watch.check() == []


def test_undecodable_after_failures_for_the_window() -> None:
    watch = DecodeWatch(seconds=6.0)
    assert watch.update(False, 0.0) is None
    assert watch.update(True, 1.0) is None
    results = [watch.update(False, float(t)) for t in range(2, 10)]
    assert all(v is None for v in results[:6])
    verdict = results[6]
    assert verdict is not None
    assert verdict.reason is ContentReason.UNDECODABLE
    assert verdict.seconds == 6.0
    # one failure spanning the window is not enough evidence
    single = DecodeWatch(seconds=1.0)
    assert single.update(False, 0.0) is None


# ---------------------------------------------------------------- real media

SHORT = HealthConfig(
    black_seconds=3.0,
    frozen_seconds=3.0,
    silence_seconds=3.0,
    component_seconds=1.5,
    undecodable_seconds=2.0,
    max_pending=64,
)
SECONDS = 6.0


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    where = tmp_path_factory.mktemp("health-media")
    specs = {
        "moving": MediaSpec(width=320, height=180, seconds=SECONDS, gop=25),
        "black": MediaSpec(width=320, height=180, seconds=SECONDS, gop=25, picture="black"),
        "still": MediaSpec(width=320, height=180, seconds=SECONDS, gop=25, picture="still"),
        "silent": MediaSpec(width=320, height=180, seconds=SECONDS, gop=25, tone_level=0.0),
        "quiet": MediaSpec(width=320, height=180, seconds=SECONDS, gop=25, tone_level=0.005),
    }
    return {name: make_ts(where / f"{name}.ts", spec).read_bytes() for name, spec in specs.items()}


def play(sampler: ContentSampler, data: bytes, *, chunk: int = 16_384) -> float:
    """Feed ``data`` in chunks as if it arrived in real time over SECONDS; returns the end."""
    now = 0.0
    for at in range(0, len(data), chunk):
        now = SECONDS * (at + chunk) / len(data)
        sampler.feed(data[at : at + chunk], now)
    return now


def verdicts_of(data: bytes, config: HealthConfig = SHORT) -> tuple[set[str], ContentSampler]:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-test") as pool:
        sampler = ContentSampler(config=config, executor=pool)
        end = play(sampler, data)
    # leaving the with block waited for every decode job to finish
    reasons = {str(v.reason) for v in sampler.poll(end)}
    return reasons, sampler


def test_a_healthy_clip_has_no_verdicts(clips: dict[str, bytes]) -> None:
    reasons, sampler = verdicts_of(clips["moving"])
    assert reasons == set()
    stats = sampler.stats
    assert stats.pictures_decoded >= 5
    assert stats.levels_decoded >= 4
    assert stats.picture_failures == stats.level_failures == stats.samples_dropped == 0
    assert sampler.program is not None


def test_black_clip_is_black_not_frozen(clips: dict[str, bytes]) -> None:
    reasons, _ = verdicts_of(clips["black"])
    assert reasons == {"black_picture"}


def test_still_slate_clip_is_frozen(clips: dict[str, bytes]) -> None:
    reasons, _ = verdicts_of(clips["still"])
    assert reasons == {"frozen_picture"}


def test_silent_clip_is_silent_and_a_quiet_one_is_not(clips: dict[str, bytes]) -> None:
    assert verdicts_of(clips["silent"])[0] == {"silent_audio"}
    assert verdicts_of(clips["quiet"])[0] == set()


def test_decoding_runs_off_the_calling_thread(clips: dict[str, bytes]) -> None:
    _, sampler = verdicts_of(clips["moving"])
    assert sampler.stats.decoded_on
    assert all(name.startswith("health-test") for name in sampler.stats.decoded_on)
    assert threading.current_thread().name not in sampler.stats.decoded_on


def test_own_worker_thread_and_polling_until_done(clips: dict[str, bytes]) -> None:
    sampler = ContentSampler(config=SHORT)
    try:
        end = play(sampler, clips["black"])
        deadline = time.monotonic() + 30.0
        reasons: set[str] = set()
        while time.monotonic() < deadline:
            reasons = {str(v.reason) for v in sampler.poll(end)}
            if not sampler.pending:
                break
            time.sleep(0.01)  # waiting on the worker: the condition is checked each round
        assert reasons == {"black_picture"}
        assert all(n.startswith("streamforge-health") for n in sampler.stats.decoded_on)
    finally:
        sampler.close()


def _without_pid(data: bytes, pid: int, after: float) -> bytes:
    cut = int(len(data) * after) // PACKET_SIZE * PACKET_SIZE
    tail = b"".join(
        data[i : i + PACKET_SIZE]
        for i in range(cut, len(data), PACKET_SIZE)
        if packet_pid(data, i) != pid
    )
    return data[:cut] + tail


def test_audio_pid_that_stops_is_no_audio(clips: dict[str, bytes]) -> None:
    data = clips["moving"]
    reasons, _ = verdicts_of(_without_pid(data, 0x101, 0.4))
    assert reasons == {"no_audio"}


def test_video_pid_that_stops_is_no_video(clips: dict[str, bytes]) -> None:
    reasons, _ = verdicts_of(_without_pid(clips["moving"], 0x100, 0.4))
    assert reasons == {"no_video"}


def _break_sps(data: bytes) -> bytes:
    """Turn every H.264 SPS into an unspecified NAL type: no picture can decode."""
    buf = bytearray(data)
    for i in range(0, len(buf), PACKET_SIZE):
        if packet_pid(buf, i) == 0x100:
            packet = buf[i : i + PACKET_SIZE]
            buf[i : i + PACKET_SIZE] = packet.replace(b"\x00\x00\x01\x67", b"\x00\x00\x01\x7f")
    return bytes(buf)


def test_video_that_does_not_decode_is_undecodable(clips: dict[str, bytes]) -> None:
    reasons, sampler = verdicts_of(_break_sps(clips["moving"]))
    assert reasons == {"undecodable"}
    assert sampler.stats.picture_failures >= 3
    assert sampler.stats.pictures_decoded == 0


def test_samples_are_dropped_and_counted_when_the_worker_is_behind(
    clips: dict[str, bytes],
) -> None:
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(gate.wait)  # the worker is busy until the gate opens
        sampler = ContentSampler(config=HealthConfig(max_pending=1), executor=pool)
        play(sampler, clips["moving"])
        dropped = sampler.stats.samples_dropped
        gate.set()
    assert dropped >= 5
    assert sampler.stats.pictures_submitted + sampler.stats.levels_submitted == 1


def test_elementary_stream_strips_ts_and_pes_headers(clips: dict[str, bytes]) -> None:
    data = clips["moving"]
    audio = b"".join(
        data[i : i + PACKET_SIZE]
        for i in range(0, len(data), PACKET_SIZE)
        if packet_pid(data, i) == 0x101
    )
    es = elementary_stream(audio)
    assert es[:2] == b"\xff\xf1"  # an ADTS header right after the first PES header
    level = decode_level("aac", audio)
    assert level.ok
    assert level.level_db is not None
    assert level.level_db == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=1.0)
    assert elementary_stream(b"") == b""
    bad = decode_picture("h264", b"")
    assert not bad.ok
    assert bad.thumb is None


def test_keyframes_are_spaced_out_to_stay_within_the_cpu_budget(clips: dict[str, bytes]) -> None:
    data = clips["moving"]
    third = len(data) // 3 // PACKET_SIZE * PACKET_SIZE
    with ThreadPoolExecutor(max_workers=1) as pool:
        sampler = ContentSampler(config=HealthConfig(picture_cpu_budget=1e-9), executor=pool)
        assert sampler.picture_interval == 1.0  # no decode cost known yet
        sampler.feed(data[:third], SECONDS / 3)
        deadline = time.monotonic() + 30.0
        while not sampler.stats.pictures_decoded and time.monotonic() < deadline:
            sampler.poll(SECONDS / 3)
            time.sleep(0.01)  # waiting on the worker: the condition is checked each round
        assert sampler.picture_interval > 1000.0  # a real decode cost over a tiny budget
        for at in range(third, len(data), 16_384):
            sampler.feed(data[at : at + 16_384], SECONDS * (at + 16_384) / len(data))
    sampler.poll(SECONDS)
    assert sampler.stats.pictures_submitted == 1
    unbounded = ContentSampler(config=HealthConfig(picture_cpu_budget=0.0))
    assert unbounded.picture_interval == 1.0
    unbounded.close()

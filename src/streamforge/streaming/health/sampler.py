"""The content sampler of one channel: cheap collection on the loop, decoding in a worker.

Theory of operation
-------------------
:meth:`ContentSampler.feed` is called from the event loop with every chunk of
the channel's current upstream and the caller's ``now``.  It must stay cheap
there, so it only *collects*: a handful of NumPy column operations per chunk
(PID column, packet arrivals per PID for :class:`ComponentWatch`) and, for
the few packets that matter, row copies into bounded buffers:

* **video**: once per :attr:`ContentSampler.picture_interval` (the
  ``sample_interval``, stretched when keyframes are so costly to decode
  that the ``picture_cpu_budget`` would be exceeded), the next PES of the video PID that
  starts with a keyframe (:class:`~streamforge.ts.pes.KeyframeProbe`, fed only
  until it decides, usually on the first packet) is captured whole - up to
  ``max_access_unit`` bytes - and handed to the worker when the next PES
  starts;
* **audio**: the packets of the audio PID are gathered for one
  ``sample_interval`` window (at most 1 MB) and handed over as one job.

Jobs run on a :class:`concurrent.futures.Executor` (passed in, or a private
single worker thread): :func:`~.decode.decode_picture` and
:func:`~.decode.decode_level` are self-contained, with a fresh decoder each.
At most ``max_pending`` jobs are in flight; a sample due while the worker is
behind is dropped and counted in :attr:`SamplerStats.samples_dropped`.

:meth:`poll` (also on the loop, with ``now``) collects the finished jobs in
order, feeds their thumbnails and levels to the detectors (black, frozen,
silent, undecodable; each only numpy on 64x36 values) and returns the
verdicts that hold: a black picture hides the frozen one it also is, and a
component that is gone hides the stale picture or sound verdicts of it.
Times are wall-clock ``now`` values of the chunks that carried the samples.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from streamforge.streaming.health.components import ComponentWatch, DecodeWatch
from streamforge.streaming.health.decode import (
    AUDIO_DECODERS,
    VIDEO_DECODERS,
    LevelResult,
    PictureResult,
    decode_level,
    decode_picture,
)
from streamforge.streaming.health.picture import BlackPicture, FrozenPicture
from streamforge.streaming.health.sound import SilentAudio
from streamforge.streaming.health.verdicts import ContentReason, ContentVerdict, HealthConfig
from streamforge.ts.packets import (
    NULL_PID,
    PACKET_SIZE,
    PacketAligner,
    packet_rows,
    payload_offset,
    pid_column,
    random_access,
)
from streamforge.ts.pes import KeyframeProbe, pes_payload_start
from streamforge.ts.psi import Pmt, ProgramTracker

#: Most bytes of audio packets gathered for one window.
MAX_AUDIO_WINDOW: Final = 1_000_000

_PICTURE_REASONS: Final = frozenset({ContentReason.BLACK_PICTURE, ContentReason.FROZEN_PICTURE})


@dataclass(slots=True)
class SamplerStats:
    """Counters of one sampler (read on the loop)."""

    pictures_submitted: int = 0
    pictures_decoded: int = 0
    picture_failures: int = 0
    levels_submitted: int = 0
    levels_decoded: int = 0
    level_failures: int = 0
    samples_dropped: int = 0
    oversized: int = 0
    decoded_on: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Track:
    pid: int
    codec: str
    decoder: str


@dataclass(slots=True)
class _Job:
    future: Future[PictureResult] | Future[LevelResult]
    t: float
    since: float | None = None
    """For an audio window: when it began (a silent window was silent since then)."""


class ContentSampler:
    """Samples the picture and sound of one channel; see the module doc.

    Not thread-safe: :meth:`feed`, :meth:`poll` and :meth:`close` belong to
    one thread (the event loop); only the decode jobs run elsewhere.
    """

    def __init__(
        self,
        *,
        config: HealthConfig | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.config = cfg = config or HealthConfig()
        self._own_executor = executor is None
        self._executor: Executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="streamforge-health"
        )
        self.stats = SamplerStats()
        self._aligner = PacketAligner()
        self._program = ProgramTracker()
        self._video: _Track | None = None
        self._audio: _Track | None = None
        # video capture
        self._capture: list[bytes] | None = None
        self._capture_size = 0
        self._capture_t = 0.0
        self._probe: KeyframeProbe | None = None
        self._last_picture: float | None = None
        self._picture_cpu = 0.0  # running mean of one keyframe job's CPU seconds
        # audio window
        self._window: list[bytes] = []
        self._window_size = 0
        self._window_start: float | None = None
        self._jobs: deque[_Job] = deque()
        # detectors
        self._components = ComponentWatch(seconds=cfg.component_seconds)
        self._black = BlackPicture(
            seconds=cfg.black_seconds,
            pixel_threshold=cfg.black_pixel_threshold,
            picture_ratio=cfg.black_picture_ratio,
        )
        self._frozen = FrozenPicture(seconds=cfg.frozen_seconds, noise_db=cfg.freeze_noise_db)
        self._silence = SilentAudio(seconds=cfg.silence_seconds, threshold_db=cfg.silence_db)
        self._decodes = DecodeWatch(seconds=cfg.undecodable_seconds)
        self._verdicts: dict[ContentReason, ContentVerdict] = {}

    # ------------------------------------------------------------ loop side

    @property
    def program(self) -> Pmt | None:
        """The PMT last seen (None before the first)."""
        return self._program.pmt

    def feed(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Take a raw chunk of the channel's upstream (any size or alignment)."""
        packets = self._aligner.feed(data)
        if packets:
            self.feed_packets(packets, now)

    def feed_packets(self, packets: bytes | bytearray, now: float) -> None:
        """Take whole, aligned packets received at ``now``."""
        if not packets:
            return
        rows = packet_rows(packets)
        pids = pid_column(rows)
        pids = np.where((rows[:, 1] & 0x80) == 0, pids, NULL_PID)
        pmt = self._program.feed(packets, pids)
        if pmt is not None:
            self._adopt(pmt, now)
        self._components.arrived(pids, now)
        if self._video is not None:
            self._video_packets(packets, rows, pids, now)
        if self._audio is not None:
            self._audio_packets(rows, pids, now)

    def poll(self, now: float) -> list[ContentVerdict]:
        """Apply finished decodes and return the verdicts that hold at ``now``.

        A due audio window is handed to the worker here too, so a channel whose
        audio stopped arriving mid-window still gets its last level.
        """
        self._submit_window(now)
        while self._jobs and self._jobs[0].future.done():
            job = self._jobs.popleft()
            result = job.future.result()
            self.stats.decoded_on.add(result.thread)
            if isinstance(result, PictureResult):
                self._apply_picture(result, job.t)
            else:
                self._apply_level(result, job.t, job.since)
        verdicts = {v.reason: v for v in self._components.check()}
        hidden: set[ContentReason] = set()
        if ContentReason.NO_VIDEO in verdicts:
            hidden |= _PICTURE_REASONS | {ContentReason.UNDECODABLE}
        if ContentReason.NO_AUDIO in verdicts:
            hidden.add(ContentReason.SILENT_AUDIO)
        if ContentReason.BLACK_PICTURE in self._verdicts:
            hidden.add(ContentReason.FROZEN_PICTURE)
        for reason, verdict in self._verdicts.items():
            if reason not in hidden:
                verdicts[reason] = verdict
        return list(verdicts.values())

    def suspects(self) -> set[ContentReason]:
        """The picture and sound conditions the latest samples show, however briefly.

        An upgrade probe must be free of these (not only of verdicts) before the
        session switches back to it: a few seconds of probe cannot wait out a
        threshold, so any black, unchanged or silent sample counts against it.
        """
        found = set()
        if self._black.active:
            found.add(ContentReason.BLACK_PICTURE)
        elif self._frozen.active:
            found.add(ContentReason.FROZEN_PICTURE)
        if self._silence.active:
            found.add(ContentReason.SILENT_AUDIO)
        return found

    @property
    def has_video(self) -> bool:
        """Whether the program has a video track the sampler decodes."""
        return self._video is not None

    @property
    def has_audio(self) -> bool:
        """Whether the program has an audio track the sampler decodes."""
        return self._audio is not None

    @property
    def picture_interval(self) -> float:
        """Seconds between keyframe samples: the configured interval, or more to keep
        the decoding within ``picture_cpu_budget`` (from the recent decode cost)."""
        cfg = self.config
        if self._picture_cpu <= 0.0 or cfg.picture_cpu_budget <= 0.0:
            return cfg.sample_interval
        return max(cfg.sample_interval, self._picture_cpu / cfg.picture_cpu_budget)

    @property
    def pending(self) -> int:
        """Decode jobs submitted and not yet collected by :meth:`poll`."""
        return len(self._jobs)

    def close(self) -> None:
        """Drop pending work; shut down the private worker (a passed executor is left alone)."""
        for job in self._jobs:
            job.future.cancel()
        self._jobs.clear()
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ program

    def _adopt(self, pmt: Pmt, now: float) -> None:
        video = [s for s in pmt.streams if s.kind == "video"]
        audio = [s for s in pmt.streams if s.kind == "audio"]
        self._components.set_program([s.pid for s in video], [s.pid for s in audio], now)
        v = next((s for s in video if s.codec in VIDEO_DECODERS), None)
        a = next((s for s in audio if s.codec in AUDIO_DECODERS), None)
        new_video = _Track(v.pid, v.codec, VIDEO_DECODERS[v.codec]) if v else None
        new_audio = _Track(a.pid, a.codec, AUDIO_DECODERS[a.codec]) if a else None
        if new_video != self._video:
            self._video = new_video
            self._capture = self._probe = None
            self._black.reset()
            self._frozen.reset()
            self._decodes.reset()
            for reason in (*_PICTURE_REASONS, ContentReason.UNDECODABLE):
                self._verdicts.pop(reason, None)
        if new_audio != self._audio:
            self._audio = new_audio
            self._window, self._window_size, self._window_start = [], 0, None
            self._silence.reset()
            self._verdicts.pop(ContentReason.SILENT_AUDIO, None)

    # ------------------------------------------------------------ video

    def _video_packets(
        self,
        packets: bytes | bytearray,
        rows: npt.NDArray[np.uint8],
        pids: npt.NDArray[np.int32],
        now: float,
    ) -> None:
        assert self._video is not None
        on_pid = np.flatnonzero(pids == self._video.pid)
        if not len(on_pid):
            return
        starts = np.flatnonzero((rows[on_pid, 1] & 0x40) != 0).tolist()
        pos = 0
        for s in starts:
            if self._capture is not None:
                self._extend(packets, rows, on_pid[pos:s])
                self._finish()
            pos = s
            self._begin(now)
        if self._capture is not None:
            self._extend(packets, rows, on_pid[pos:])

    def _begin(self, now: float) -> None:
        """A video PES starts: capture it if a sample is due."""
        last = self._last_picture
        # 0.8: a keyframe arriving a little early still counts, so a GOP of
        # exactly one interval is sampled at every keyframe, not every other.
        if last is not None and now - last < 0.8 * self.picture_interval:
            return
        if self._in_flight() >= self.config.max_pending:
            self.stats.samples_dropped += 1
            self._last_picture = now
            return
        assert self._video is not None
        self._capture, self._capture_size, self._capture_t = [], 0, now
        self._probe = KeyframeProbe(self._video.codec)

    def _extend(
        self, packets: bytes | bytearray, rows: npt.NDArray[np.uint8], idx: npt.NDArray[np.intp]
    ) -> None:
        if self._capture is None or not len(idx):
            return
        probe = self._probe
        if probe is not None:
            for i in idx.tolist():
                pos = i * PACKET_SIZE
                if not self._capture and random_access(packets, pos):
                    probe.verdict = True
                else:
                    start = pos + payload_offset(packets, pos)
                    if not self._capture and packets[pos + 1] & 0x40:
                        start = pes_payload_start(packets, start, pos + PACKET_SIZE)
                    probe.feed(packets[start : pos + PACKET_SIZE])
                if probe.verdict is not None:
                    break
            if probe.verdict is False:
                self._capture = self._probe = None
                return
            if probe.verdict:
                self._probe = None
        self._capture.append(rows[idx].tobytes())
        self._capture_size += len(idx) * PACKET_SIZE
        if self._capture_size > self.config.max_access_unit:
            self.stats.oversized += 1
            self._capture = self._probe = None

    def _finish(self) -> None:
        """The captured PES ended (the next one starts): decode it if it is a keyframe."""
        capture, self._capture = self._capture, None
        undecided, self._probe = self._probe is not None, None
        if capture is None or undecided:
            return
        assert self._video is not None
        t = self._capture_t
        self._last_picture = t
        future = self._executor.submit(decode_picture, self._video.decoder, b"".join(capture))
        self._jobs.append(_Job(future, t))
        self.stats.pictures_submitted += 1

    # ------------------------------------------------------------ audio

    def _audio_packets(
        self, rows: npt.NDArray[np.uint8], pids: npt.NDArray[np.int32], now: float
    ) -> None:
        assert self._audio is not None
        if self._window_start is None:
            self._window_start = now
        on_pid = np.flatnonzero(pids == self._audio.pid)
        if len(on_pid) and self._window_size < MAX_AUDIO_WINDOW:
            self._window.append(rows[on_pid].tobytes())
            self._window_size += len(on_pid) * PACKET_SIZE
        self._submit_window(now)

    def _submit_window(self, now: float) -> None:
        start = self._window_start
        if self._audio is None or start is None or now - start < self.config.sample_interval:
            return
        window, self._window, self._window_size = self._window, [], 0
        self._window_start = now
        if not window:
            return
        if self._in_flight() >= self.config.max_pending:
            self.stats.samples_dropped += 1
            return
        future = self._executor.submit(decode_level, self._audio.decoder, b"".join(window))
        self._jobs.append(_Job(future, now, start))
        self.stats.levels_submitted += 1

    # ------------------------------------------------------------ results

    def _in_flight(self) -> int:
        return sum(1 for job in self._jobs if not job.future.done())

    def _set(self, reason: ContentReason, verdict: ContentVerdict | None) -> None:
        if verdict is None:
            self._verdicts.pop(reason, None)
        else:
            self._verdicts[reason] = verdict

    def _apply_picture(self, result: PictureResult, t: float) -> None:
        if self._picture_cpu == 0.0:
            self._picture_cpu = result.cpu
        else:
            self._picture_cpu += (result.cpu - self._picture_cpu) * 0.25
        if result.ok and result.thumb is not None:
            self.stats.pictures_decoded += 1
            black = self._black.update(result.thumb, t, full_range=result.full_range)
            self._set(ContentReason.BLACK_PICTURE, black)
            self._set(ContentReason.FROZEN_PICTURE, self._frozen.update(result.thumb, t))
            self._set(ContentReason.UNDECODABLE, self._decodes.update(True, t))
        else:
            self.stats.picture_failures += 1
            self._set(ContentReason.UNDECODABLE, self._decodes.update(False, t))

    def _apply_level(self, result: LevelResult, t: float, since: float | None) -> None:
        if result.ok and result.level_db is not None:
            self.stats.levels_decoded += 1
            level = self._silence.update_level(result.level_db, t, since=since)
            self._set(ContentReason.SILENT_AUDIO, level)
        else:
            self.stats.level_failures += 1

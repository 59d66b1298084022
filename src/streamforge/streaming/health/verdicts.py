"""What the content checks conclude: a reason, how long it has lasted, and the thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ContentReason(StrEnum):
    """Why a stream that still sends valid MPEG-TS is not worth watching."""

    BLACK_PICTURE = "black_picture"
    FROZEN_PICTURE = "frozen_picture"
    SILENT_AUDIO = "silent_audio"
    NO_VIDEO = "no_video"
    NO_AUDIO = "no_audio"
    UNDECODABLE = "undecodable"


@dataclass(frozen=True, slots=True)
class ContentVerdict:
    """A condition that has held for ``seconds`` (since wall time ``since``)."""

    reason: ContentReason
    seconds: float
    since: float


class Persistence:
    """How long a condition has held, from the first sample showing it.

    :meth:`observe` takes each sample's verdict (``active``) and wall time; it
    returns a :class:`ContentVerdict` while the condition has held for at
    least ``seconds``.  ``since`` lets a caller date the start earlier (a
    frozen picture began at the first of the two equal samples).
    """

    def __init__(self, reason: ContentReason, seconds: float) -> None:
        self.reason = reason
        self.seconds = seconds
        self.since: float | None = None

    def reset(self) -> None:
        self.since = None

    def observe(self, active: bool, t: float, since: float | None = None) -> ContentVerdict | None:
        if not active:
            self.since = None
            return None
        if self.since is None:
            self.since = t if since is None else since
        held = t - self.since
        if held >= self.seconds:
            return ContentVerdict(self.reason, held, self.since)
        return None


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Thresholds of the content checks (seconds are wall-clock durations).

    Durations: ``black_seconds`` 8 s outlasts a fade to black between programmes
    and an ad break's black frames (1-2 s) by far; ``frozen_seconds`` 10 s
    outlasts a still scene, a paused caption card or a static studio wide shot
    held for a few seconds, and catches a provider's "channel unavailable"
    slate; ``silence_seconds`` 15 s outlasts a dramatic pause or a silent title
    sequence (FFmpeg's silencedetect flags from 2 s, but a channel is only
    failed over for a sustained loss); ``component_seconds`` 3 s: a PID the
    PMT lists that sends nothing for 3 s while the rest of the program flows
    is gone (muxers interleave within a fraction of a second);
    ``undecodable_seconds`` 6 s of keyframes that fail to decode.

    Levels: a picture is black when ``black_picture_ratio`` (FFmpeg
    blackdetect ``pic_th`` 0.98) of its downscaled luma lies below
    ``black_pixel_threshold`` (blackdetect ``pix_th`` 0.10) of the luma range
    above the black level; two samples are equal when their mean absolute
    difference is below ``freeze_noise_db`` (freezedetect uses -60 dB on full
    pictures; -50 dB on 64x36 block means allows for the encoder's
    requantisation of a static picture, while any real motion is far above);
    audio is silent below ``silence_db`` dBFS RMS (silencedetect's -60 dB).

    Sampling: one video keyframe and one audio level per ``sample_interval``;
    keyframes are spaced further apart when decoding them would cost more
    than ``picture_cpu_budget`` of a core (a 1 MB 1080p IDR takes ~90 ms:
    one every 4.5 s at the 2 % default, still two or more samples within
    ``black_seconds``);
    at most ``max_pending`` decode jobs in flight per channel (more are dropped
    and counted); an access unit larger than ``max_access_unit`` bytes is not
    captured.
    """

    black_seconds: float = 8.0
    frozen_seconds: float = 10.0
    silence_seconds: float = 15.0
    component_seconds: float = 3.0
    undecodable_seconds: float = 6.0
    black_pixel_threshold: float = 0.10
    black_picture_ratio: float = 0.98
    freeze_noise_db: float = -50.0
    silence_db: float = -60.0
    sample_interval: float = 1.0
    picture_cpu_budget: float = 0.02
    max_pending: int = 2
    max_access_unit: int = 4_000_000

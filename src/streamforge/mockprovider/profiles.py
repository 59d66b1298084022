"""Media profiles: the "provider flavours" of the mock panel's test feeds.

A :class:`MediaProfile` describes one kind of live feed: picture size, frame rate,
bitrates and — because real providers differ here — the MPEG-TS service id (program
number), PMT PID and elementary-stream PIDs. The loop length must be a whole number of
video frames *and* of AAC frames (1024 samples at 48 kHz), so that a loop spans exactly
``period_90k`` ticks on both elementary streams and can repeat seamlessly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from streamforge.errors import ConfigError

TS_PACKET = 188
PTS_MODULO = 1 << 33
AUDIO_RATE = 48_000
AAC_FRAME = 1024
#: Bumped whenever the encoder settings change, so stale cache files are not reused.
GENERATOR_VERSION = 3


class ClipVariant(StrEnum):
    """What a profile's loop shows and sounds like.

    ``normal`` is the test pattern with its tone. The others are the replacement
    content of the media faults, encoded with the same profile (same PIDs, program,
    mux rate, GOP and timing, so they can be spliced into a playing stream): ``black``
    (black picture, tone goes on), ``frozen`` (one still frame of the pattern, tone
    goes on), ``card`` (a "SERVICE TEMPORARILY UNAVAILABLE" slate, tone goes on) and
    ``silent`` (the moving pattern, digital silence).
    """

    NORMAL = "normal"
    BLACK = "black"
    FROZEN = "frozen"
    CARD = "card"
    SILENT = "silent"

    @property
    def still(self) -> bool:
        """True when the picture never changes (encoded at a fixed quantiser)."""
        return self in (ClipVariant.BLACK, ClipVariant.FROZEN, ClipVariant.CARD)


@dataclass(frozen=True)
class MediaProfile:
    """One flavour of provider feed: picture, bitrates and MPEG-TS identifiers."""

    name: str
    width: int
    height: int
    fps: int = 25
    loop_frames: int = 240
    video_bitrate: int = 400_000
    audio_bitrate: int = 96_000
    mux_rate: int = 1_500_000
    service_id: int = 1
    pmt_pid: int = 0x1000
    start_pid: int = 0x100
    tone_hz: float = 1000.0
    hue: int = 0

    def __post_init__(self) -> None:
        samples = self.loop_frames * AUDIO_RATE
        if samples % self.fps or (samples // self.fps) % AAC_FRAME:
            raise ConfigError(
                f"media profile {self.name!r}: loop_frames={self.loop_frames} at fps={self.fps} "
                "is not a whole number of AAC frames (use a multiple of 8 frames at 25 fps)"
            )
        if (self.loop_frames * 90_000) % self.fps:
            raise ConfigError(f"media profile {self.name!r}: loop length is not whole 90 kHz ticks")
        if self.width % 2 or self.height % 2:
            raise ConfigError(f"media profile {self.name!r}: width and height must be even")
        if self.video_bitrate + self.audio_bitrate >= self.mux_rate:
            raise ConfigError(f"media profile {self.name!r}: mux_rate must exceed the content rate")

    @property
    def video_pid(self) -> int:
        return self.start_pid

    @property
    def audio_pid(self) -> int:
        return self.start_pid + 1

    @property
    def period_90k(self) -> int:
        """Loop length in 90 kHz ticks."""
        return self.loop_frames * 90_000 // self.fps

    @property
    def audio_frames(self) -> int:
        return self.loop_frames * AUDIO_RATE // self.fps // AAC_FRAME

    def cache_key(self, variant: ClipVariant = ClipVariant.NORMAL) -> str:
        """A stable file-name-safe key covering every setting and the generator version."""
        payload = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
        suffix = "" if variant is ClipVariant.NORMAL else f"-{variant.value}"
        return f"{self.name}-{self.width}x{self.height}-{digest}{suffix}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaProfile:
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError(f"media profile: {exc}") from exc


def default_profiles() -> dict[str, MediaProfile]:
    """The built-in profiles: small pictures (fast to encode), different PIDs per provider.

    ``high`` is padded to 8 Mbit/s with null packets for the throughput benchmarks.
    """
    profiles = [
        MediaProfile(
            "sd",
            320,
            240,
            service_id=1,
            pmt_pid=0x1000,
            start_pid=0x100,
            mux_rate=1_000_000,
            video_bitrate=300_000,
            tone_hz=440.0,
            hue=0,
        ),
        MediaProfile(
            "hd",
            480,
            270,
            service_id=17,
            pmt_pid=0x0020,
            start_pid=0x0021,
            mux_rate=2_000_000,
            video_bitrate=600_000,
            tone_hz=660.0,
            hue=60,
        ),
        MediaProfile(
            "fhd",
            640,
            360,
            service_id=301,
            pmt_pid=0x1100,
            start_pid=0x1200,
            mux_rate=3_000_000,
            video_bitrate=900_000,
            tone_hz=880.0,
            hue=120,
        ),
        MediaProfile(
            "high",
            480,
            270,
            service_id=4711,
            pmt_pid=0x0100,
            start_pid=0x0200,
            mux_rate=8_000_000,
            video_bitrate=900_000,
            tone_hz=1000.0,
            hue=200,
        ),
    ]
    return {p.name: p for p in profiles}

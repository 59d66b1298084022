"""Encoding a profile's test loop with PyAV (libx264 + AAC in MPEG-TS).

:func:`encode_clip` renders a short test pattern (colour bars, a moving box, a frame
counter strip, a sine tone) with ``libx264`` (``preset=ultrafast``,
``tune=zerolatency``, no B-frames, one keyframe per second) and the native AAC encoder
(48 kHz stereo), and muxes it with ffmpeg's ``mpegts`` muxer at a constant
``muxrate`` (the muxer pads with null packets), so bytes and PCR advance linearly
together and pacing by byte rate is pacing by PCR. Audio packets are re-timed onto a
gap-free timeline of exactly ``audio_frames`` frames so the loop spans the same time on
both streams. The box and the tone complete whole cycles per loop: the loop point is
invisible and inaudible.

The same function renders the replacement content of the media faults
(:class:`~.profiles.ClipVariant`): a black picture, one still frame of the pattern,
a "SERVICE TEMPORARILY UNAVAILABLE" slate (drawn with a small built-in bitmap font,
no imaging library needed) or the pattern with digital silence. Variants use the
profile's PIDs, program, mux rate, GOP and timestamps, so every keyframe of a
variant has the same PTS as the same keyframe of the normal loop — which is what
lets :mod:`.live` splice one into a playing stream. Still pictures are encoded at a
fixed quantiser, so the P-frames between keyframes are pure skips and decode to
exactly the same picture.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from streamforge.mockprovider.profiles import AAC_FRAME, AUDIO_RATE, ClipVariant, MediaProfile
from streamforge.text_card import draw_card

#: The slate's text, one line per entry.
CARD_LINES = ("SERVICE", "TEMPORARILY", "UNAVAILABLE")


def _pattern_background(profile: MediaProfile) -> npt.NDArray[np.uint8]:
    """Eight vertical colour bars, rotated by the profile's hue so profiles look different."""
    bars = np.array(
        [
            [235, 235, 235],
            [235, 235, 16],
            [16, 235, 235],
            [16, 235, 16],
            [235, 16, 235],
            [235, 16, 16],
            [16, 16, 235],
            [16, 16, 16],
        ],
        dtype=np.uint8,
    )
    shift = (profile.hue // 45) % 8
    bars = np.roll(bars, shift, axis=0)
    cols = (np.arange(profile.width) * 8) // profile.width
    row = bars[cols]
    return np.repeat(row[np.newaxis, :, :], profile.height, axis=0)


def _video_frame(profile: MediaProfile, background: npt.NDArray[np.uint8], i: int) -> av.VideoFrame:
    img = background.copy()
    box = max(8, profile.height // 6)
    travel = profile.width - box
    # The box crosses the picture once per loop and back, so the loop point is seamless.
    phase = i / profile.loop_frames
    x = int(travel * (1 - abs(1 - 2 * phase)))
    y = (profile.height - box) // 2
    img[y : y + box, x : x + box] = 255
    # A frame counter as a binary strip along the bottom edge (useful when debugging splices).
    strip = profile.height - 6
    for bit in range(12):
        value = 255 if (i >> bit) & 1 else 0
        img[strip:, bit * 8 : bit * 8 + 6] = value
    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    return frame.reformat(format="yuv420p")


def card_picture(profile: MediaProfile) -> npt.NDArray[np.uint8]:
    """The provider's "unavailable" slate: white text and frame on dark blue (RGB)."""
    return draw_card(profile.width, profile.height, CARD_LINES)


def _still_picture(profile: MediaProfile, variant: ClipVariant) -> av.VideoFrame:
    if variant is ClipVariant.BLACK:
        img = np.zeros((profile.height, profile.width, 3), dtype=np.uint8)
    elif variant is ClipVariant.CARD:
        img = card_picture(profile)
    else:  # FROZEN: the pattern's first frame, held
        return _video_frame(profile, _pattern_background(profile), 0)
    return av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")


def encode_clip(
    profile: MediaProfile, path: Path, variant: ClipVariant = ClipVariant.NORMAL
) -> None:
    """Encode ``profile`` (as ``variant``) to an MPEG-TS file at ``path`` (blocking)."""
    options = {
        "mpegts_service_id": str(profile.service_id),
        "mpegts_pmt_start_pid": str(profile.pmt_pid),
        "mpegts_start_pid": str(profile.start_pid),
        "muxrate": str(profile.mux_rate),
    }
    gop = str(profile.fps)
    x264 = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": "0",
        "bf": "0",
    }
    if variant.still:
        # A fixed quantiser: nothing to refine, so every P-frame is all skip blocks.
        x264["qp"] = "20"
    out = av.open(str(path), "w", format="mpegts", options=options)
    try:
        video = out.add_stream("libx264", rate=profile.fps, options=x264)
        video.width = profile.width
        video.height = profile.height
        video.pix_fmt = "yuv420p"
        video.bit_rate = profile.video_bitrate
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        audio.bit_rate = profile.audio_bitrate

        timed: list[tuple[Fraction, int, Any]] = []
        background = _pattern_background(profile)
        still = _still_picture(profile, variant) if variant.still else None
        vtb = Fraction(1, profile.fps)
        for i in range(profile.loop_frames):
            frame = still if still is not None else _video_frame(profile, background, i)
            frame.pts = i
            frame.time_base = vtb
            for packet in video.encode(frame):
                timed.append((Fraction(packet.pts or 0) * vtb, 0, packet))
        for packet in video.encode(None):
            timed.append((Fraction(packet.pts or 0) * vtb, 0, packet))

        atb = Fraction(1, AUDIO_RATE)
        n_samples = profile.audio_frames * AAC_FRAME
        # Whole cycles of the tone per loop, so the loop point is click-free.
        cycles = max(1, round(profile.tone_hz * n_samples / AUDIO_RATE))
        t = np.arange(n_samples, dtype=np.float64) / n_samples
        tone = (0.25 * np.sin(2 * np.pi * cycles * t)).astype(np.float32)
        if variant is ClipVariant.SILENT:
            tone = np.zeros_like(tone)
        audio_packets: list[Any] = []
        fmt = audio.codec_context.format.name
        for j in range(profile.audio_frames):
            chunk = tone[j * AAC_FRAME : (j + 1) * AAC_FRAME]
            planes = np.stack([chunk, chunk])
            if not fmt.endswith("p"):
                planes = planes.T.reshape(1, -1)
            aframe = av.AudioFrame.from_ndarray(planes, format=fmt, layout="stereo")
            aframe.sample_rate = AUDIO_RATE
            aframe.pts = j * AAC_FRAME
            aframe.time_base = atb
            audio_packets.extend(audio.encode(aframe))
        audio_packets.extend(audio.encode(None))
        # Exactly audio_frames packets on a gap-free timeline (the encoder's priming
        # packet becomes frame 0), so the loop spans the same time as the video.
        for j, packet in enumerate(audio_packets[: profile.audio_frames]):
            packet.pts = j * AAC_FRAME
            packet.dts = j * AAC_FRAME
            packet.time_base = atb
            timed.append((Fraction(j * AAC_FRAME) * atb, 1, packet))

        timed.sort(key=lambda item: (item[0], item[1]))
        for _, _, packet in timed:
            out.mux(packet)
    finally:
        out.close()

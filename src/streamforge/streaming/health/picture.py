"""Picture checks on sampled, downscaled luma: black and frozen pictures.

The sampler decodes about one keyframe a second and reduces its luma plane to
:data:`THUMB_SHAPE` (64x36) block means with :func:`downscale_luma`; the
detectors here look only at those thumbnails, with the sample's wall time.

*Black* follows FFmpeg's blackdetect: a picture is black when at least
``picture_ratio`` of its (block-mean) luma lies at most ``pixel_threshold`` of
the luma range above the black level (16 in limited range, 0 in full range).
That is "mean luma low and variance low", while tolerating a small channel
logo on black.  *Frozen* follows freezedetect: consecutive samples whose mean
absolute difference, as a fraction of 255, is at most ``10^(noise_db/20)``
are the same picture; a static "channel unavailable" slate with text is
frozen in exactly that sense.  Both report a verdict once the condition has
held for their duration, measured from the first sample showing it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from streamforge.streaming.health.verdicts import ContentReason, ContentVerdict, Persistence

THUMB_SHAPE: Final = (36, 64)

Thumb = npt.NDArray[np.float32]


def downscale_luma(plane: npt.NDArray[np.uint8]) -> Thumb:
    """Block means of a ``(height, width)`` luma plane over a 64x36 grid."""
    h, w = plane.shape
    rows = np.linspace(0, h, THUMB_SHAPE[0] + 1).astype(np.intp)
    cols = np.linspace(0, w, THUMB_SHAPE[1] + 1).astype(np.intp)
    rows_start = np.minimum(rows[:-1], h - 1)
    cols_start = np.minimum(cols[:-1], w - 1)
    sums = np.add.reduceat(plane, rows_start, axis=0, dtype=np.uint32)
    sums = np.add.reduceat(sums, cols_start, axis=1, dtype=np.uint32)
    counts = np.outer(np.maximum(np.diff(rows), 1), np.maximum(np.diff(cols), 1))
    thumb: Thumb = (sums / counts).astype(np.float32)
    return thumb


class BlackPicture:
    """Flags a picture that stays black for ``seconds``."""

    def __init__(
        self,
        *,
        seconds: float = 8.0,
        pixel_threshold: float = 0.10,
        picture_ratio: float = 0.98,
    ) -> None:
        self._run = Persistence(ContentReason.BLACK_PICTURE, seconds)
        self._pixel = pixel_threshold
        self._ratio = picture_ratio

    def is_black(self, thumb: Thumb, *, full_range: bool = False) -> bool:
        """Whether one thumbnail counts as black."""
        floor, span = (0.0, 255.0) if full_range else (16.0, 219.0)
        dark = thumb <= floor + self._pixel * span
        return float(np.count_nonzero(dark)) >= self._ratio * dark.size

    def update(self, thumb: Thumb, t: float, *, full_range: bool = False) -> ContentVerdict | None:
        """Take the sample at wall time ``t``; the verdict once black for ``seconds``."""
        return self._run.observe(self.is_black(thumb, full_range=full_range), t)

    def reset(self) -> None:
        self._run.reset()

    @property
    def active(self) -> bool:
        """Whether the last sample was black (the run may not be long enough yet)."""
        return self._run.since is not None


class FrozenPicture:
    """Flags a picture that stays the same (a freeze or a static slate) for ``seconds``."""

    def __init__(self, *, seconds: float = 10.0, noise_db: float = -50.0) -> None:
        self._run = Persistence(ContentReason.FROZEN_PICTURE, seconds)
        self._tolerance = 255.0 * 10.0 ** (noise_db / 20.0)
        self._last: Thumb | None = None
        self._last_t = 0.0

    @staticmethod
    def difference(a: Thumb, b: Thumb) -> float:
        """Mean absolute difference of two thumbnails, in luma levels."""
        return float(np.mean(np.abs(a - b)))

    def update(self, thumb: Thumb, t: float) -> ContentVerdict | None:
        """Take the sample at wall time ``t``; the verdict once unchanged for ``seconds``."""
        last, last_t = self._last, self._last_t
        self._last, self._last_t = thumb, t
        if last is None or last.shape != thumb.shape:
            return None
        same = self.difference(last, thumb) <= self._tolerance
        return self._run.observe(same, t, since=last_t)

    def reset(self) -> None:
        self._last = None
        self._run.reset()

    @property
    def active(self) -> bool:
        """Whether the last sample equalled the one before (the run may be short yet)."""
        return self._run.since is not None

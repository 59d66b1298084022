"""Audio check on decoded samples: sustained silence.

The sampler decodes the audio of each ~1 s window and reduces it to one RMS
level in dBFS (:func:`rms_dbfs`, over every channel; full scale is 1.0 for
float samples and the type's maximum for integer ones).  :class:`SilentAudio`
flags a level at or below ``threshold_db`` (FFmpeg silencedetect's -60 dB)
held for ``seconds``.  Quiet programme audio (speech at -40 dBFS, a quiet
passage at -50 dBFS) stays above it; digital silence and a muted feed's
dither noise sit far below.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from streamforge.streaming.health.verdicts import ContentReason, ContentVerdict, Persistence

#: The level reported for digital silence (log of zero).
FLOOR_DB: Final = -120.0


def rms_dbfs(samples: npt.NDArray[Any]) -> float:
    """RMS level of ``samples`` (any shape) in dB relative to full scale."""
    if samples.size == 0:
        return FLOOR_DB
    if samples.dtype.kind in "iu":
        scale = float(np.iinfo(samples.dtype).max)
        data = samples.astype(np.float64) / scale
    else:
        data = samples.astype(np.float64, copy=False)
    rms = float(np.sqrt(np.mean(np.square(data))))
    if rms <= 10.0 ** (FLOOR_DB / 20.0):
        return FLOOR_DB
    return 20.0 * float(np.log10(rms))


class SilentAudio:
    """Flags audio at or below ``threshold_db`` dBFS RMS for ``seconds``."""

    def __init__(self, *, seconds: float = 15.0, threshold_db: float = -60.0) -> None:
        self._run = Persistence(ContentReason.SILENT_AUDIO, seconds)
        self._threshold = threshold_db

    def update_level(
        self, level_db: float, t: float, *, since: float | None = None
    ) -> ContentVerdict | None:
        """Take one window's RMS level at wall time ``t`` (the window's end; ``since``
        its start, when a silent run begins with it)."""
        return self._run.observe(level_db <= self._threshold, t, since=since)

    def update(self, samples: npt.NDArray[Any], t: float) -> ContentVerdict | None:
        """Take one window's decoded samples at wall time ``t``."""
        return self.update_level(rms_dbfs(samples), t)

    def reset(self) -> None:
        self._run.reset()

    @property
    def active(self) -> bool:
        """Whether the last window was silent (the run may not be long enough yet)."""
        return self._run.since is not None

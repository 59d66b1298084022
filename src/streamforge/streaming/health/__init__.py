"""Media-aware stream health: is a stream that sends valid MPEG-TS worth watching?

Providers most often fail while still sending valid MPEG-TS: a black picture,
a frozen picture or a static "unavailable" slate, silence under a moving
picture, an elementary stream that stops while the PMT still lists it.  This
package holds the pure building blocks that tell, one concept per module:

- :mod:`.verdicts`: :class:`ContentReason`, :class:`ContentVerdict`,
  :class:`HealthConfig` (thresholds and why), :class:`Persistence`;
- :mod:`.picture`: :func:`downscale_luma`, :class:`BlackPicture`,
  :class:`FrozenPicture` (on 64x36 luma thumbnails);
- :mod:`.sound`: :func:`rms_dbfs`, :class:`SilentAudio`;
- :mod:`.components`: :class:`ComponentWatch` (no_video / no_audio from packet
  arrivals), :class:`DecodeWatch` (undecodable);
- :mod:`.decode`: the worker-thread jobs (PyAV): one keyframe to a thumbnail,
  one audio window to a level;
- :mod:`.sampler`: :class:`ContentSampler`, cheap collection on the event loop
  and decoding on an executor, polled with ``now``.

Nothing here does I/O or reads a clock: every time is an argument.  The
delivery-rate check (behind live) is :mod:`streamforge.streaming.media_clock`.
"""

from streamforge.streaming.health.components import ComponentWatch, DecodeWatch
from streamforge.streaming.health.picture import BlackPicture, FrozenPicture, downscale_luma
from streamforge.streaming.health.sampler import ContentSampler, SamplerStats
from streamforge.streaming.health.sound import SilentAudio, rms_dbfs
from streamforge.streaming.health.verdicts import (
    ContentReason,
    ContentVerdict,
    HealthConfig,
    Persistence,
)

__all__ = [
    "BlackPicture",
    "ComponentWatch",
    "ContentReason",
    "ContentSampler",
    "ContentVerdict",
    "DecodeWatch",
    "FrozenPicture",
    "HealthConfig",
    "Persistence",
    "SamplerStats",
    "SilentAudio",
    "downscale_luma",
    "rms_dbfs",
]

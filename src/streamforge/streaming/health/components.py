"""Component checks: an elementary stream that stops, and video that does not decode.

:class:`ComponentWatch` knows from the PMT which PIDs carry video and which
audio, and is told, per chunk, which PIDs arrived (a vector operation on the
chunk's PID column).  A kind the PMT lists whose PIDs send nothing for
``seconds`` *while the rest of the program keeps arriving* is gone:
``no_video`` or ``no_audio``.  Durations are measured between packet arrivals,
not against the caller's clock, so an upstream that stops sending altogether
is left to the byte-stall timeout rather than reported as both components
gone; a radio program (no video in the PMT) never reports ``no_video``.

:class:`DecodeWatch` takes the outcome of each sampled keyframe decode and
reports ``undecodable`` once decodes have failed, with no success between,
for ``seconds`` (at least two failed attempts).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import numpy.typing as npt

from streamforge.streaming.health.verdicts import ContentReason, ContentVerdict, Persistence


class ComponentWatch:
    """Reports ``no_video`` / ``no_audio`` for a listed kind whose packets stopped."""

    def __init__(self, *, seconds: float = 3.0) -> None:
        self._seconds = seconds
        self._kinds: dict[ContentReason, npt.NDArray[np.int32]] = {}
        self._last: dict[ContentReason, float] = {}
        self._last_any: float | None = None

    def set_program(
        self, video_pids: Collection[int], audio_pids: Collection[int], now: float
    ) -> None:
        """The PMT's video and audio PIDs (again on a PMT change); timers start at ``now``."""
        kinds: dict[ContentReason, npt.NDArray[np.int32]] = {}
        for reason, pids in (
            (ContentReason.NO_VIDEO, video_pids),
            (ContentReason.NO_AUDIO, audio_pids),
        ):
            if pids:
                kinds[reason] = np.array(sorted(pids), dtype=np.int32)
        for reason, pids_arr in kinds.items():
            old = self._kinds.get(reason)
            if old is None or not np.array_equal(old, pids_arr):
                self._last[reason] = now
        for reason in set(self._last) - set(kinds):
            del self._last[reason]
        self._kinds = kinds

    def arrived(self, pids: npt.NDArray[np.int32], now: float) -> None:
        """The PID column of a chunk received at ``now``."""
        if not len(pids):
            return
        self._last_any = now
        for reason, wanted in self._kinds.items():
            if np.isin(pids, wanted).any():
                self._last[reason] = now

    def check(self) -> list[ContentVerdict]:
        """The kinds gone for ``seconds`` while other packets kept arriving."""
        last_any = self._last_any
        if last_any is None:
            return []
        out = []
        for reason, last in self._last.items():
            gone = last_any - last
            if gone >= self._seconds:
                out.append(ContentVerdict(reason, gone, last))
        return out


class DecodeWatch:
    """Reports ``undecodable`` once keyframe decodes fail for ``seconds``."""

    def __init__(self, *, seconds: float = 6.0) -> None:
        self._run = Persistence(ContentReason.UNDECODABLE, seconds)
        self._failures = 0

    def update(self, ok: bool, t: float) -> ContentVerdict | None:
        """Take the outcome of one decode attempt at wall time ``t``."""
        self._failures = 0 if ok else self._failures + 1
        verdict = self._run.observe(not ok, t)
        return verdict if self._failures >= 2 else None

    def reset(self) -> None:
        self._failures = 0
        self._run.reset()

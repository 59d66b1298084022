"""The mock provider's media library: encode once, cache on disk, keep clips in memory.

Theory of operation
-------------------
Each stream of the catalogue names a :class:`~.profiles.MediaProfile`. The first time
a profile is needed, :func:`~.encode.encode_clip` renders its loop (in a worker
thread, a second or so); the file is cached on disk under a name derived from a hash
of the profile and the generator version, written to a temporary name and renamed
into place, so a crash or a concurrent process never leaves a half-written file under
the final name. The parsed :class:`~.clip.MediaClip` stays in memory for the life of
the library. The replacement content of the media faults (black, frozen, card and
silent variants, see :class:`~.profiles.ClipVariant`) is encoded and cached the same
way, under the profile's key plus the variant's name, the first time a fault needs it;
:meth:`MediaLibrary.prefetch` starts that encode early without waiting for it. The
cache directory is configurable and defaults to the per-user cache
dir (``$STREAMFORGE_MOCK_MEDIA_CACHE`` overrides it); it is never in the repository.

This module also re-exports the media names other modules use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import platformdirs

from streamforge.errors import ConfigError
from streamforge.mockprovider.clip import MediaClip, pts_offset_for
from streamforge.mockprovider.encode import encode_clip
from streamforge.mockprovider.profiles import (
    TS_PACKET,
    ClipVariant,
    MediaProfile,
    default_profiles,
)

log = logging.getLogger(__name__)

__all__ = [
    "TS_PACKET",
    "ClipVariant",
    "MediaClip",
    "MediaLibrary",
    "MediaProfile",
    "default_cache_dir",
    "default_profiles",
    "encode_clip",
    "pts_offset_for",
]


def default_cache_dir() -> Path:
    """``$STREAMFORGE_MOCK_MEDIA_CACHE`` or the per-user cache dir (never the repository)."""
    env = os.environ.get("STREAMFORGE_MOCK_MEDIA_CACHE")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("streamforge", appauthor=False)) / "mock-media"


class MediaLibrary:
    """Encodes profiles on first use, caches files on disk and clips in memory.

    Encoding runs in a worker thread; concurrent requests for the same profile share
    one encode. Cache files are written to a temporary name and renamed into place, so
    a crash or a second process never leaves a half-written file under the final name.
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        profiles: Mapping[str, MediaProfile] | None = None,
    ) -> None:
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.profiles: dict[str, MediaProfile] = dict(profiles or default_profiles())
        self._clips: dict[tuple[str, ClipVariant], MediaClip] = {}
        self._pending: dict[tuple[str, ClipVariant], asyncio.Future[MediaClip]] = {}

    def profile(self, name: str) -> MediaProfile:
        try:
            return self.profiles[name]
        except KeyError:
            raise ConfigError(f"unknown media profile {name!r}") from None

    def path_for(self, profile: MediaProfile, variant: ClipVariant = ClipVariant.NORMAL) -> Path:
        return self.cache_dir / f"{profile.cache_key(variant)}.ts"

    def load_sync(self, name: str, variant: ClipVariant = ClipVariant.NORMAL) -> MediaClip:
        """Return the clip for ``name``, encoding it now if it is not cached (blocking)."""
        key = (name, ClipVariant(variant))
        clip = self._clips.get(key)
        if clip is not None:
            return clip
        profile = self.profile(name)
        path = self.path_for(profile, key[1])
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".encoding-", suffix=".ts", dir=self.cache_dir)
            os.close(fd)
            try:
                encode_clip(profile, Path(tmp), key[1])
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        clip = MediaClip.from_bytes(profile, path.read_bytes())
        self._clips[key] = clip
        return clip

    def _start(self, key: tuple[str, ClipVariant]) -> asyncio.Future[MediaClip]:
        pending = self._pending.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(None, self.load_sync, *key)
            self._pending[key] = pending
            pending.add_done_callback(lambda f: self._finished(key, f))
        return pending

    def _finished(self, key: tuple[str, ClipVariant], future: asyncio.Future[MediaClip]) -> None:
        self._pending.pop(key, None)
        if not future.cancelled() and future.exception() is not None:
            log.error("encoding mock media %s/%s failed: %s", *key, future.exception())

    async def get(self, name: str, variant: ClipVariant = ClipVariant.NORMAL) -> MediaClip:
        """Return the clip for ``name``, encoding it in a worker thread if needed."""
        key = (name, ClipVariant(variant))
        clip = self._clips.get(key)
        if clip is not None:
            return clip
        return await asyncio.shield(self._start(key))

    def loaded(self, name: str, variant: ClipVariant = ClipVariant.NORMAL) -> MediaClip | None:
        """The clip if it is loaded already (never starts loading it)."""
        return self._clips.get((name, ClipVariant(variant)))

    def prefetch(self, name: str, variant: ClipVariant = ClipVariant.NORMAL) -> MediaClip | None:
        """The clip if it is loaded; otherwise start loading it (worker thread) and return None.

        Must be called on the event loop thread; never waits.
        """
        key = (name, ClipVariant(variant))
        clip = self._clips.get(key)
        if clip is None and name in self.profiles:
            self._start(key)
        return clip

    async def warm(self, names: Iterable[str]) -> None:
        """Encode/load every named profile (in parallel threads)."""
        async with asyncio.TaskGroup() as group:
            for name in sorted(set(names)):
                group.create_task(self.get(name), name=f"mock-media-warm:{name}")

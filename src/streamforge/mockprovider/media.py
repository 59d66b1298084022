"""The mock provider's media library: encode once, cache on disk, keep clips in memory.

Theory of operation
-------------------
Each stream of the catalogue names a :class:`~.profiles.MediaProfile`. The first time
a profile is needed, :func:`~.encode.encode_clip` renders its loop (in a worker
thread, a second or so); the file is cached on disk under a name derived from a hash
of the profile and the generator version, written to a temporary name and renamed
into place, so a crash or a concurrent process never leaves a half-written file under
the final name. The parsed :class:`~.clip.MediaClip` stays in memory for the life of
the library. The cache directory is configurable and defaults to the per-user cache
dir (``$STREAMFORGE_MOCK_MEDIA_CACHE`` overrides it); it is never in the repository.

This module also re-exports the media names other modules use.
"""

from __future__ import annotations

import asyncio
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
    MediaProfile,
    default_profiles,
)

__all__ = [
    "TS_PACKET",
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
        self._clips: dict[str, MediaClip] = {}
        self._pending: dict[str, asyncio.Future[MediaClip]] = {}

    def profile(self, name: str) -> MediaProfile:
        try:
            return self.profiles[name]
        except KeyError:
            raise ConfigError(f"unknown media profile {name!r}") from None

    def path_for(self, profile: MediaProfile) -> Path:
        return self.cache_dir / f"{profile.cache_key()}.ts"

    def load_sync(self, name: str) -> MediaClip:
        """Return the clip for ``name``, encoding it now if it is not cached (blocking)."""
        clip = self._clips.get(name)
        if clip is not None:
            return clip
        profile = self.profile(name)
        path = self.path_for(profile)
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".encoding-", suffix=".ts", dir=self.cache_dir)
            os.close(fd)
            try:
                encode_clip(profile, Path(tmp))
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        clip = MediaClip.from_bytes(profile, path.read_bytes())
        self._clips[name] = clip
        return clip

    async def get(self, name: str) -> MediaClip:
        """Return the clip for ``name``, encoding it in a worker thread if needed."""
        clip = self._clips.get(name)
        if clip is not None:
            return clip
        pending = self._pending.get(name)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(None, self.load_sync, name)
            self._pending[name] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(name, None))
        return await asyncio.shield(pending)

    async def warm(self, names: Iterable[str]) -> None:
        """Encode/load every named profile (in parallel threads)."""
        async with asyncio.TaskGroup() as group:
            for name in sorted(set(names)):
                group.create_task(self.get(name), name=f"mock-media-warm:{name}")

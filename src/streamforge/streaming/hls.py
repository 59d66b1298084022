"""Reading an HLS upstream into the same continuous MPEG-TS byte stream.

Some providers only serve ``.m3u8``, and the ``.ts`` URL of others redirects
to a playlist. :class:`HlsReader` takes the playlist the upstream answered
with and delivers its MPEG-TS segments, in order, through the same
``on_open``/``on_data`` callbacks as a plain TS upstream:

- a **master playlist** (``#EXT-X-STREAM-INF``) picks one variant: the
  highest bandwidth, or the best one not above a resolution cap;
- a **media playlist** is played from near its live edge (the last
  :data:`LIVE_EDGE_SEGMENTS` segments), then reloaded every half target
  duration; segments are tracked by media sequence number, so none is
  delivered twice and a sequence that jumps ahead is followed (and counted
  as skipped) instead of stalling;
- ``#EXT-X-ENDLIST`` at the end of a live channel is the end of the stream.

Failures are the same :class:`~streamforge.streaming.reasons.UpstreamFailure`
reasons as for TS: a playlist or segment answered with an error status is
``HTTP_ERROR`` (401/403: ``CREDENTIAL_ERROR``), a connection that breaks is
``CONNECTION_ERROR``/``READ_ERROR``, a segment that is not MPEG-TS is
``INVALID_CONTENT``, and a playlist that stops growing for
:data:`STALE_TARGET_DURATIONS` target durations (or a playlist or segment that
stops arriving for the stall timeout) is ``STALL``.

Playlists and segments are fetched through the provider HTTP seam
(:class:`~streamforge.xtream.http.ProviderHttp`): the same User-Agent,
redirect rule and redaction as the ``.ts`` request that led here; a playlist
larger than :data:`MAX_PLAYLIST_BYTES` is ``INVALID_CONTENT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from yarl import URL

from streamforge.errors import StreamingError
from streamforge.streaming.reasons import FailureReason, UpstreamFailure, reason_for_http_status
from streamforge.ts.packets import looks_like_ts
from streamforge.xtream.http import (
    FailureKind,
    HttpFailure,
    HttpResponse,
    HttpTimeouts,
    ProviderHttp,
)

LIVE_EDGE_SEGMENTS = 3
STALE_TARGET_DURATIONS = 3
MAX_PLAYLIST_BYTES = 1 << 20
_SEGMENT_READ = 188 * 350
_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int
    height: int | None


@dataclass(frozen=True)
class Segment:
    sequence: int
    uri: str
    duration: float


@dataclass(frozen=True)
class MediaPlaylist:
    target_duration: float
    segments: tuple[Segment, ...]
    ended: bool


class PlaylistError(StreamingError, ValueError):
    """The text is not a usable HLS playlist."""


def is_playlist(content_type: str, head: bytes) -> bool:
    lowered = content_type.lower()
    return "mpegurl" in lowered or head.lstrip().startswith(b"#EXTM3U")


def parse_master(text: str) -> list[Variant]:
    variants: list[Variant] = []
    lines = [line.strip() for line in text.splitlines()]
    for index, line in enumerate(lines):
        if not line.startswith("#EXT-X-STREAM-INF:"):
            continue
        attrs = dict(_ATTR.findall(line.split(":", 1)[1]))
        uri = next((u for u in lines[index + 1 :] if u and not u.startswith("#")), None)
        if uri is None:
            continue
        resolution = attrs.get("RESOLUTION", "")
        height = int(resolution.split("x")[1]) if "x" in resolution else None
        bandwidth = int(attrs.get("BANDWIDTH", "0") or 0)
        variants.append(Variant(uri, bandwidth, height))
    return variants


def parse_media(text: str) -> MediaPlaylist:
    if not text.lstrip().startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist (no #EXTM3U)")
    target = 6.0
    sequence = 0
    duration: float | None = None
    segments: list[Segment] = []
    ended = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0] or 0)
        elif line.startswith("#EXT-X-ENDLIST"):
            ended = True
        elif line and not line.startswith("#"):
            segments.append(Segment(sequence + len(segments), line, duration or target))
            duration = None
    return MediaPlaylist(max(target, 0.5), tuple(segments), ended)


def choose_variant(variants: list[Variant], max_height: int | None = None) -> Variant:
    fitting = [v for v in variants if max_height is None or (v.height or 0) <= max_height]
    pool = fitting or variants
    return max(pool, key=lambda v: (v.bandwidth, v.height or 0))


OnData = Callable[[bytes], Awaitable[None] | None]


def _failure(failure: HttpFailure, what: str) -> UpstreamFailure:
    """The failover reason for a failure the seam reported while fetching ``what``."""
    kind = failure.kind
    if kind in {FailureKind.CONNECT_TIMEOUT, FailureKind.HEADER_TIMEOUT}:
        return UpstreamFailure(FailureReason.STALL, f"no answer for the {what}")
    if kind is FailureKind.READ_TIMEOUT:
        return UpstreamFailure(FailureReason.STALL, f"{what} stalled")
    if kind in {FailureKind.READ_ERROR, FailureKind.TRUNCATED}:
        return UpstreamFailure(FailureReason.READ_ERROR, f"{what}: {failure.detail}")
    if kind is FailureKind.TOO_LARGE:
        return UpstreamFailure(FailureReason.INVALID_CONTENT, f"{what}: {failure.detail}")
    return UpstreamFailure(FailureReason.CONNECTION_ERROR, f"{what}: {failure.detail}")


class HlsReader:
    """Plays one HLS upstream until it fails (see the module docstring)."""

    def __init__(
        self,
        http: ProviderHttp,
        playlist_url: URL,
        playlist_text: str,
        *,
        headers: dict[str, str],
        stall_timeout: float,
        user_agent: str | None = None,
        max_height: int | None = None,
    ) -> None:
        self._http = http
        self._url = playlist_url
        self._text = playlist_text
        self._headers = headers
        self._user_agent = user_agent
        self._stall = stall_timeout
        self._max_height = max_height
        self.skipped_segments = 0
        self.delivered: list[int] = []

    async def run(self, on_open: Callable[[], None], on_data: OnData) -> None:
        text, url = self._text, self._url
        variants = parse_master(text)
        if variants:
            chosen = choose_variant(variants, self._max_height)
            url = url.join(URL(chosen.uri))
            text = await self._fetch_text(url, "variant playlist")
        try:
            playlist = parse_media(text)
        except (PlaylistError, ValueError) as exc:
            raise UpstreamFailure(FailureReason.INVALID_CONTENT, f"bad playlist: {exc}") from None
        loop = asyncio.get_running_loop()
        next_seq: int | None = None
        opened = False
        last_growth = loop.time()
        while True:
            fresh = [s for s in playlist.segments if next_seq is None or s.sequence >= next_seq]
            if next_seq is None:
                fresh = fresh[-LIVE_EDGE_SEGMENTS:]
            elif fresh and fresh[0].sequence > next_seq:
                self.skipped_segments += fresh[0].sequence - next_seq
            for segment in fresh:
                await self._segment(
                    url.join(URL(segment.uri)), segment, on_data, first=not opened, on_open=on_open
                )
                opened = True
                next_seq = segment.sequence + 1
                self.delivered.append(segment.sequence)
                last_growth = loop.time()
            if playlist.ended:
                raise UpstreamFailure(FailureReason.END_OF_STREAM, "HLS playlist ended")
            if loop.time() - last_growth > STALE_TARGET_DURATIONS * playlist.target_duration:
                raise UpstreamFailure(FailureReason.STALL, "HLS playlist stopped growing")
            await asyncio.sleep(playlist.target_duration / 2)
            try:
                playlist = parse_media(await self._fetch_text(url, "media playlist"))
            except PlaylistError as exc:
                raise UpstreamFailure(
                    FailureReason.INVALID_CONTENT, f"bad playlist: {exc}"
                ) from None

    @contextlib.asynccontextmanager
    async def _get(
        self, url: URL, what: str, max_bytes: int | None = None
    ) -> AsyncIterator[HttpResponse]:
        """A 2xx answer for ``url``; every failure of the exchange becomes an UpstreamFailure."""
        timeouts = HttpTimeouts(connect=None, headers=self._stall, read=self._stall)
        try:
            async with self._http.get(
                url,
                timeouts=timeouts,
                headers=self._headers,
                user_agent=self._user_agent,
                max_bytes=max_bytes,
            ) as response:
                if not response.ok:
                    raise UpstreamFailure(
                        reason_for_http_status(response.status),
                        f"{what}: HTTP {response.status}",
                        response.status,
                    )
                yield response
        except HttpFailure as failure:
            raise _failure(failure, what) from None

    async def _fetch_text(self, url: URL, what: str) -> str:
        async with self._get(url, what, MAX_PLAYLIST_BYTES) as response:
            body = await response.body()
        return body.decode("utf-8", errors="replace")

    async def _segment(
        self,
        url: URL,
        segment: Segment,
        on_data: OnData,
        *,
        first: bool,
        on_open: Callable[[], None],
    ) -> None:
        async with self._get(url, f"segment {segment.sequence}") as response:
            checked = False
            pending = b""
            while chunk := await response.read(_SEGMENT_READ):
                if not checked:
                    pending += chunk
                    if len(pending) < 188 * 3:
                        continue
                    if not looks_like_ts(pending):
                        raise UpstreamFailure(
                            FailureReason.INVALID_CONTENT,
                            f"segment {segment.sequence} is not MPEG-TS",
                        )
                    checked = True
                    if first:
                        on_open()
                    chunk, pending = pending, b""
                result = on_data(chunk)
                if result is not None:
                    await result
            if not checked:
                if not pending or not looks_like_ts(pending, min_packets=1):
                    raise UpstreamFailure(
                        FailureReason.INVALID_CONTENT,
                        f"segment {segment.sequence} is empty or not MPEG-TS",
                    )
                if first:
                    on_open()
                result = on_data(pending)
                if result is not None:
                    await result

"""Reading one provider stream (a live ``.ts`` URL, or the HLS playlist it leads to).

``UpstreamReader.run()`` connects through the provider HTTP seam
(:class:`~streamforge.xtream.http.ProviderHttp`, which also carries the
Xtream API client and guide downloads; redirects followed, never cached:
every attempt starts from the original URL), checks the answer, and then
hands chunks of bytes to ``on_data`` until the stream fails. It never returns
normally: a live stream that ends is a failure too. Every way a provider
stream can die is translated into one :class:`UpstreamFailure` carrying a
:class:`FailureReason`:

==========================  ===============================================
connect refused/reset/DNS   ``CONNECTION_ERROR``
no connection in time       ``CONNECT_TIMEOUT``
no headers in time          ``HEADER_TIMEOUT``
non-2xx status              ``HTTP_ERROR`` (``status`` set; 401/403: ``CREDENTIAL_ERROR``)
HTML/text/JSON/empty/non-TS ``INVALID_CONTENT`` (also garbage mid-stream)
no bytes for stall_timeout  ``STALL``
EOF                         ``END_OF_STREAM``
error while reading         ``READ_ERROR``
==========================  ===============================================

"No connection in time" is ``connect_timeout`` for the TCP connect;
"no headers in time" is ``connect_timeout + header_timeout`` from sending the
request to the final response's headers. The seam tells the two apart (a
connect timeout is a ``TimeoutError`` too, so the order matters there, once).

An answer that is an HLS playlist (an ``mpegurl`` Content-Type or a body
starting with ``#EXTM3U``, e.g. after a redirect) is handed to
:class:`~streamforge.streaming.hls.HlsReader`, which delivers its segments
through the same callbacks and the same seam.

The content check looks at the first bytes: a text or JSON Content-Type, a
body starting like a document, or bytes without a 0x47 sync byte every 188
bytes are rejected before anything reaches a client.

**Steady-state reads coalesce.** After ``steady_after`` seconds (2 s) a read
waits until ``coalesce_seconds`` (0.1 s) after the previous one, unless that
one filled the read size. A provider that paces a few packets every few tens
of milliseconds is then taken, judged, spliced and written to every client
once per interval rather than once per arrival: a fraction of the event
loop's work and of its system calls (each of which hands the GIL to a busy
worker thread), for 0.1 s of delay that no player's seconds of buffer
notice. A tune, a failover candidate and a probe read as bytes arrive.

The URL carries the account's credentials; it is never logged, and error
details are built without it (the seam's failure details are fact-only and
redacted of the credentials in the URL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from streamforge.streaming.hls import MAX_PLAYLIST_BYTES, HlsReader, is_playlist
from streamforge.streaming.reasons import FailureReason, UpstreamFailure, reason_for_http_status
from streamforge.ts.packets import looks_like_ts
from streamforge.xtream.http import (
    DEFAULT_USER_AGENT,
    FailureKind,
    HttpFailure,
    HttpResponse,
    HttpTimeouts,
    ProviderHttp,
)

#: How many bytes of a new stream are inspected before it is accepted as TS.
SNIFF_BYTES = 188 * 7
_READ_SIZE = 188 * 350  # ~64 KiB
#: Consecutive bytes without MPEG-TS structure after which a stream is dropped.
GARBAGE_LIMIT = 188 * 100
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")
_DOC_STARTS = (b"<", b"{", b"[")


@dataclass(frozen=True)
class UpstreamConfig:
    connect_timeout: float = 1.0
    header_timeout: float = 1.5
    stall_timeout: float = 3.0
    user_agent: str = DEFAULT_USER_AGENT
    read_timeout: float | None = None
    """Seconds without a byte after which the read itself fails (``stall``); None:
    ``stall_timeout``. A session that judges the media clock (see
    :mod:`streamforge.streaming.health.judge`) sets it far above, as the last
    backstop: with a clock, silence between bursts is judged by the lag, and a
    stream without timestamps by the session's own ``stall_timeout`` check."""

    coalesce_seconds: float = 0.1
    """In steady state, a read waits until this long after the previous one
    (unless that one filled the read size): a provider pacing a few packets
    every few tens of milliseconds is then taken, spliced and sent on in one
    piece per interval instead of one per arrival - a fraction of the event
    loop's work and of its system calls, for a delay no player can see. 0: off."""
    steady_after: float = 2.0
    """Seconds of streaming after which reads coalesce: a tune, a failover
    candidate or a probe gets its first seconds as they arrive."""

    def timeouts(self) -> HttpTimeouts:
        """The seam's limits for one stream request (no total: a live stream has no end)."""
        return HttpTimeouts(
            connect=self.connect_timeout,
            headers=self.connect_timeout + self.header_timeout,
            read=self.no_bytes_timeout,
            total=None,
        )

    @property
    def no_bytes_timeout(self) -> float:
        return self.read_timeout if self.read_timeout is not None else self.stall_timeout


OnData = Callable[[bytes], Awaitable[None] | None]


def _sniff(content_type: str, head: bytes) -> str | None:
    """None when ``head`` is acceptable MPEG-TS, else why not."""
    lowered = content_type.lower()
    if any(lowered.startswith(t) for t in _TEXT_TYPES):
        return f"provider sent {lowered.split(';')[0]} instead of video"
    stripped = head.lstrip()
    if not stripped:
        return "provider sent an empty body"
    if stripped.startswith(_DOC_STARTS) or stripped[:15].lower().startswith(b"<!doctype"):
        return "provider sent a document (HTML/JSON) instead of MPEG-TS"
    if not looks_like_ts(head):
        return "provider sent bytes that are not MPEG-TS (no sync byte every 188 bytes)"
    return None


def _failure(failure: HttpFailure, stall_timeout: float) -> UpstreamFailure:
    """The failover reason for a failure the seam reported."""
    kind = failure.kind
    if kind is FailureKind.CONNECT_TIMEOUT:
        return UpstreamFailure(FailureReason.CONNECT_TIMEOUT, "connect timed out")
    if kind is FailureKind.HEADER_TIMEOUT:
        return UpstreamFailure(FailureReason.HEADER_TIMEOUT, "no response headers in time")
    if kind is FailureKind.TOO_MANY_REDIRECTS:
        return UpstreamFailure(FailureReason.HTTP_ERROR, "too many redirects", 310)
    if kind is FailureKind.READ_TIMEOUT:
        return UpstreamFailure(FailureReason.STALL, f"no data for {stall_timeout:g} s")
    if kind in {FailureKind.READ_ERROR, FailureKind.TRUNCATED}:
        return UpstreamFailure(FailureReason.READ_ERROR, f"read failed ({failure.detail})")
    if kind is FailureKind.TOO_LARGE:
        return UpstreamFailure(FailureReason.INVALID_CONTENT, failure.detail)
    # UNREACHABLE, INVALID_RESPONSE, BAD_REDIRECT
    return UpstreamFailure(FailureReason.CONNECTION_ERROR, f"cannot connect ({failure.detail})")


class UpstreamReader:
    """Reads one provider stream until it fails; see the module docstring.

    ``http`` is the provider HTTP seam; a bare :class:`aiohttp.ClientSession`
    (the session manager's pooled one) is sent through a seam wrapping it.
    """

    def __init__(
        self,
        http: ProviderHttp | aiohttp.ClientSession,
        url: str,
        config: UpstreamConfig,
        *,
        user_agent: str | None = None,
    ) -> None:
        self._http = http if isinstance(http, ProviderHttp) else ProviderHttp(http)
        self._url = url
        self._config = config
        self._user_agent = user_agent or config.user_agent
        self.bytes_read = 0
        self.status: int | None = None

    async def run(self, on_open: Callable[[], None], on_data: OnData) -> None:
        """Connect, validate, stream. Always ends by raising :class:`UpstreamFailure`."""
        cfg = self._config
        headers = {"Accept": "*/*", "Connection": "close"}
        try:
            async with self._http.get(
                self._url, timeouts=cfg.timeouts(), headers=headers, user_agent=self._user_agent
            ) as response:
                self.status = response.status
                if not response.ok:
                    raise UpstreamFailure(
                        reason_for_http_status(response.status),
                        f"HTTP {response.status}",
                        response.status,
                    )
                playlist = await self._stream(response, on_open, on_data)
                playlist_url = response.url
        except HttpFailure as failure:
            raise _failure(failure, cfg.no_bytes_timeout) from None
        hls = HlsReader(
            self._http,
            playlist_url,
            playlist,
            headers=headers,
            user_agent=self._user_agent,
            stall_timeout=cfg.stall_timeout,
        )
        await hls.run(on_open, on_data)

    async def _stream(
        self, response: HttpResponse, on_open: Callable[[], None], on_data: OnData
    ) -> str:
        """Stream TS until failure; return the text instead if the answer is an HLS playlist."""
        content_type = response.headers.get("Content-Type", "")
        head = b""
        while len(head) < SNIFF_BYTES:
            chunk = await response.read(_READ_SIZE)
            if not chunk:
                break
            head += chunk
        if is_playlist(content_type, head):
            while len(head) < MAX_PLAYLIST_BYTES:
                chunk = await response.read(_READ_SIZE)
                if not chunk:
                    return head.decode("utf-8", errors="replace")
                head += chunk
            raise UpstreamFailure(FailureReason.INVALID_CONTENT, "HLS playlist too large")
        problem = _sniff(content_type, head)
        if problem is not None:
            raise UpstreamFailure(FailureReason.INVALID_CONTENT, problem)
        on_open()
        self.bytes_read += len(head)
        result = on_data(head)
        if result is not None:
            await result
        garbage = 0
        cfg = self._config
        loop = asyncio.get_running_loop()
        steady_at = loop.time() + cfg.steady_after
        last_read = 0.0
        full = True
        while True:
            if cfg.coalesce_seconds > 0 and not full:
                now = loop.time()
                if now >= steady_at and now < last_read + cfg.coalesce_seconds:
                    await asyncio.sleep(last_read + cfg.coalesce_seconds - now)
            chunk = await response.read(_READ_SIZE)
            last_read = loop.time()
            full = len(chunk) >= _READ_SIZE
            if not chunk:
                raise UpstreamFailure(FailureReason.END_OF_STREAM, "provider ended the stream")
            self.bytes_read += len(chunk)
            if len(chunk) >= 2 * 188:
                if looks_like_ts(chunk, min_packets=2):
                    garbage = 0
                else:
                    garbage += len(chunk)
                    if garbage >= GARBAGE_LIMIT:
                        raise UpstreamFailure(
                            FailureReason.INVALID_CONTENT,
                            "provider started sending bytes that are not MPEG-TS",
                        )
            result = on_data(chunk)
            if result is not None:
                await result

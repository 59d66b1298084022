"""Reading one provider stream: the only module that talks to a provider's
live URL.

``UpstreamReader.run()`` connects (redirects followed, never cached: every
attempt starts from the original URL), checks the answer, and then hands
chunks of bytes to ``on_data`` until the stream fails. It never returns
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

An answer that is an HLS playlist (an ``mpegurl`` Content-Type or a body
starting with ``#EXTM3U``, e.g. after a redirect) is handed to
:class:`~streamforge.streaming.hls.HlsReader`, which delivers its segments
through the same callbacks.

The content check looks at the first bytes: a text or JSON Content-Type, a
body starting like a document, or bytes without a 0x47 sync byte every 188
bytes are rejected before anything reaches a client.

The URL carries the account's credentials; it is never logged, and error
details are built without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from streamforge.streaming.hls import MAX_PLAYLIST_BYTES, HlsReader, is_playlist
from streamforge.streaming.reasons import FailureReason, UpstreamFailure, reason_for_http_status
from streamforge.ts.packets import looks_like_ts

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
    user_agent: str = "VLC/3.0.20 LibVLC/3.0.20"


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


class UpstreamReader:
    """Reads one provider stream until it fails; see the module docstring."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        config: UpstreamConfig,
        *,
        user_agent: str | None = None,
    ) -> None:
        self._http = http
        self._url = url
        self._config = config
        self._user_agent = user_agent or config.user_agent
        self.bytes_read = 0
        self.status: int | None = None

    async def run(self, on_open: Callable[[], None], on_data: OnData) -> None:
        """Connect, validate, stream. Always ends by raising :class:`UpstreamFailure`."""
        cfg = self._config
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=cfg.connect_timeout, connect=cfg.connect_timeout
        )
        headers = {"User-Agent": self._user_agent, "Accept": "*/*", "Connection": "close"}
        try:
            request = self._http.get(
                self._url,
                headers=headers,
                timeout=timeout,
                allow_redirects=True,
                max_redirects=5,
            )
            async with asyncio.timeout(cfg.connect_timeout + cfg.header_timeout):
                response = await request
        except TimeoutError:
            raise UpstreamFailure(
                FailureReason.HEADER_TIMEOUT, "no response headers in time"
            ) from None
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamFailure(FailureReason.CONNECT_TIMEOUT, "connect timed out") from None
        except aiohttp.TooManyRedirects:
            raise UpstreamFailure(FailureReason.HTTP_ERROR, "too many redirects", 310) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamFailure(
                FailureReason.CONNECTION_ERROR, f"cannot connect ({type(exc).__name__})"
            ) from None
        async with response:
            self.status = response.status
            if not 200 <= response.status < 300:
                raise UpstreamFailure(
                    reason_for_http_status(response.status),
                    f"HTTP {response.status}",
                    response.status,
                )
            playlist = await self._stream(response, on_open, on_data)
        hls = HlsReader(
            self._http,
            response.url,
            playlist,
            headers=headers,
            stall_timeout=cfg.stall_timeout,
        )
        await hls.run(on_open, on_data)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            async with asyncio.timeout(self._config.stall_timeout):
                return await response.content.read(_READ_SIZE)
        except TimeoutError:
            raise UpstreamFailure(
                FailureReason.STALL, f"no data for {self._config.stall_timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamFailure(
                FailureReason.READ_ERROR, f"read failed ({type(exc).__name__})"
            ) from None

    async def _stream(
        self, response: aiohttp.ClientResponse, on_open: Callable[[], None], on_data: OnData
    ) -> str:
        """Stream TS until failure; return the text instead if the answer is an HLS playlist."""
        content_type = response.headers.get("Content-Type", "")
        head = b""
        while len(head) < SNIFF_BYTES:
            chunk = await self._read(response)
            if not chunk:
                break
            head += chunk
        if is_playlist(content_type, head):
            while len(head) < MAX_PLAYLIST_BYTES:
                chunk = await self._read(response)
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
        while True:
            chunk = await self._read(response)
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

"""The provider HTTP seam: every request StreamForge sends to a provider.

Theory of operation
-------------------
StreamForge talks HTTP to providers in four places: the Xtream API client
(:mod:`streamforge.xtream.client`), the live upstream reader
(:mod:`streamforge.streaming.upstream`), the HLS reader
(:mod:`streamforge.streaming.hls`) and guide downloads
(:mod:`streamforge.epg.sources`). All of them send their GETs through
:meth:`ProviderHttp.get`, so the rules below exist once:

* **User-Agent**: every request carries one (the caller's, else the
  :class:`ProviderHttp` default, else :data:`DEFAULT_USER_AGENT`); some panels
  ban empty or unknown ones.
* **Timeouts** (:class:`HttpTimeouts`): ``connect`` bounds each TCP/TLS
  connect, ``headers`` the time from sending the request to the final
  response's headers (connect and every redirect hop included), ``read`` each
  wait for body bytes, and ``total`` the whole exchange. A connect that times
  out is reported as :attr:`FailureKind.CONNECT_TIMEOUT`, never as a header
  timeout (aiohttp's connect timeout is a subclass of :class:`TimeoutError`,
  so it is told apart first).
* **Redirects** are followed here, hop by hop (up to ``max_redirects``), and
  never remembered: every request starts from the URL the caller gave.
  ``response.url`` is the final URL (an HLS playlist's relative URIs resolve
  against it).
* **Size caps**: ``max_bytes`` bounds a body (a ``Content-Length`` above it
  fails at once, a body that grows past it fails at that read).
* **Failures** are one :class:`HttpFailure` with a :class:`FailureKind`; each
  caller translates it into its own vocabulary (``ProviderError`` subtypes,
  failover reasons, ``GuideError``). A non-2xx status is not a failure here:
  callers judge statuses themselves.
* **Credentials never leak**: failure text is built from facts only (host,
  limits, exception type names, OS error strings) and then passed through
  :func:`redact_secrets` with the secrets the caller named *and* those found
  in every URL of the exchange (Xtream ``/live/USER/PASS/`` path segments and
  ``username``/``password``/``token`` query values). Failures are raised
  outside the ``except`` block that caught the lower-level error, so they
  carry no ``__context__`` whose traceback would print a URL.

The transport seam
------------------
``ProviderHttp(handler=...)`` answers every request with an in-process
``handler(request) -> HttpReply`` (plain or async) instead of the network.
The handler may raise what the network raises (``aiohttp.ConnectionTimeoutError``,
``ConnectionRefusedError``, ``aiohttp.ServerDisconnectedError`` …), wait
forever (a panel that never answers), or give a body that is an async
iterable which raises or stalls part-way; every rule above (timeouts,
redirects, caps, redaction, failure kinds) applies to it exactly as to the
network. Importing this module pulls in aiohttp and the standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self
from urllib.parse import quote, quote_plus

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from streamforge.errors import ProviderError

DEFAULT_USER_AGENT = "VLC/3.0.20 LibVLC/3.0.20"
"""A common player User-Agent; some panels ban empty or unknown ones."""
DEFAULT_MAX_REDIRECTS = 5
CHUNK_SIZE = 1 << 16
REDACTED = "***"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SECRET_PARAMS = frozenset({"username", "password", "pass", "passwd", "token"})
_CREDENTIAL_PATHS = frozenset({"live", "movie", "series", "timeshift"})
#: Values found in a URL shorter than this are not collected by :func:`secrets_in_url`
#: (their URL positions are masked all the same).
_MIN_URL_SECRET = 3
#: A named secret is masked in the prose of a message only from this length on.
_MIN_PROSE_SECRET = 8
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"<>]+")
_FIELD_IN_TEXT = re.compile(
    r"""((?<![\w])["']?(?:username|password|passwd|pass|token)["']?\s*[=:]\s*["']?)"""
    r"""([^\s&"',;]+)(["']?)""",
    re.IGNORECASE,
)
_WRITE_BATCH = 1 << 20


def _forms(secret: str) -> set[str]:
    """``secret`` raw and in the encodings it takes in a query string (``quote_plus``
    and yarl's form) and in a path segment (``quote``)."""
    forms = {secret}
    with contextlib.suppress(UnicodeError, ValueError):  # unencodable secret: raw form only
        forms.add(quote(secret, safe=""))
        forms.add(quote_plus(secret, safe=""))
        forms.add(URL.build(path="/", query={"v": secret}).raw_query_string[2:])
        forms.add(URL.build(path="/" + secret).raw_path[1:])
    forms.discard("")
    return forms


def _wordlike(secret: str) -> bool:
    """A secret that could be an ordinary word of a message (``wrong``, ``password``,
    ``bad1``): it is masked where credentials go, never in the prose around them."""
    return len(secret) < _MIN_PROSE_SECRET or secret.isalnum()


def _redact_url(url: str, forms: set[str]) -> str:
    """``url`` (as written in a message) with its credential positions masked: user
    info, the two segments after ``/live/`` (``/movie/``, ``/series/``,
    ``/timeshift/``), secret query values, and any segment or value that *is* one of
    ``forms``."""
    scheme, sep, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = REDACTED + authority[authority.rindex("@") :]
    path, question, query = tail.partition("?")
    segments = path.split("/")
    for index, segment in enumerate(segments[:-2]):
        if segment.lower() in _CREDENTIAL_PATHS:
            segments[index + 1] = segments[index + 2] = REDACTED
            break
    segments = [REDACTED if segment in forms else segment for segment in segments]
    pairs = query.split("&") if question else []
    for index, pair in enumerate(pairs):
        key, eq, value = pair.partition("=")
        if eq and (key.lower() in _SECRET_PARAMS or value in forms):
            pairs[index] = f"{key}={REDACTED}"
    return scheme + sep + authority + slash + "/".join(segments) + question + "&".join(pairs)


def redact_secrets(text: str, *secrets: str) -> str:
    """``text`` with credentials masked by ``***`` where credentials occur.

    * In every URL of the text: user info, the ``/live/USER/PASS/`` path segments
      (also ``/movie/``, ``/series/``, ``/timeshift/``), the values of the
      ``username``, ``password``, ``pass``, ``passwd`` and ``token`` query
      parameters, and any path segment or query value equal to one of ``secrets``
      (raw or URL-encoded).
    * Known fields: ``password=VALUE``, ``"password": "VALUE"`` (same names).
    * Elsewhere, a secret is masked only as a whole token (not part of a longer
      word), and only when it cannot be an ordinary word of the message: shorter
      than 8 characters or letters and digits only, it is left alone, so that the
      password ``wrong`` does not turn "wrong username or password" into
      "*** username or password".

    Nothing is ever replaced as a bare substring of other text.
    """
    forms: set[str] = set()
    prose: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        found = _forms(secret)
        forms |= found
        if not _wordlike(secret):
            prose |= found
    text = _URL_IN_TEXT.sub(lambda m: _redact_url(m.group(0), forms), text)
    text = _FIELD_IN_TEXT.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    for form in sorted(prose, key=len, reverse=True):
        text = re.sub(rf"(?<![\w*]){re.escape(form)}(?![\w*])", REDACTED, text)
    return text


def secrets_in_url(url: URL) -> tuple[str, ...]:
    """The credentials a provider URL carries (decoded), for :func:`redact_secrets`.

    These are the two path segments after ``/live/`` (also ``/movie/``,
    ``/series/``, ``/timeshift/``) and the values of the ``username``,
    ``password``, ``pass``, ``passwd`` and ``token`` query parameters. Values
    shorter than three characters are left out.
    """
    found: list[str] = []
    parts = url.parts
    for index, part in enumerate(parts[:-2]):
        if part.lower() in _CREDENTIAL_PATHS:
            found += parts[index + 1 : index + 3]
            break
    for key, value in url.query.items():
        if key.lower() in _SECRET_PARAMS:
            found.append(value)
    return tuple(s for s in found if len(s) >= _MIN_URL_SECRET)


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """Time limits of one exchange, in seconds (``None``: no limit).

    ``connect``: each TCP (and TLS) connect. ``headers``: from sending the
    request to the final response's headers, connect and redirects included.
    ``read``: each wait for body bytes (the longest silence allowed).
    ``total``: the whole exchange, body included.
    """

    connect: float | None = 10.0
    headers: float | None = 30.0
    read: float | None = 30.0
    total: float | None = None


class FailureKind(enum.StrEnum):
    """What went wrong in one exchange, in transport terms."""

    UNREACHABLE = "unreachable"
    """Refused, DNS failure, reset, TLS failure, closed before answering."""
    CONNECT_TIMEOUT = "connect_timeout"
    """No TCP/TLS connection within ``connect``."""
    HEADER_TIMEOUT = "header_timeout"
    """No response headers within ``headers`` (or the total limit ran out first)."""
    TOO_MANY_REDIRECTS = "too_many_redirects"
    """More than ``max_redirects`` redirects (``status`` is the last redirect's)."""
    BAD_REDIRECT = "bad_redirect"
    """A redirect to something that is not an http(s) URL."""
    INVALID_RESPONSE = "invalid_response"
    """The answer was not valid HTTP."""
    READ_TIMEOUT = "read_timeout"
    """No body bytes within ``read`` (or the total limit ran out)."""
    TRUNCATED = "truncated"
    """The body ended before its announced length (or its transfer encoding broke)."""
    READ_ERROR = "read_error"
    """The connection broke while the body was read."""
    TOO_LARGE = "too_large"
    """The body is larger than ``max_bytes`` (``limit``)."""


class HttpFailure(ProviderError):
    """One exchange with a provider failed; ``detail`` is one redacted line.

    ``host`` is ``host[:port]`` of the URL that failed, ``cause`` the name of
    the lower-level exception type (``""`` when there was none), ``status`` the
    last redirect status for :attr:`FailureKind.TOO_MANY_REDIRECTS` and
    ``limit`` the byte cap for :attr:`FailureKind.TOO_LARGE`.
    """

    def __init__(
        self,
        kind: FailureKind,
        detail: str,
        *,
        host: str,
        cause: str = "",
        status: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(f"{kind.value} ({host}): {detail}")
        self.kind = kind
        self.detail = detail
        self.host = host
        self.cause = cause
        self.status = status
        self.limit = limit


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What a transport handler is asked for (the URL may carry credentials)."""

    url: URL
    headers: Mapping[str, str]
    method: str = "GET"


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A handler's answer. ``body`` is bytes or an async iterable of chunks
    (which may raise or stall, like a real connection)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterable[bytes] = b""


Handler = Callable[[HttpRequest], Awaitable[HttpReply] | HttpReply]
"""An in-process transport: answers a request instead of the network."""


class _Body(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class _ReplyBody:
    """A handler's body, read like aiohttp's ``StreamReader.read(n)``."""

    def __init__(self, body: bytes | AsyncIterable[bytes]) -> None:
        self._buffer = body if isinstance(body, bytes) else b""
        self._chunks = None if isinstance(body, bytes) else aiter(body)

    async def read(self, n: int = -1) -> bytes:
        while not self._buffer and self._chunks is not None:
            try:
                self._buffer = bytes(await anext(self._chunks))
            except StopAsyncIteration:
                self._chunks = None
        size = len(self._buffer) if n < 0 else n
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk

    async def aclose(self) -> None:
        closer = getattr(self._chunks, "aclose", None)
        self._chunks = None
        if closer is not None:
            await closer()


def _host_label(url: URL) -> str:
    host = url.host or "?"
    return host if url.explicit_port is None else f"{host}:{url.explicit_port}"


def _secs(limit: float | None) -> str:
    return "the total time limit" if limit is None else f"{limit:g} s"


def _os_reason(exc: OSError | None, redact: Callable[[str], str]) -> str:
    """``connection refused``: the OS's words for an error number, never a class name
    (asyncio's own text for a refused connect is "Connect call failed ('host', port)")."""
    if exc is None:
        return "the connection failed"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return redact(exc.strerror).lower() if exc.strerror else "the connection failed"


def _describe(
    exc: BaseException, *, answering: bool, redact: Callable[[str], str], host: str = "the server"
) -> tuple[FailureKind, str]:
    """Kind and fact-only detail of a connection-level error (never its ``str()``,
    never an exception class name: "could not connect to 127.0.0.1:8080:
    connection refused").

    OS error strings are redacted before they are lower-cased, so that a
    credential echoed in one is still recognised.
    """
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FailureKind.UNREACHABLE, "host name could not be resolved; check the server URL"
    if isinstance(exc, (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError)):
        return (
            FailureKind.UNREACHABLE,
            "TLS handshake failed; try http:// or check the certificate",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = _os_reason(exc.os_error, redact)
        return FailureKind.UNREACHABLE, f"could not connect to {host}: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        if answering:
            return FailureKind.READ_ERROR, "the server closed the connection"
        return FailureKind.UNREACHABLE, "the server closed the connection without answering"
    if isinstance(exc, ConnectionResetError):
        kind = FailureKind.READ_ERROR if answering else FailureKind.UNREACHABLE
        return kind, "the server reset the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return FailureKind.TRUNCATED, "the answer was cut off part-way"
    if isinstance(exc, aiohttp.ClientResponseError):
        return FailureKind.INVALID_RESPONSE, "the answer is not valid HTTP"
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.RedirectClientError)):
        return FailureKind.BAD_REDIRECT, "redirected to an unusable URL"
    if isinstance(exc, OSError):  # aiohttp.ClientOSError and plain socket errors
        reason = redact(exc.strerror).lower() if exc.strerror else _os_reason(exc, redact)
    else:
        reason = "the connection failed"
    return (FailureKind.READ_ERROR if answering else FailureKind.UNREACHABLE), reason


class _Exchange:
    """The limits, deadline and secrets of one :meth:`ProviderHttp.get`."""

    def __init__(
        self,
        timeouts: HttpTimeouts,
        max_bytes: int | None,
        secrets: Iterable[str],
        url: URL,
    ) -> None:
        self.timeouts = timeouts
        self.max_bytes = max_bytes
        self._secrets = [s for s in secrets if s]
        self._url = url
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._deadline = None if timeouts.total is None else loop.time() + timeouts.total

    def at(self, url: URL) -> None:
        """The exchange now talks to ``url``: name its host, redact its credentials."""
        self._url = url
        self._secrets += secrets_in_url(url)

    def limit(self, seconds: float | None) -> float | None:
        """``seconds``, shortened to what is left of the total time limit."""
        if self._deadline is None:
            return seconds
        left = max(self._deadline - self._loop.time(), 0.0)
        return left if seconds is None else min(seconds, left)

    def redact(self, text: str) -> str:
        return redact_secrets(text, *self._secrets)

    def failure(
        self,
        kind: FailureKind,
        detail: str,
        *,
        cause: str = "",
        status: int | None = None,
        limit: int | None = None,
    ) -> HttpFailure:
        return HttpFailure(
            kind,
            self.redact(detail),
            host=self.redact(_host_label(self._url)),
            cause=cause,
            status=status,
            limit=limit,
        )

    def from_error(self, exc: BaseException, *, answering: bool) -> HttpFailure:
        t = self.timeouts
        # ConnectionTimeoutError subclasses TimeoutError: it must be told apart first.
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            kind, detail = FailureKind.CONNECT_TIMEOUT, f"no connection within {_secs(t.connect)}"
        elif isinstance(exc, TimeoutError) and answering:
            kind, detail = FailureKind.READ_TIMEOUT, f"no data within {_secs(t.read)}"
        elif isinstance(exc, TimeoutError):
            kind = FailureKind.HEADER_TIMEOUT
            detail = f"no response headers within {_secs(t.headers)}"
        else:
            kind, detail = _describe(
                exc,
                answering=answering,
                redact=self.redact,
                host=self.redact(_host_label(self._url)),
            )
        return self.failure(kind, detail, cause=type(exc).__name__)


class HttpResponse:
    """A provider's answer: status, headers, final URL, and the body under the limits.

    Body reads raise :class:`HttpFailure` (``READ_TIMEOUT``, ``TRUNCATED``,
    ``READ_ERROR``, ``TOO_LARGE``). The response is released when the
    ``async with ProviderHttp.get(...)`` block ends.
    """

    def __init__(
        self,
        *,
        status: int,
        url: URL,
        headers: CIMultiDictProxy[str],
        content_length: int | None,
        body: _Body,
        exchange: _Exchange,
    ) -> None:
        self.status = status
        self.url = url
        self.headers = headers
        self.content_length = content_length
        self.bytes_read = 0
        self._body = body
        self._exchange = exchange

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    async def read(self, size: int = CHUNK_SIZE) -> bytes:
        """Up to ``size`` body bytes as soon as some are there; ``b""`` at the end."""
        exchange = self._exchange
        failure: HttpFailure
        try:
            async with asyncio.timeout(exchange.limit(exchange.timeouts.read)):
                chunk = await self._body.read(size)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            failure = exchange.from_error(exc, answering=True)
        else:
            self.bytes_read += len(chunk)
            cap = exchange.max_bytes
            if cap is None or self.bytes_read <= cap:
                return chunk
            failure = exchange.failure(
                FailureKind.TOO_LARGE, f"answer larger than {cap} bytes", limit=cap
            )
        raise failure

    async def chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Every remaining body chunk (each at most ``size`` bytes)."""
        while chunk := await self.read(size):
            yield chunk

    async def body(self) -> bytes:
        """The whole remaining body (bounded by ``max_bytes`` when given)."""
        return b"".join([chunk async for chunk in self.chunks()])


class ProviderHttp:
    """The HTTP client every provider request goes through (see the module docstring).

    ``session``: an :class:`aiohttp.ClientSession` to send through, which is
    never closed here; without one, a session (no cookies kept) is created on
    first use and closed by :meth:`aclose`. ``handler``: an in-process
    transport used instead of the network. ``user_agent``: the default for
    requests that name none. ``auto_decompress`` applies to the session
    created here (a ``Content-Encoding: gzip`` body is then decoded).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        handler: Handler | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        auto_decompress: bool = True,
    ) -> None:
        if session is not None and handler is not None:
            raise ValueError("give a session or a handler, not both")
        self._session = session
        self._owns_session = session is None
        self._handler = handler
        self.user_agent = user_agent.strip() or DEFAULT_USER_AGENT
        self.max_redirects = max_redirects
        self._auto_decompress = auto_decompress

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session created here (a given session is left open)."""
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            # Cookies are not kept: every request is independent of the last.
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=self._auto_decompress
            )
            self._owns_session = True
        return self._session

    @contextlib.asynccontextmanager
    async def get(
        self,
        url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        headers: Mapping[str, str] | None = None,
        user_agent: str | None = None,
        max_bytes: int | None = None,
        max_redirects: int | None = None,
        secrets: Iterable[str] = (),
    ) -> AsyncIterator[HttpResponse]:
        """GET ``url`` (with ``params`` added to its query), following redirects.

        Yields the final response, whatever its status; raises
        :class:`HttpFailure` when there is none. ``secrets`` are redacted from
        failure text in addition to the credentials found in the URLs.
        """
        start = URL(url) if isinstance(url, str) else url
        if params:
            start = start.extend_query(params)
        exchange = _Exchange(timeouts or HttpTimeouts(), max_bytes, secrets, start)
        sent = {"Accept": "*/*", **(headers or {})}
        sent["User-Agent"] = (user_agent or "").strip() or self.user_agent
        limit = self.max_redirects if max_redirects is None else max_redirects
        async with contextlib.AsyncExitStack() as stack:
            yield await self._follow(stack, start, sent, exchange, limit)

    async def _follow(
        self,
        stack: contextlib.AsyncExitStack,
        url: URL,
        headers: dict[str, str],
        exchange: _Exchange,
        max_redirects: int,
    ) -> HttpResponse:
        """Send, follow redirects, and return the final response registered on ``stack``."""
        failure: HttpFailure
        try:
            async with asyncio.timeout(exchange.limit(exchange.timeouts.headers)):
                for hop in range(max_redirects + 1):
                    exchange.at(url)
                    hop_stack = contextlib.AsyncExitStack()
                    async with hop_stack:
                        response = await self._send(hop_stack, url, headers, exchange)
                        target = self._redirect_target(response)
                        if target is None:
                            stack.push_async_exit(hop_stack.pop_all())
                            return self._checked(response, exchange)
                    if hop == max_redirects:
                        failure = exchange.failure(
                            FailureKind.TOO_MANY_REDIRECTS,
                            f"more than {max_redirects} redirects",
                            status=response.status,
                        )
                        break
                    try:
                        url = url.join(URL(target))
                    except ValueError:
                        url = URL()
                    if url.scheme not in {"http", "https"} or not url.host:
                        failure = exchange.failure(
                            FailureKind.BAD_REDIRECT, "redirected to an unusable URL"
                        )
                        break
        except HttpFailure as exc:
            failure = exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            failure = exchange.from_error(exc, answering=False)
        raise failure

    @staticmethod
    def _redirect_target(response: HttpResponse) -> str | None:
        if response.status not in _REDIRECT_STATUSES:
            return None
        return response.headers.get("Location") or None

    @staticmethod
    def _checked(response: HttpResponse, exchange: _Exchange) -> HttpResponse:
        cap = exchange.max_bytes
        if (
            cap is not None
            and response.content_length is not None
            and response.content_length > cap
        ):
            raise exchange.failure(
                FailureKind.TOO_LARGE, f"answer larger than {cap} bytes", limit=cap
            )
        return response

    async def _send(
        self,
        stack: contextlib.AsyncExitStack,
        url: URL,
        headers: dict[str, str],
        exchange: _Exchange,
    ) -> HttpResponse:
        """One request, no redirects: over the handler or the network."""
        if self._handler is not None:
            answer = self._handler(HttpRequest(url, dict(headers)))
            reply: HttpReply
            if inspect.isawaitable(answer):
                reply = await answer
            else:
                reply = answer
            body = _ReplyBody(reply.body)
            stack.push_async_callback(body.aclose)
            reply_headers = CIMultiDictProxy(CIMultiDict(reply.headers))
            length = reply_headers.get("Content-Length")
            if length is None and isinstance(reply.body, bytes):
                length = str(len(reply.body))
            return HttpResponse(
                status=reply.status,
                url=url,
                headers=reply_headers,
                content_length=int(length) if length is not None and length.isdigit() else None,
                body=body,
                exchange=exchange,
            )
        connect = exchange.timeouts.connect
        raw = await self._client().get(
            url,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=connect, sock_connect=connect, sock_read=None
            ),
        )
        await stack.enter_async_context(raw)
        return HttpResponse(
            status=raw.status,
            url=raw.url,
            headers=raw.headers,
            content_length=raw.content_length,
            body=raw.content,
            exchange=exchange,
        )


def _open_private(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


async def save_stream(chunks: AsyncIterable[bytes], dest: Path) -> int:
    """Write ``chunks`` to ``dest``; return the number of bytes written.

    The bytes go to ``dest`` + ``.part`` (mode 0600) in batches of 1 MiB,
    written in a worker thread, and the file is renamed over ``dest`` only
    when complete: ``dest`` is never a truncated download, and whatever
    failure ends ``chunks`` leaves no file behind. Memory use is bounded by
    the batch size.
    """
    part = dest.with_name(dest.name + ".part")
    written = 0
    pending: list[bytes] = []
    pending_size = 0
    handle = await asyncio.to_thread(_open_private, part)
    try:
        async for chunk in chunks:
            written += len(chunk)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _WRITE_BATCH:
                await asyncio.to_thread(handle.write, b"".join(pending))
                pending.clear()
                pending_size = 0
        if pending:
            await asyncio.to_thread(handle.write, b"".join(pending))
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(os.replace, part, dest)
    finally:
        if not handle.closed:
            await asyncio.to_thread(handle.close)
        await asyncio.to_thread(part.unlink, missing_ok=True)
    return written

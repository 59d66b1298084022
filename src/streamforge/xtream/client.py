"""Async client for the Xtream Codes player API.

Theory of operation
-------------------
An Xtream Codes panel exposes everything through three URLs, all carrying the
account's username and password in the clear:

* ``{server}/player_api.php?username=U&password=P[&action=…]`` — JSON: the
  account object without an action, lists for ``get_live_categories`` and
  ``get_live_streams``, ``{"epg_listings": […]}`` for ``get_short_epg``;
* ``{server}/xmltv.php?username=U&password=P`` — the XMLTV guide (often
  hundreds of megabytes, so it is streamed to disk, never held in memory);
* ``{server}/live/U/P/{stream_id}.ts`` — the live stream itself, which this
  client only builds (:meth:`XtreamClient.live_url`); the streaming module
  reads it.

Every request goes through the provider HTTP seam
(:class:`~streamforge.xtream.http.ProviderHttp`): GET with the account's
User-Agent and the configured timeouts, follow redirects (a fresh request
always starts at the configured server — redirect targets are never
remembered), read the body up to a size cap. This client then requires a 2xx
status and decodes. Each way a panel can misbehave becomes exactly one
:class:`~streamforge.errors.ProviderError` subclass with a one-line message
that says what to do about it:

=================================================  ===========================
panel behaviour                                    exception
=================================================  ===========================
refused, DNS failure, reset, TLS failure           ``ProviderUnreachable``
no connection / no headers / no bytes in time      ``ProviderTimeout``
non-2xx status, redirect loop                      ``ProviderHTTPError``
HTTP 200 ``{"user_info": {"auth": 0}}``            ``ProviderAuthError``
account object instead of a list (expired …)       ``AccountExpiredError``
HTML page, empty body, malformed JSON, odd shape   ``ProviderBadResponse``
=================================================  ===========================

Credentials never leak
----------------------
Provider URLs contain the password, and so do the ``str()`` of many aiohttp
exceptions. Therefore:

* error messages are composed only from the server's host, the action name
  and facts about the answer (the seam's failure details are built the same
  way and already redacted), and are passed through :meth:`XtreamClient.redact`
  as a last line of defence;
* provider errors are raised *outside* the ``except`` block that caught the
  aiohttp error, so they carry no ``__context__`` whose traceback would print
  the URL;
* :meth:`XtreamClient.live_url` returns a URL that contains the credentials.
  It must never be logged, stored in an event, or shown in the UI; pass it
  only to the HTTP client that opens the stream, and run anything that might
  echo it through :meth:`XtreamClient.redact` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp

from streamforge.cpu_pool import CpuPool
from streamforge.errors import (
    AccountExpiredError,
    ConfigError,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    ProviderUnreachable,
)
from streamforge.xtream.http import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
from streamforge.xtream.http import (
    FailureKind,
    HttpFailure,
    HttpResponse,
    HttpTimeouts,
    ProviderHttp,
    redact_secrets,
    save_stream,
)
from streamforge.xtream.models import (
    AccountInfo,
    AccountStatus,
    Category,
    EpgListing,
    LiveStream,
    Parsed,
    looks_like_account,
    parse_categories,
    parse_live_streams,
    parse_short_epg,
)
from streamforge.xtream.streams_worker import PackedStreams, pack_streams, parse_streams_body

log = logging.getLogger(__name__)

T = TypeVar("T")

#: API answers at least this large are decoded in a worker thread.
_OFF_LOOP_BYTES = 1 << 20

_EXTENSION = re.compile(r"[A-Za-z0-9]{1,8}")
_SNIFF_BYTES = 512
_SNIFF_JSON_BYTES = 64 * 1024
_GUIDE = "the XMLTV guide (xmltv.php)"


@dataclass(frozen=True, slots=True)
class XtreamTimeouts:
    """Time limits for panel requests, in seconds.

    ``connect``: to open the TCP (and TLS) connection. ``read``: the longest
    wait for the response headers (counted from sending the request,
    redirects included) and between body bytes — this is what catches a panel
    that accepts the connection and then never answers. ``total``: the whole
    of one API request, body included (``None`` = no limit). ``guide_total``:
    the whole XMLTV download (default no limit, because large guides on slow
    panels take minutes; ``read`` still catches a stalled download).
    """

    connect: float = 10.0
    read: float = 30.0
    total: float | None = 180.0
    guide_total: float | None = None

    def for_api(self) -> HttpTimeouts:
        """The seam's limits for one ``player_api.php`` request."""
        return HttpTimeouts(
            connect=self.connect, headers=self.read, read=self.read, total=self.total
        )

    def for_guide(self) -> HttpTimeouts:
        """The seam's limits for the XMLTV download."""
        return HttpTimeouts(
            connect=self.connect, headers=self.read, read=self.read, total=self.guide_total
        )


def _normalise_server(server_url: str) -> tuple[str, str]:
    """``(base_url, host_label)`` for a configured server URL.

    Accepts ``host:port`` without a scheme and URLs ending in ``/`` or in a
    pasted ``/player_api.php``/``/get.php``. Rejects URLs with embedded
    credentials (they belong in the username/password fields).
    """
    raw = server_url.strip()
    if not raw:
        raise ConfigError("server URL is empty (expected e.g. http://provider.example:8080)")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme.lower() not in {"http", "https"}:
        raise ConfigError(f"server URL must start with http:// or https://, not {parts.scheme}://")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "server URL must not contain a username or password; enter them separately"
        )
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise ConfigError("server URL has an invalid port") from None
    if not host:
        raise ConfigError("server URL has no host name")
    path = parts.path.rstrip("/")
    for suffix in ("/player_api.php", "/get.php", "/xmltv.php", "/panel_api.php"):
        if path.lower().endswith(suffix):
            path = path[: -len(suffix)]
            break
    netloc = parts.netloc
    label = host if port is None else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{path}", label


class XtreamClient:
    """One Xtream Codes account on one panel.

    ``label`` names the account in error messages, which read "wrong username
    or password for account {label}" and "provider {label} returned …" — so
    pass a bare name such as ``'main'`` (default: the server's ``host:port``).
    It must not contain the password. ``session`` lets several
    clients share one :class:`aiohttp.ClientSession`; without it the client
    creates its own on first use and closes it in :meth:`aclose` (or at the
    end of ``async with``). A shared session is never closed by the client.
    ``http`` sends through a given :class:`~streamforge.xtream.http.ProviderHttp`
    instead (e.g. one with an in-process handler), which is not closed either.
    """

    def __init__(
        self,
        server_url: str,
        username: str,
        password: str,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        timeouts: XtreamTimeouts | None = None,
        session: aiohttp.ClientSession | None = None,
        http: ProviderHttp | None = None,
        label: str | None = None,
        max_redirects: int = 5,
        max_api_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if session is not None and http is not None:
            raise ValueError("give a session or an http seam, not both")
        self._base, host_label = _normalise_server(server_url)
        self._username = username
        self._password = password
        self._user_agent = user_agent.strip() or DEFAULT_USER_AGENT
        self._timeouts = timeouts or XtreamTimeouts()
        self._http = http or ProviderHttp(session, user_agent=self._user_agent)
        self._owns_http = http is None
        self._label = label or host_label
        self._max_redirects = max_redirects
        self._max_api_bytes = max_api_bytes

    # -- lifecycle -----------------------------------------------------------

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
        """Close the client's own session (a shared session or seam is left open)."""
        if self._owns_http:
            await self._http.aclose()

    # -- public API ----------------------------------------------------------

    @property
    def label(self) -> str:
        """How this account is named in messages (never contains credentials)."""
        return self._label

    @property
    def server_url(self) -> str:
        """The normalised server base URL (no credentials)."""
        return self._base

    @property
    def user_agent(self) -> str:
        """The User-Agent sent with every request of this client."""
        return self._user_agent

    def redact(self, text: str) -> str:
        """``text`` with this account's username and password (raw or URL-encoded) replaced."""
        return redact_secrets(text, self._password, self._username)

    def live_url(self, stream_id: int, ext: str = "ts") -> str:
        """The URL of a live stream: ``{server}/live/{user}/{pass}/{stream_id}.{ext}``.

        The URL CONTAINS THE USERNAME AND PASSWORD. Never log it, store it in
        an event or show it to a user; hand it only to the HTTP client that
        opens the stream, and redact anything that may echo it.
        """
        if isinstance(stream_id, bool) or not isinstance(stream_id, int) or stream_id < 0:
            raise ValueError("stream_id must be a non-negative integer")
        if not _EXTENSION.fullmatch(ext):
            raise ValueError("ext must be a short alphanumeric extension such as 'ts' or 'm3u8'")
        user = quote(self._username, safe="")
        password = quote(self._password, safe="")
        return f"{self._base}/live/{user}/{password}/{stream_id}.{ext}"

    async def account_info(self) -> AccountInfo:
        """The account's state. Raises :class:`ProviderAuthError` for wrong credentials.

        An expired, disabled or banned account is *returned* (check
        :attr:`AccountInfo.is_active`); :meth:`verify` raises for it instead.
        """
        data = await self._api(None, {})
        if not looks_like_account(data):
            raise self._error(
                ProviderBadResponse,
                f"provider {self._label} answered player_api.php without an account object "
                "(is this an Xtream Codes panel URL?)",
            )
        info = AccountInfo.parse(data)
        if not info.auth:
            raise self._refused_error(info)
        return info

    async def verify(self) -> AccountInfo:
        """Like :meth:`account_info`, but raise :class:`AccountExpiredError` unless active."""
        info = await self.account_info()
        if not info.is_active:
            raise self._inactive_error(info)
        return info

    async def live_categories(self) -> list[Category]:
        """All live categories of the account."""
        data = await self._api("get_live_categories", {})
        parsed = parse_categories(data)
        return self._list_result(parsed, data, "get_live_categories")

    async def live_streams(self, category_id: str | int | None = None) -> list[LiveStream]:
        """All live streams, or those of one category. Entries without a stream id are dropped."""
        params = {} if category_id is None else {"category_id": str(category_id)}
        data = await self._api("get_live_streams", params)
        parsed = await asyncio.to_thread(parse_live_streams, data)
        return self._list_result(parsed, data, "get_live_streams")

    async def live_stream_rows(self, cpu: CpuPool) -> PackedStreams:
        """All live streams as compact rows with their quality, decoded and parsed
        in a worker process of ``cpu`` (:mod:`streamforge.xtream.streams_worker`).

        Same answers, same errors as :meth:`live_streams`: a body that is not a
        usable list is decoded here again, where the error is made.
        """
        what = "get_live_streams"
        body = await self._api_body(what, {})
        packed = await cpu.run(parse_streams_body, body)
        if packed is None:
            data = await asyncio.to_thread(self._decode_json, body, what)
            parsed = parse_live_streams(data)
            streams = self._list_result(parsed, data, what)
            return await asyncio.to_thread(pack_streams, streams, 0)
        if packed.skipped:
            log.warning(
                "provider %s: dropped %d unusable entries from %s",
                self._label,
                packed.skipped,
                what,
            )
        return packed

    async def short_epg(self, stream_id: int, limit: int = 4) -> list[EpgListing]:
        """The next ``limit`` programmes of one stream from the panel's own guide."""
        data = await self._api(
            "get_short_epg", {"stream_id": str(int(stream_id)), "limit": str(int(limit))}
        )
        parsed = parse_short_epg(data)
        return self._list_result(parsed, data, "get_short_epg")

    async def iter_xmltv(
        self, chunk_size: int = 1 << 16, *, max_bytes: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """Stream the XMLTV guide (``xmltv.php``) as chunks of bytes.

        The first bytes are checked before anything is yielded: an empty
        answer, an HTML page or a JSON account object (wrong credentials,
        expired account) raise instead. A gzip-compressed file is passed
        through unchanged (the guide importer sniffs the magic bytes); a
        ``Content-Encoding: gzip`` transfer is decompressed transparently.
        ``max_bytes`` caps the guide (``ProviderBadResponse`` beyond it).
        Use it with :func:`contextlib.aclosing` when not reading to the end.
        """
        what = _GUIDE
        params = {"username": self._username, "password": self._password}
        async with contextlib.AsyncExitStack() as stack:
            resp = await self._open(
                stack, "xmltv.php", params, self._timeouts.for_guide(), what, max_bytes
            )
            head = b""
            finished = False
            # Read enough to judge the answer: a little for XML, more when it
            # looks like a JSON account object (which is larger).
            while not finished and (
                len(head) < _SNIFF_BYTES
                or (head.lstrip()[:1] == b"{" and len(head) < _SNIFF_JSON_BYTES)
            ):
                chunk = await self._next_chunk(resp, chunk_size, what)
                if chunk:
                    head += chunk
                else:
                    finished = True
            self._check_guide_head(head, what)
            yield head
            while not finished:
                chunk = await self._next_chunk(resp, chunk_size, what)
                if chunk:
                    yield chunk
                else:
                    finished = True

    async def download_xmltv(self, dest: Path, *, max_bytes: int | None = None) -> int:
        """Download the XMLTV guide to ``dest``; return the number of bytes written.

        The guide is written to ``dest`` + ``.part`` in batches of 1 MiB and
        renamed over ``dest`` only when complete, so ``dest`` is never a
        truncated guide (:func:`~streamforge.xtream.http.save_stream`). Memory
        use is bounded by the batch size, whatever the guide's size.
        ``max_bytes`` caps the download (``ProviderBadResponse`` beyond it).
        """
        async with contextlib.aclosing(self.iter_xmltv(max_bytes=max_bytes)) as chunks:
            return await save_stream(chunks, dest)

    # -- request pipeline ------------------------------------------------------

    async def _api(self, action: str | None, extra: Mapping[str, str]) -> object:
        """GET ``player_api.php`` with ``action`` and decode the JSON answer."""
        what = "player_api.php" if action is None else action
        body = await self._api_body(action, extra)
        if len(body) >= _OFF_LOOP_BYTES:
            # A 60,000-stream list takes most of a second to decode: do it in a
            # worker thread so live streams on the event loop keep flowing.
            return await asyncio.to_thread(self._decode_json, body, what)
        return self._decode_json(body, what)

    async def _api_body(self, action: str | None, extra: Mapping[str, str]) -> bytes:
        """GET ``player_api.php`` with ``action``: the raw answer."""
        what = "player_api.php" if action is None else action
        params = {"username": self._username, "password": self._password}
        if action is not None:
            params["action"] = action
        params.update(extra)
        return await self._fetch("player_api.php", params, self._timeouts.for_api(), what)

    async def _fetch(
        self, path: str, params: Mapping[str, str], timeouts: HttpTimeouts, what: str
    ) -> bytes:
        """GET a whole (capped) body from a 2xx answer, translating every failure."""
        async with contextlib.AsyncExitStack() as stack:
            resp = await self._open(stack, path, params, timeouts, what, self._max_api_bytes)
            chunks: list[bytes] = []
            while chunk := await self._next_chunk(resp, 1 << 16, what):
                chunks.append(chunk)
            body = b"".join(chunks)
        return body

    async def _open(
        self,
        stack: contextlib.AsyncExitStack,
        path: str,
        params: Mapping[str, str],
        timeouts: HttpTimeouts,
        what: str,
        max_bytes: int | None,
    ) -> HttpResponse:
        """Send the GET through the seam and return a 2xx response registered on ``stack``."""
        failure: HttpFailure
        try:
            resp = await stack.enter_async_context(
                self._http.get(
                    f"{self._base}/{path}",
                    params=params,
                    timeouts=timeouts,
                    user_agent=self._user_agent,
                    max_bytes=max_bytes,
                    max_redirects=self._max_redirects,
                    secrets=(self._password, self._username),
                )
            )
        except HttpFailure as exc:
            failure = exc
        else:
            if not resp.ok:
                raise self._http_error(resp.status, what)
            return resp
        raise self._failure_error(failure, what)

    async def _next_chunk(self, resp: HttpResponse, size: int, what: str) -> bytes:
        """The next body chunk, ``b""`` at the end; read failures become provider errors."""
        failure: HttpFailure
        try:
            return await resp.read(size)
        except HttpFailure as exc:
            failure = exc
        raise self._failure_error(failure, what)

    # -- decoding --------------------------------------------------------------

    def _decode_json(self, body: bytes, what: str) -> object:
        text = body.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not text:
            raise self._error(
                ProviderBadResponse,
                f"provider {self._label} returned an empty answer to {what} "
                "(panel overloaded, account blocked or wrong URL)",
            )
        if text[:1] == b"<":
            raise self._error(
                ProviderBadResponse,
                f"provider {self._label} returned an HTML page instead of JSON for {what} "
                "(maybe blocked or wrong URL)",
            )
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            # Panels with legacy encodings: keep what is readable rather than fail.
            decoded = text.decode("utf-8", errors="replace")
        error: ProviderError
        try:
            return json.loads(decoded)
        except json.JSONDecodeError as exc:
            error = self._malformed(what, exc)
        except RecursionError:
            error = self._error(
                ProviderBadResponse,
                f"provider {self._label} returned absurdly nested JSON for {what}",
            )
        raise error

    def _list_result(self, parsed: Parsed[T] | None, data: object, what: str) -> list[T]:
        """Items of a parsed list answer, or the right error when it was not a list."""
        if parsed is None:
            raise self._not_a_list(data, what)
        if parsed.skipped:
            log.warning(
                "provider %s: dropped %d unusable entries from %s",
                self._label,
                parsed.skipped,
                what,
            )
        return parsed.items

    def _not_a_list(self, data: object, what: str) -> ProviderError:
        if looks_like_account(data):
            info = AccountInfo.parse(data)
            if not info.auth:
                return self._refused_error(info)
            if not info.is_active:
                return self._inactive_error(info)
            return self._error(
                ProviderBadResponse,
                f"provider {self._label} answered {what} with the account object instead of "
                "a list (the panel may not support this action)",
            )
        return self._error(
            ProviderBadResponse,
            f"provider {self._label} answered {what} with JSON of the wrong shape "
            f"({type(data).__name__} instead of a list)",
        )

    def _check_guide_head(self, head: bytes, what: str) -> None:
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not text:
            raise self._error(
                ProviderBadResponse,
                f"provider {self._label} returned an empty answer for {what} "
                "(the panel may not offer a guide for this account)",
            )
        if text[:2] == b"\x1f\x8b":
            return
        lowered = text[:64].lower()
        if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
            raise self._error(
                ProviderBadResponse,
                f"provider {self._label} returned an HTML page instead of XML for {what} "
                "(maybe blocked or wrong URL)",
            )
        if text[:1] == b"<":
            return
        if text[:1] == b"{":
            data: object = None
            with contextlib.suppress(ValueError, RecursionError):
                data = json.loads(text)
            if looks_like_account(data):
                raise self._not_a_list(data, what)
        raise self._error(
            ProviderBadResponse,
            f"provider {self._label} answered {what} with something that is not XML",
        )

    # -- error construction ------------------------------------------------------

    def _error(
        self, kind: type[ProviderError], message: str, status: int | None = None
    ) -> ProviderError:
        """Build ``kind`` with a redacted message (``status`` for ProviderHTTPError)."""
        safe = self.redact(message)
        if kind is ProviderHTTPError:
            return ProviderHTTPError(safe, status if status is not None else 0)
        return kind(safe)

    def _refused_error(self, info: AccountInfo) -> ProviderError:
        """auth=0: wrong credentials, unless the panel says why (some send auth=0 when expired)."""
        if info.status in {AccountStatus.EXPIRED, AccountStatus.DISABLED, AccountStatus.BANNED}:
            return self._inactive_error(info)
        return self._auth_error()

    def _auth_error(self) -> ProviderError:
        return self._error(
            ProviderAuthError,
            f"wrong username or password for account {self._label} "
            "(the panel answered auth=0; check the credentials with the provider)",
        )

    def _inactive_error(self, info: AccountInfo) -> ProviderError:
        when = f" on {info.exp_date:%Y-%m-%d}" if info.exp_date is not None else ""
        if info.status is AccountStatus.EXPIRED:
            message = f"account {self._label} expired{when} (renew it with the provider)"
        elif info.status is AccountStatus.DISABLED:
            message = f"account {self._label} is disabled by the provider"
        elif info.status is AccountStatus.BANNED:
            message = f"account {self._label} is banned by the provider"
        else:
            message = (
                f"account {self._label} is not active (panel status unknown{when}); "
                "check it with the provider"
            )
        return self._error(AccountExpiredError, message)

    def _http_error(self, status: int, what: str) -> ProviderError:
        if status in {401, 403}:
            hint = "wrong credentials, IP blocked or User-Agent rejected"
        elif status == 404:
            hint = "check the server URL"
        elif status == 429:
            hint = "too many requests; wait before retrying"
        elif 300 <= status < 400:
            hint = "redirect without a usable target"
        elif status >= 500:
            hint = "provider-side failure; try again later"
        else:
            hint = "unexpected status"
        return self._error(
            ProviderHTTPError,
            f"provider {self._label} answered {what} with HTTP {status} ({hint})",
            status,
        )

    def _timeout_error(self, what: str, *, connecting: bool) -> ProviderError:
        limits = self._timeouts
        if connecting:
            message = (
                f"provider {self._label} did not answer {what} in time "
                f"(connect {limits.connect:g} s, headers {limits.read:g} s); "
                "the panel may be overloaded or down"
            )
        else:
            message = (
                f"provider {self._label} stopped sending its answer to {what} "
                f"(no data for {limits.read:g} s or over the total time limit)"
            )
        return self._error(ProviderTimeout, message)

    def _failure_error(self, failure: HttpFailure, what: str) -> ProviderError:
        """The provider error for a failure the seam reported (its detail is fact-only)."""
        kind = failure.kind
        if kind in {FailureKind.CONNECT_TIMEOUT, FailureKind.HEADER_TIMEOUT}:
            return self._timeout_error(what, connecting=True)
        if kind is FailureKind.READ_TIMEOUT:
            return self._timeout_error(what, connecting=False)
        if kind is FailureKind.TOO_MANY_REDIRECTS:
            return self._error(
                ProviderHTTPError,
                f"provider {self._label} redirected {what} more than {self._max_redirects} "
                "times (redirect loop; check the server URL)",
                failure.status,
            )
        if kind is FailureKind.BAD_REDIRECT:
            message = f"provider {self._label} redirected {what} to an unusable URL"
        elif kind is FailureKind.INVALID_RESPONSE:
            message = (
                f"provider {self._label} sent an invalid HTTP answer to {what} ({failure.cause})"
            )
        elif kind is FailureKind.TRUNCATED:
            message = (
                f"provider {self._label} cut off its answer to {what} part-way "
                "(truncated or corrupt transfer; try again)"
            )
        elif kind is FailureKind.TOO_LARGE and what == _GUIDE:
            message = (
                f"provider {self._label} sent an XMLTV guide larger than "
                f"{failure.limit} bytes; download stopped"
            )
        elif kind is FailureKind.TOO_LARGE:
            message = f"provider {self._label} sent more than {failure.limit} bytes for {what}"
        else:  # UNREACHABLE, READ_ERROR
            return self._error(
                ProviderUnreachable, f"cannot reach provider {self._label}: {failure.detail}"
            )
        return self._error(ProviderBadResponse, message)

    def _malformed(self, what: str, exc: json.JSONDecodeError) -> ProviderError:
        return self._error(
            ProviderBadResponse,
            f"provider {self._label} returned malformed JSON for {what} "
            f"({exc.msg} at line {exc.lineno} column {exc.colno})",
        )

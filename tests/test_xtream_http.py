"""The provider HTTP seam: User-Agent, redirects, timeouts, size caps, redaction.

Driven through the in-process handler (the same code path as the network
after the transport), and on real loopback sockets where the transport itself
is the point (connect timeout, redirects over aiohttp, the body cap).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from streamforge.errors import ProviderUnreachable
from streamforge.xtream.client import XtreamClient
from streamforge.xtream.http import (
    DEFAULT_USER_AGENT,
    FailureKind,
    HttpFailure,
    HttpReply,
    HttpRequest,
    HttpTimeouts,
    ProviderHttp,
    redact_secrets,
    save_stream,
    secrets_in_url,
)

PASSWORD = "S3cr&t p@ss+/=?#%"
LIVE = URL(f"http://panel.example:8080/live/alice-user/{quote(PASSWORD, safe='')}/7.ts")
FAST = HttpTimeouts(connect=1.0, headers=0.3, read=0.3)
REQUEST_INFO = aiohttp.RequestInfo(LIVE, "GET", CIMultiDictProxy(CIMultiDict()), LIVE)


async def get_body(
    http: ProviderHttp, url: URL | str = LIVE, *, timeouts: HttpTimeouts = FAST, **kwargs: Any
) -> bytes:
    async with http.get(url, timeouts=timeouts, **kwargs) as response:
        return await response.body()


async def failure_of(http: ProviderHttp, url: URL | str = LIVE, **kwargs: Any) -> HttpFailure:
    """The failure of a GET, after checking that its text leaks no credential."""
    with pytest.raises(HttpFailure) as info:
        await get_body(http, url, **kwargs)
    failure = info.value
    text = str(failure) + repr(failure) + "".join(traceback.format_exception(failure))
    for secret in (PASSWORD, "alice-user"):
        assert secret not in text
        assert quote(secret, safe="") not in text
    assert failure.__context__ is None
    assert "\n" not in str(failure)
    return failure


def handler_raising(exc: BaseException) -> ProviderHttp:
    def handler(_request: HttpRequest) -> HttpReply:
        raise exc

    return ProviderHttp(handler=handler)


async def chunks(*parts: bytes | BaseException | asyncio.Event) -> AsyncIterator[bytes]:
    for part in parts:
        if isinstance(part, BaseException):
            raise part
        if isinstance(part, asyncio.Event):
            await part.wait()
        else:
            yield part


# -- redaction --------------------------------------------------------------------------


def test_redact_tolerates_unencodable_secrets() -> None:
    assert redact_secrets("http://p/x/\ud800/y", "\ud800") == "http://p/x/***/y"
    assert redact_secrets("a\ud800b", "\ud800") == "a\ud800b"  # not a credential position
    assert redact_secrets("nothing here", "", "zz") == "nothing here"


@pytest.mark.parametrize(
    "password",
    ["wrong", "password", "or", "a", "for", "bad1", "account", "username", "1", "p", "x"],
)
def test_redaction_masks_credentials_not_words(password: str) -> None:
    """A short or common-word password is masked where credentials go, never in prose."""
    message = "wrong username or password for account 'bad1' (1 of 1), see /p/x"
    assert redact_secrets(message, password, "bad1") == message
    url = f"http://panel.example:8080/live/bad1/{password}/7.ts"
    assert redact_secrets(f"GET {url} failed: wrong", password, "bad1") == (
        "GET http://panel.example:8080/live/***/***/7.ts failed: wrong"
    )
    api = f"http://panel.example/player_api.php?username=bad1&password={password}&action=get"
    assert redact_secrets(f"{api} wrong", password) == (
        "http://panel.example/player_api.php?username=***&password=***&action=get wrong"
    )
    assert redact_secrets(f"sent password={password}, user", password) == (
        "sent password=***, user"
    )
    assert redact_secrets(f'{{"password": "{password}"}} wrong', password) == (
        '{"password": "***"} wrong'
    )


def test_redaction_of_urls_and_fields() -> None:
    # User info, a secret anywhere in a path or query, and long secrets as whole tokens.
    assert redact_secrets("http://bob:pw@p.example/x") == "http://***@p.example/x"
    assert redact_secrets("http://p.example/a/pw/b?x=pw&y=1", "pw") == (
        "http://p.example/a/***/b?x=***&y=1"
    )
    assert redact_secrets("token=abc", "nothing") == "token=***"
    long = "s3cret-Passw0rd"
    assert redact_secrets(f"echo {long}: {long}x", long) == f"echo ***: {long}x"


def test_secrets_in_url() -> None:
    assert secrets_in_url(LIVE) == ("alice-user", PASSWORD)
    api = URL("http://p.example/player_api.php").with_query(
        username="alice-user", password=PASSWORD, action="get_live_streams"
    )
    assert secrets_in_url(api) == ("alice-user", PASSWORD)
    assert secrets_in_url(URL("http://p.example/timeshift/bob-user/hunter22/60/x.ts")) == (
        "bob-user",
        "hunter22",
    )
    assert secrets_in_url(URL("http://p.example/guide.xml?token=ab")) == ()  # too short
    assert secrets_in_url(URL("http://p.example/live.ts")) == ()


async def test_failure_text_is_redacted_of_url_and_given_secrets() -> None:
    # An OS error that (absurdly) echoes credentials: the seam's text still hides them.
    echo = OSError(111, f"refused alice-user {PASSWORD} extra-secret")
    failure = await failure_of(handler_raising(echo), secrets=("extra-secret",))
    assert failure.kind is FailureKind.UNREACHABLE
    assert failure.detail == "refused *** *** ***"
    assert failure.host == "panel.example:8080"
    assert failure.cause == "ConnectionRefusedError"


async def test_provider_errors_from_the_seam_carry_no_secrets() -> None:
    client = XtreamClient(
        "http://panel.example:8080",
        "alice-user",
        PASSWORD,
        http=handler_raising(ConnectionRefusedError(111, f"no {PASSWORD}")),
    )
    with pytest.raises(ProviderUnreachable) as info:
        await client.account_info()
    assert str(info.value) == "cannot reach provider panel.example:8080: no ***"
    assert info.value.__context__ is None


# -- requests ---------------------------------------------------------------------------


async def test_user_agent_accept_and_params() -> None:
    seen: list[HttpRequest] = []

    def handler(request: HttpRequest) -> HttpReply:
        seen.append(request)
        return HttpReply(body=b"ok")

    http = ProviderHttp(handler=handler, user_agent="TiviMate/4.7.0")
    assert await get_body(http, "http://p.example/player_api.php", params={"a": "b c"}) == b"ok"
    await get_body(http, "http://p.example/x", user_agent="Kodi/20", headers={"X-Y": "z"})
    assert await get_body(ProviderHttp(handler=handler, user_agent="  "), "http://p.example/")
    assert [r.headers["User-Agent"] for r in seen] == [
        "TiviMate/4.7.0",
        "Kodi/20",
        DEFAULT_USER_AGENT,
    ]
    assert all(r.headers["Accept"] == "*/*" for r in seen)
    assert seen[0].url.query["a"] == "b c"
    assert seen[1].headers["X-Y"] == "z"


async def test_a_non_2xx_status_is_the_callers_to_judge() -> None:
    http = ProviderHttp(handler=lambda _r: HttpReply(404, body=b"gone"))
    async with http.get("http://p.example/x", timeouts=FAST) as response:
        assert response.status == 404
        assert not response.ok
        assert await response.body() == b"gone"


async def test_a_session_and_a_handler_exclude_each_other() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="not both"):
            ProviderHttp(session, handler=lambda _r: HttpReply())


# -- redirects --------------------------------------------------------------------------


async def test_redirects_are_followed_from_the_original_url_every_time() -> None:
    seen: list[str] = []

    def handler(request: HttpRequest) -> HttpReply:
        seen.append(str(request.url))
        if request.url.path == "/start":
            return HttpReply(301, {"Location": "/a/one"})
        if request.url.path == "/a/one":
            return HttpReply(303, {"Location": "two?x=1"})
        return HttpReply(body=b"there")

    http = ProviderHttp(handler=handler)
    for _ in range(2):
        async with http.get("http://p.example/start", timeouts=FAST) as response:
            assert await response.body() == b"there"
            assert response.url == URL("http://p.example/a/two?x=1")
    assert (
        seen
        == ["http://p.example/start", "http://p.example/a/one", "http://p.example/a/two?x=1"] * 2
    )


async def test_too_many_redirects() -> None:
    http = ProviderHttp(handler=lambda r: HttpReply(302, {"Location": str(r.url)}))
    failure = await failure_of(http, max_redirects=3)
    assert failure.kind is FailureKind.TOO_MANY_REDIRECTS
    assert failure.status == 302
    assert "more than 3 redirects" in failure.detail


@pytest.mark.parametrize("location", ["ftp://p.example/x", "http://[bad", "mailto:x@p.example"])
async def test_redirect_to_an_unusable_url(location: str) -> None:
    http = ProviderHttp(handler=lambda _r: HttpReply(302, {"Location": location}))
    failure = await failure_of(http)
    assert failure.kind is FailureKind.BAD_REDIRECT


async def test_a_redirect_without_location_is_the_final_answer() -> None:
    http = ProviderHttp(handler=lambda _r: HttpReply(302, body=b"moved, somewhere"))
    async with http.get(LIVE, timeouts=FAST) as response:
        assert response.status == 302


async def test_redirects_over_real_sockets_are_followed_and_never_cached() -> None:
    hits: list[str] = []

    async def start(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        raise web.HTTPFound("/there")

    async def there(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return web.Response(body=b"arrived")

    app = web.Application()
    app.router.add_get("/start", start)
    app.router.add_get("/there", there)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with ProviderHttp() as http:
            for _ in range(2):
                async with http.get(f"{base}/start", timeouts=FAST) as response:
                    assert await response.body() == b"arrived"
                    assert response.url.path == "/there"
    finally:
        await runner.cleanup()
    assert hits == ["/start", "/there"] * 2


# -- timeouts ---------------------------------------------------------------------------


async def test_connect_timeout_is_told_apart_from_header_timeout() -> None:
    failure = await failure_of(handler_raising(aiohttp.ConnectionTimeoutError()))
    assert failure.kind is FailureKind.CONNECT_TIMEOUT
    assert failure.detail == "no connection within 1 s"


async def test_connect_timeout_on_a_real_full_backlog() -> None:
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.setblocking(False)
        await asyncio.get_running_loop().sock_connect(filler, listener.getsockname())
        port = listener.getsockname()[1]
        async with ProviderHttp() as http:
            failure = await failure_of(
                http,
                f"http://127.0.0.1:{port}/",
                timeouts=HttpTimeouts(connect=0.3, headers=5.0, read=5.0),
            )
    assert failure.kind is FailureKind.CONNECT_TIMEOUT


async def test_header_timeout() -> None:
    never = asyncio.Event()

    async def handler(_request: HttpRequest) -> HttpReply:
        await never.wait()
        return HttpReply()

    failure = await failure_of(ProviderHttp(handler=handler))
    assert failure.kind is FailureKind.HEADER_TIMEOUT
    assert failure.detail == "no response headers within 0.3 s"


async def test_read_timeout() -> None:
    never = asyncio.Event()
    http = ProviderHttp(handler=lambda _r: HttpReply(body=chunks(b"some", never)))
    failure = await failure_of(http)
    assert failure.kind is FailureKind.READ_TIMEOUT
    assert failure.detail == "no data within 0.3 s"


async def test_total_limit_ends_a_trickling_body() -> None:
    tick = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        while True:
            tick.clear()
            asyncio.get_running_loop().call_later(0.02, tick.set)
            await tick.wait()
            yield b"x"

    http = ProviderHttp(handler=lambda _r: HttpReply(body=trickle()))
    limits = HttpTimeouts(connect=1.0, headers=1.0, read=1.0, total=0.3)
    failure = await failure_of(http, timeouts=limits)
    assert failure.kind is FailureKind.READ_TIMEOUT


# -- body failures and caps ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (aiohttp.ClientPayloadError("broken"), FailureKind.TRUNCATED),
        (ConnectionResetError(104, "Connection reset by peer"), FailureKind.READ_ERROR),
        (aiohttp.ServerDisconnectedError(), FailureKind.READ_ERROR),
    ],
)
async def test_body_failures(error: BaseException, kind: FailureKind) -> None:
    http = ProviderHttp(handler=lambda _r: HttpReply(body=chunks(b"start", error)))
    failure = await failure_of(http)
    assert failure.kind is kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (aiohttp.ServerDisconnectedError(), FailureKind.UNREACHABLE),
        (ConnectionResetError(104, "Connection reset by peer"), FailureKind.UNREACHABLE),
        (aiohttp.ClientResponseError(REQUEST_INFO, (), status=400), FailureKind.INVALID_RESPONSE),
    ],
)
async def test_failures_before_an_answer(error: BaseException, kind: FailureKind) -> None:
    failure = await failure_of(handler_raising(error))
    assert failure.kind is kind


async def test_announced_length_over_the_cap_fails_at_once() -> None:
    http = ProviderHttp(handler=lambda _r: HttpReply(body=b"x" * 101))
    failure = await failure_of(http, max_bytes=100)
    assert failure.kind is FailureKind.TOO_LARGE
    assert failure.limit == 100


async def test_a_growing_body_over_the_cap_fails_at_that_read() -> None:
    http = ProviderHttp(handler=lambda _r: HttpReply(body=chunks(b"x" * 60, b"y" * 60)))
    async with http.get(LIVE, timeouts=FAST, max_bytes=100) as response:
        assert await response.read() == b"x" * 60
        with pytest.raises(HttpFailure) as info:
            await response.read()
    assert info.value.kind is FailureKind.TOO_LARGE


async def test_the_cap_over_real_sockets() -> None:
    async def big(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"z" * 5000)

    app = web.Application()
    app.router.add_get("/big", big)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with ProviderHttp() as http:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/big"
            failure = await failure_of(http, url, max_bytes=4999)
            assert await get_body(http, url, max_bytes=5000) == b"z" * 5000
    finally:
        await runner.cleanup()
    assert failure.kind is FailureKind.TOO_LARGE


async def test_the_handler_body_is_closed_with_the_response() -> None:
    finished = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data"
        finally:
            finished.set()

    http = ProviderHttp(handler=lambda _r: HttpReply(body=endless()))
    async with http.get(LIVE, timeouts=FAST) as response:
        assert await response.read() == b"data"
    assert finished.is_set()


# -- saving a download ------------------------------------------------------------------


async def test_save_stream_writes_whole_files_only(tmp_path: Path) -> None:
    dest = tmp_path / "guide.xml"
    assert await save_stream(chunks(b"a" * (1 << 20), b"b" * 10), dest) == (1 << 20) + 10
    assert dest.read_bytes() == b"a" * (1 << 20) + b"b" * 10
    assert os.stat(dest).st_mode & 0o777 == 0o600
    with pytest.raises(ConnectionResetError):
        await save_stream(chunks(b"c" * 10, ConnectionResetError()), tmp_path / "other.xml")
    assert sorted(os.listdir(tmp_path)) == ["guide.xml"]


# -- import weight ------------------------------------------------------------------------


def test_importing_the_seam_pulls_in_nothing_heavy() -> None:
    code = (
        "import json, sys; import streamforge.xtream.http; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'streamforge', 'sqlalchemy', 'numpy', 'lxml', 'pydantic', 'fastapi', 'av'})))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(result.stdout) == [
        "streamforge",
        "streamforge.errors",
        "streamforge.xtream",
        "streamforge.xtream.http",
    ]

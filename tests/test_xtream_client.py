"""XtreamClient against a local quirky panel (aiohttp on 127.0.0.1, port 0).

The panel in this file chooses its behaviour from the username, so each test
names the quirk it exercises. Every error path is checked for leaks: neither
the password nor the username (raw or URL-encoded) may appear in ``str()``,
``repr()`` or the formatted traceback of the raised exception.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
import yarl
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

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
from streamforge.xtream.client import (
    DEFAULT_USER_AGENT,
    XtreamClient,
    XtreamTimeouts,
)
from streamforge.xtream.http import REDACTED, redact_secrets
from streamforge.xtream.models import (
    AccountInfo,
    AccountStatus,
    as_bool,
    as_id,
    as_int,
    as_timestamp,
    parse_short_epg,
)

PASSWORD = "S3cr&t p@ss+/=?#%"
EXPIRED_AT = int(datetime(2026, 1, 2, 12, 0, tzinfo=UTC).timestamp())
BIG_COUNT = 60_000
# Generous limits for answers that come; a short read limit only where a panel stalls on
# purpose (the "slow" mode), so a loaded machine cannot turn a normal answer into a timeout.
NORMAL = XtreamTimeouts(connect=5.0, read=20.0, total=60.0)
STALL = XtreamTimeouts(connect=5.0, read=0.3, total=60.0)


def user(mode: str) -> str:
    """A username that selects a panel behaviour and never occurs in English text."""
    return f"zq_{mode}_u7"


def account_object(auth: int, status: str = "Active", exp: object = None) -> dict[str, object]:
    return {
        "user_info": {
            "username": "echoed-name",
            "password": PASSWORD,
            "message": "Welcome",
            "auth": auth,
            "status": status,
            "exp_date": exp,
            "is_trial": "0",
            "active_cons": "1",
            "created_at": "1700000000",
            "max_connections": "2",
            "allowed_output_formats": ["m3u8", "ts", "rtmp"],
        },
        "server_info": {
            "url": "127.0.0.1",
            "port": "8080",
            "https_port": "",
            "server_protocol": "http",
            "timezone": "Europe/London",
            "timestamp_now": 1767312000,
        },
    }


CATEGORIES: list[dict[str, object]] = [
    {"category_id": "1", "category_name": "UK | Sports", "parent_id": 0},
    {"category_id": 2, "category_name": "US | News", "parent_id": "0"},
    {"category_id": None, "category_name": "broken"},
]

STREAMS: list[dict[str, object]] = [
    {
        "num": "1",
        "name": "UK: Sky Sports Main Event FHD",
        "stream_type": "live",
        "stream_id": "101",
        "stream_icon": "http://logo/1.png",
        "epg_channel_id": "SkySpMainEvHD.uk",
        "added": "1700000000",
        "category_id": "1",
        "tv_archive": "1",
        "tv_archive_duration": "7",
        "custom_sid": "",
        "direct_source": "",
    },
    {
        "num": 2,
        "name": "US: CNN",
        "stream_type": "live",
        "stream_id": 102,
        "stream_icon": None,
        "epg_channel_id": None,
        "added": None,
        "category_id": 2,
        "category_ids": [2, "5"],
        "tv_archive": 0,
    },
    {"name": "no id at all", "category_id": "1"},
    {"name": "bad id", "stream_id": "abc", "category_id": "1"},
    {"name": "minimal", "stream_id": "103.0"},
]


def big_streams_body() -> bytes:
    items = [
        {
            "num": str(i + 1),
            "name": f"UK: Channel {i} HD",
            "stream_type": "live",
            "stream_id": str(10_000 + i),
            "stream_icon": "",
            "epg_channel_id": None if i % 3 else f"ch{i}.uk",
            "added": str(1_700_000_000 + i),
            "category_id": str(i % 40),
            "tv_archive": "0",
            "tv_archive_duration": "0",
        }
        for i in range(BIG_COUNT)
    ]
    return json.dumps(items).encode()


def epg_listing(title: str, start: int) -> dict[str, object]:
    return {
        "id": "9",
        "epg_id": "4",
        "title": base64.b64encode(title.encode()).decode(),
        "lang": "en",
        "start": "2026-01-02 10:00:00",
        "end": "2026-01-02 11:00:00",
        "description": base64.b64encode(b"About it").decode(),
        "channel_id": "SkySpMainEvHD.uk",
        "start_timestamp": str(start),
        "stop_timestamp": str(start + 3600),
    }


def xmltv_document(programmes: int) -> bytes:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<tv>\n<channel id="a.uk"/>\n']
    parts.extend(
        f'<programme channel="a.uk" start="20260102{i % 24:02d}0000 +0000">'
        f"<title>Show {i}</title></programme>\n"
        for i in range(programmes)
    )
    parts.append("</tv>\n")
    return "".join(parts).encode()


@dataclass
class Panel:
    """The fake panel's observable state."""

    base: str
    hits: dict[str, int] = field(default_factory=dict)
    user_agents: list[str] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)


def json_response(data: object) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), content_type="application/json")


def make_app(panel_state: Panel, release: asyncio.Event) -> web.Application:
    async def player_api(request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        panel_state.queries.append(query)
        panel_state.user_agents.append(request.headers.get("User-Agent", ""))
        key = f"{request.path}:{query.get('username')}"
        panel_state.hits[key] = panel_state.hits.get(key, 0) + 1
        if query.get("password") != PASSWORD:
            return json_response({"user_info": {"auth": 0}})
        mode = query.get("username", "")
        action = query.get("action")
        if mode == user("good") or (mode == user("redirect") and request.path != "/player_api.php"):
            if action is None:
                return json_response(account_object(1, "Active", str(EXPIRED_AT + 86400 * 365)))
            if action == "get_live_categories":
                return json_response(CATEGORIES)
            if action == "get_live_streams":
                wanted = query.get("category_id")
                return json_response(
                    [s for s in STREAMS if wanted is None or str(s.get("category_id")) == wanted]
                )
            if action == "get_short_epg":
                return json_response({"epg_listings": [epg_listing("News at Ten", EXPIRED_AT)]})
            return json_response([])
        if mode == user("redirect"):
            raise web.HTTPFound(f"/moved/player_api.php?{request.rel_url.raw_query_string}")
        if mode == user("loop"):
            raise web.HTTPFound(request.rel_url)
        if mode == user("badauth"):
            return json_response({"user_info": {"auth": 0}})
        if mode == user("expiredauth0"):
            return json_response(account_object(0, "Expired", str(EXPIRED_AT)))
        if mode in {user("expired"), user("banned"), user("disabled")}:
            status = {"expired": "Expired", "banned": "Banned", "disabled": "Disabled"}[
                mode.split("_")[1]
            ]
            return json_response(account_object(1, status, str(EXPIRED_AT)))
        if mode == user("html"):
            return web.Response(
                text=f"<html><body>Access denied for {PASSWORD}</body></html>",
                content_type="text/html",
            )
        if mode == user("empty"):
            return web.Response(body=b"", content_type="application/json")
        if mode == user("malformed"):
            return web.Response(
                body=b'{"user_info": {"auth": 1, "status": ', content_type="text/plain"
            )
        if mode == user("shape"):
            return json_response({"foo": PASSWORD} if action is None else "nope")
        if mode == user("activeobject"):
            return json_response(account_object(1, "Active"))
        if mode == user("slow"):
            await release.wait()
            return json_response([])
        if mode == user("error500"):
            return web.Response(status=500, text=f"Internal error {PASSWORD}")
        if mode == user("forbidden"):
            return web.Response(status=403, text="Forbidden")
        if mode == user("uaban"):
            if not request.headers.get("User-Agent", "").startswith("VLC/"):
                return web.Response(status=403, text="bad player")
            return json_response(account_object(1))
        if mode == user("big"):
            if action == "get_live_streams":
                return web.Response(body=big_streams_body(), content_type="application/json")
            return json_response(account_object(1))
        if mode == user("dictlist"):
            return json_response({str(i): s for i, s in enumerate(STREAMS)})
        if mode == user("latin1"):
            return web.Response(
                body='[{"stream_id": 7, "name": "Télé"}]'.encode("latin-1"),
                content_type="application/json",
            )
        return web.Response(status=404)

    async def xmltv(request: web.Request) -> web.StreamResponse:
        panel_state.user_agents.append(request.headers.get("User-Agent", ""))
        mode = request.query.get("username", "")
        if request.query.get("password") != PASSWORD or mode == user("badauth"):
            return json_response(account_object(0))
        if mode == user("expired"):
            return json_response(account_object(1, "Expired", str(EXPIRED_AT)))
        if mode == user("html"):
            return web.Response(text="<!DOCTYPE html><html></html>", content_type="text/html")
        if mode == user("empty"):
            return web.Response(body=b"")
        if mode == user("gzip"):
            return web.Response(body=gzip.compress(xmltv_document(10)))
        if mode == user("slow"):
            resp = web.StreamResponse()
            resp.content_type = "application/xml"
            await resp.prepare(request)
            await resp.write(xmltv_document(0)[:40])
            await release.wait()
            return resp
        resp = web.StreamResponse()
        resp.content_type = "application/xml"
        await resp.prepare(request)
        document = xmltv_document(40_000)
        for start in range(0, len(document), 50_000):
            await resp.write(document[start : start + 50_000])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/player_api.php", player_api)
    app.router.add_get("/moved/player_api.php", player_api)
    app.router.add_get("/xmltv.php", xmltv)
    return app


@pytest.fixture
async def panel() -> AsyncIterator[Panel]:
    release = asyncio.Event()
    state = Panel(base="")
    runner = web.AppRunner(make_app(state, release), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        release.set()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def client_for(
    panel_state: Panel,
    mode: str,
    *,
    user_agent: str = DEFAULT_USER_AGENT,
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[XtreamClient]:
    client = XtreamClient(
        panel_state.base,
        user(mode),
        PASSWORD,
        timeouts=STALL if mode == "slow" else NORMAL,
        user_agent=user_agent,
        session=session,
    )
    try:
        yield client
    finally:
        await client.aclose()


def secret_forms(username: str) -> list[str]:
    forms = []
    for secret in (PASSWORD, username):
        forms += [secret, quote(secret, safe=""), quote_plus(secret)]
        forms.append(yarl.URL.build(path="/", query={"v": secret}).raw_query_string[2:])
    return forms


def assert_no_secrets(exc: BaseException, username: str) -> None:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for text in texts:
        for form in secret_forms(username):
            assert form not in text, f"secret form {form!r} leaked into {text!r}"
    assert exc.__cause__ is None
    assert exc.__context__ is None
    assert "\n" not in str(exc)
    assert str(exc)


async def expect_error(
    kind: type[ProviderError],
    mode: str,
    call: Callable[[XtreamClient], Awaitable[object]],
    panel_state: Panel,
) -> ProviderError:
    async with client_for(panel_state, mode) as client:
        with pytest.raises(kind) as info:
            await call(client)
    assert_no_secrets(info.value, user(mode))
    return info.value


# -- happy paths -----------------------------------------------------------------


async def test_account_info_parses_strings_and_nulls(panel: Panel) -> None:
    async with client_for(panel, "good") as client:
        info = await client.account_info()
    assert info.auth is True
    assert info.status is AccountStatus.ACTIVE
    assert info.is_active
    assert info.exp_date == datetime.fromtimestamp(EXPIRED_AT + 86400 * 365, tz=UTC)
    assert info.max_connections == 2
    assert info.active_cons == 1
    assert info.is_trial is False
    assert info.allowed_output_formats == ("m3u8", "ts", "rtmp")
    assert info.server is not None
    assert info.server.port == 8080
    assert info.server.https_port is None
    assert PASSWORD not in repr(info)


async def test_live_categories_skip_entries_without_id(panel: Panel) -> None:
    async with client_for(panel, "good") as client:
        categories = await client.live_categories()
    assert [(c.category_id, c.category_name, c.parent_id) for c in categories] == [
        ("1", "UK | Sports", None),
        ("2", "US | News", None),
    ]


async def test_live_streams_coerce_types_and_drop_unusable(panel: Panel) -> None:
    async with client_for(panel, "good") as client:
        streams = await client.live_streams()
    assert [s.stream_id for s in streams] == [101, 102, 103]
    first, second, third = streams
    assert first.num == 1
    assert first.category_id == "1"
    assert first.tv_archive is True
    assert first.tv_archive_duration == 7
    assert first.added == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert first.custom_sid is None
    assert second.category_ids == ("2", "5")
    assert second.stream_icon is None
    assert second.epg_channel_id is None
    assert third.category_id is None
    assert third.stream_type == "live"


async def test_live_streams_by_category_sends_category_id(panel: Panel) -> None:
    async with client_for(panel, "good") as client:
        streams = await client.live_streams(category_id=2)
    assert [s.stream_id for s in streams] == [102]
    assert panel.queries[-1]["category_id"] == "2"
    assert panel.queries[-1]["action"] == "get_live_streams"


async def test_short_epg_decodes_base64(panel: Panel) -> None:
    async with client_for(panel, "good") as client:
        listings = await client.short_epg(101, limit=2)
    assert len(listings) == 1
    assert listings[0].title == "News at Ten"
    assert listings[0].description == "About it"
    assert listings[0].start == datetime.fromtimestamp(EXPIRED_AT, tz=UTC)
    assert panel.queries[-1]["limit"] == "2"


async def test_sixty_thousand_streams_with_string_numbers(panel: Panel) -> None:
    async with client_for(panel, "big") as client:
        streams = await client.live_streams()
    assert len(streams) == BIG_COUNT
    assert streams[0].stream_id == 10_000
    assert streams[-1].stream_id == 10_000 + BIG_COUNT - 1
    assert streams[-1].num == BIG_COUNT
    assert streams[3].epg_channel_id == "ch3.uk"
    assert streams[4].epg_channel_id is None


async def test_positional_object_counts_as_list(panel: Panel) -> None:
    async with client_for(panel, "dictlist") as client:
        streams = await client.live_streams()
    assert [s.stream_id for s in streams] == [101, 102, 103]


async def test_non_utf8_json_is_decoded_leniently(panel: Panel) -> None:
    async with client_for(panel, "latin1") as client:
        streams = await client.live_streams()
    assert streams[0].stream_id == 7
    assert streams[0].name.startswith("T")


async def test_redirect_is_followed_and_never_cached(panel: Panel) -> None:
    async with client_for(panel, "redirect") as client:
        assert (await client.account_info()).is_active
        assert len(await client.live_streams()) == 3
    original = f"/player_api.php:{user('redirect')}"
    moved = f"/moved/player_api.php:{user('redirect')}"
    assert panel.hits[original] == 2
    assert panel.hits[moved] == 2


async def test_user_agent_default_and_override(panel: Panel) -> None:
    async with client_for(panel, "good") as client:
        await client.account_info()
    assert panel.user_agents[-1] == DEFAULT_USER_AGENT
    async with client_for(panel, "good", user_agent="TiviMate/4.7.0") as client:
        await client.account_info()
        assert client.user_agent == "TiviMate/4.7.0"
    assert panel.user_agents[-1] == "TiviMate/4.7.0"


async def test_panel_that_bans_unknown_user_agents(panel: Panel) -> None:
    async with client_for(panel, "uaban") as client:
        assert (await client.account_info()).auth
    async with client_for(panel, "uaban", user_agent="python-requests/2.31") as client:
        with pytest.raises(ProviderHTTPError) as info:
            await client.account_info()
    assert info.value.status == 403
    assert "User-Agent" in str(info.value)
    assert_no_secrets(info.value, user("uaban"))


async def test_shared_session_is_not_closed(panel: Panel) -> None:
    async with aiohttp.ClientSession() as session:
        async with client_for(panel, "good", session=session) as client:
            await client.account_info()
        assert not session.closed
        async with client_for(panel, "good", session=session) as again:
            assert (await again.live_categories())[0].category_id == "1"


async def test_verify_returns_active_account(panel: Panel) -> None:
    async with client_for(panel, "good") as client:
        assert (await client.verify()).is_active


# -- quirks that become errors ----------------------------------------------------


async def test_wrong_password_is_auth_error(panel: Panel) -> None:
    client = XtreamClient(panel.base, user("good"), PASSWORD + "x", timeouts=NORMAL)
    async with client:
        with pytest.raises(ProviderAuthError) as info:
            await client.account_info()
    message = str(info.value)
    assert message.startswith("wrong username or password for account 127.0.0.1:")
    assert PASSWORD not in message


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.account_info(), id="account"),
        pytest.param(lambda c: c.live_categories(), id="categories"),
        pytest.param(lambda c: c.live_streams(), id="streams"),
        pytest.param(lambda c: c.short_epg(1), id="epg"),
    ],
)
async def test_auth_zero_on_every_action(
    panel: Panel, call: Callable[[XtreamClient], Awaitable[object]]
) -> None:
    await expect_error(ProviderAuthError, "badauth", call, panel)


async def test_expired_account_answering_with_object(panel: Panel) -> None:
    exc = await expect_error(AccountExpiredError, "expired", lambda c: c.live_streams(), panel)
    assert "expired on 2026-01-02" in str(exc)
    exc = await expect_error(AccountExpiredError, "expired", lambda c: c.live_categories(), panel)
    assert "renew" in str(exc)


async def test_expired_account_info_is_returned_and_verify_raises(panel: Panel) -> None:
    async with client_for(panel, "expired") as client:
        info = await client.account_info()
        assert info.status is AccountStatus.EXPIRED
        assert not info.is_active
        with pytest.raises(AccountExpiredError) as raised:
            await client.verify()
    assert_no_secrets(raised.value, user("expired"))


async def test_auth_zero_with_expired_status_says_expired(panel: Panel) -> None:
    exc = await expect_error(AccountExpiredError, "expiredauth0", lambda c: c.account_info(), panel)
    assert "expired on 2026-01-02" in str(exc)


@pytest.mark.parametrize(("mode", "word"), [("banned", "banned"), ("disabled", "disabled")])
async def test_banned_and_disabled_accounts(panel: Panel, mode: str, word: str) -> None:
    exc = await expect_error(AccountExpiredError, mode, lambda c: c.live_streams(), panel)
    assert word in str(exc)


async def test_active_account_object_instead_of_list(panel: Panel) -> None:
    exc = await expect_error(ProviderBadResponse, "activeobject", lambda c: c.live_streams(), panel)
    assert "account object instead of a list" in str(exc)


async def test_html_instead_of_json(panel: Panel) -> None:
    exc = await expect_error(ProviderBadResponse, "html", lambda c: c.account_info(), panel)
    assert "HTML page instead of JSON" in str(exc)
    assert "maybe blocked or wrong URL" in str(exc)


async def test_empty_body(panel: Panel) -> None:
    exc = await expect_error(ProviderBadResponse, "empty", lambda c: c.live_streams(), panel)
    assert "empty answer to get_live_streams" in str(exc)


async def test_malformed_json(panel: Panel) -> None:
    exc = await expect_error(ProviderBadResponse, "malformed", lambda c: c.account_info(), panel)
    assert "malformed JSON" in str(exc)
    assert "line 1" in str(exc)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        pytest.param(lambda c: c.account_info(), "without an account object", id="account"),
        pytest.param(lambda c: c.live_streams(), "wrong shape", id="streams"),
    ],
)
async def test_wrong_json_shape(
    panel: Panel, call: Callable[[XtreamClient], Awaitable[object]], needle: str
) -> None:
    exc = await expect_error(ProviderBadResponse, "shape", call, panel)
    assert needle in str(exc)


async def test_http_500(panel: Panel) -> None:
    exc = await expect_error(ProviderHTTPError, "error500", lambda c: c.live_streams(), panel)
    assert isinstance(exc, ProviderHTTPError)
    assert exc.status == 500
    assert "HTTP 500" in str(exc)


async def test_redirect_loop(panel: Panel) -> None:
    exc = await expect_error(ProviderHTTPError, "loop", lambda c: c.account_info(), panel)
    assert "redirect loop" in str(exc)


async def test_slow_headers_time_out(panel: Panel) -> None:
    exc = await expect_error(ProviderTimeout, "slow", lambda c: c.live_streams(), panel)
    assert "did not answer get_live_streams in time" in str(exc)


async def test_connection_refused() -> None:
    # A bound socket that never listens refuses every connection to its port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with XtreamClient(
            f"http://127.0.0.1:{port}", user("refused"), PASSWORD, timeouts=NORMAL
        ) as client:
            with pytest.raises(ProviderUnreachable) as info:
                await client.account_info()
    assert "cannot reach provider 127.0.0.1:" in str(info.value)
    assert_no_secrets(info.value, user("refused"))


async def raw_server(answer: bytes) -> tuple[asyncio.Server, int]:
    """A TCP server that reads a request, writes ``answer`` verbatim and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The client may hang up first (it has seen enough); that is not a failure here.
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("answer", "kind", "needle"),
    [
        pytest.param(b"", ProviderUnreachable, "closed the connection", id="closed"),
        pytest.param(
            b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[{"stream_id": 1',
            ProviderBadResponse,
            "cut off its answer",
            id="truncated",
        ),
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", ProviderBadResponse, "invalid HTTP", id="garbage"),
    ],
)
async def test_broken_connections(answer: bytes, kind: type[ProviderError], needle: str) -> None:
    server, port = await raw_server(answer)
    async with (
        server,
        XtreamClient(f"http://127.0.0.1:{port}", user("raw"), PASSWORD, timeouts=NORMAL) as client,
    ):
        with pytest.raises(kind) as info:
            await client.live_streams()
    assert needle in str(info.value)
    assert_no_secrets(info.value, user("raw"))


# -- XMLTV download -------------------------------------------------------------------


def entries(directory: Path) -> list[Path]:
    """What a download left behind in ``directory`` (should be nothing after a failure)."""
    return list(directory.iterdir())


async def test_download_xmltv_streams_to_file(panel: Panel, tmp_path: Path) -> None:
    dest = tmp_path / "guide.xml"
    async with client_for(panel, "good") as client:
        size = await client.download_xmltv(dest)
    expected = xmltv_document(40_000)
    assert size == len(expected)
    assert dest.read_bytes() == expected
    assert not (tmp_path / "guide.xml.part").exists()
    assert panel.user_agents[-1] == DEFAULT_USER_AGENT


async def test_iter_xmltv_yields_chunks(panel: Panel) -> None:
    async with client_for(panel, "good") as client:
        chunks = [chunk async for chunk in client.iter_xmltv(chunk_size=32_768)]
    assert len(chunks) > 10
    assert max(len(c) for c in chunks) <= 32_768 + 512
    assert b"".join(chunks) == xmltv_document(40_000)


async def test_gzip_guide_passes_through(panel: Panel, tmp_path: Path) -> None:
    dest = tmp_path / "guide.xml.gz"
    async with client_for(panel, "gzip") as client:
        await client.download_xmltv(dest)
    assert gzip.decompress(dest.read_bytes()) == xmltv_document(10)


@pytest.mark.parametrize(
    ("mode", "kind", "needle"),
    [
        ("badauth", ProviderAuthError, "wrong username or password"),
        ("expired", AccountExpiredError, "expired on 2026-01-02"),
        ("html", ProviderBadResponse, "HTML page instead of XML"),
        ("empty", ProviderBadResponse, "empty answer"),
    ],
)
async def test_download_xmltv_errors_leave_no_file(
    panel: Panel, tmp_path: Path, mode: str, kind: type[ProviderError], needle: str
) -> None:
    dest = tmp_path / "guide.xml"
    async with client_for(panel, mode) as client:
        with pytest.raises(kind) as info:
            await client.download_xmltv(dest)
    assert needle in str(info.value)
    assert_no_secrets(info.value, user(mode))
    assert entries(tmp_path) == []


async def test_download_xmltv_stall_times_out(panel: Panel, tmp_path: Path) -> None:
    dest = tmp_path / "guide.xml"
    async with client_for(panel, "slow") as client:
        with pytest.raises(ProviderTimeout) as info:
            await client.download_xmltv(dest)
    assert "stopped sending" in str(info.value)
    assert_no_secrets(info.value, user("slow"))
    assert entries(tmp_path) == []


async def test_download_xmltv_size_cap(panel: Panel, tmp_path: Path) -> None:
    dest = tmp_path / "guide.xml"
    async with client_for(panel, "good") as client:
        with pytest.raises(ProviderBadResponse) as info:
            await client.download_xmltv(dest, max_bytes=100_000)
    assert "larger than 100000 bytes" in str(info.value)
    assert entries(tmp_path) == []


# -- URLs, configuration and redaction ----------------------------------------------------


def test_live_url_quotes_credentials_and_is_redactable() -> None:
    client = XtreamClient("http://panel.example:8080/", "john doe", PASSWORD)
    url = client.live_url(123)
    assert url == (f"http://panel.example:8080/live/john%20doe/{quote(PASSWORD, safe='')}/123.ts")
    assert client.live_url(5, "m3u8").endswith("/5.m3u8")
    redacted = client.redact(f"GET {url} failed")
    assert redacted == "GET http://panel.example:8080/live/***/***/123.ts failed"


@pytest.mark.parametrize(("stream_id", "ext"), [(-1, "ts"), (1, "../x"), (1, ""), (1, "t s")])
def test_live_url_rejects_bad_input(stream_id: int, ext: str) -> None:
    client = XtreamClient("http://panel.example", "u", "p")
    with pytest.raises(ValueError, match=r"stream_id|ext"):
        client.live_url(stream_id, ext)


@pytest.mark.parametrize(
    ("given_url", "base", "label"),
    [
        ("http://panel.example:8080", "http://panel.example:8080", "panel.example:8080"),
        ("panel.example:8080/", "http://panel.example:8080", "panel.example:8080"),
        ("HTTPS://panel.example/player_api.php", "https://panel.example", "panel.example"),
        ("http://panel.example/sub/get.php", "http://panel.example/sub", "panel.example"),
    ],
)
def test_server_url_normalisation(given_url: str, base: str, label: str) -> None:
    client = XtreamClient(given_url, "u", "p")
    assert client.server_url == base
    assert client.label == label


@pytest.mark.parametrize(
    "bad_url",
    [
        "",
        "ftp://panel.example",
        "http://john:pw@panel.example",
        "http://panel.example:99999",
        "http://",
    ],
)
def test_server_url_rejected(bad_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        XtreamClient(bad_url, "u", "p")
    assert "pw" not in str(info.value)


def test_label_overrides_host() -> None:
    client = XtreamClient("http://panel.example", "u", "p", label="Provider A (main)")
    assert client.label == "Provider A (main)"


@settings(max_examples=200, deadline=None)
@given(
    username=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="*"),
        min_size=1,
        max_size=20,
    ),
    password=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="*"),
        min_size=1,
        max_size=20,
    ),
    prefix=st.text(max_size=20),
)
def test_redact_removes_every_encoding(username: str, password: str, prefix: str) -> None:
    client = XtreamClient("http://panel.example:8080", username, password)
    query_url = str(
        yarl.URL("http://panel.example:8080/player_api.php").with_query(
            username=username, password=password, action="get_live_streams"
        )
    )
    live = client.redact(f"{prefix} {client.live_url(1)}")
    assert live.endswith(" http://panel.example:8080/live/***/***/1.ts")
    api = client.redact(f"{prefix} {query_url}")
    query = yarl.URL(api.rsplit(" ", 1)[1]).query
    assert (query["username"], query["password"]) == (REDACTED, REDACTED)
    for text in (f"{prefix} {client.live_url(1)}", f"{prefix} {query_url}"):
        assert redact_secrets(text, password, username) == client.redact(text)


def test_redact_masks_credentials_not_words() -> None:
    client = XtreamClient("http://panel.example:8080", "bad1", "wrong", label="'bad1'")
    message = "wrong username or password for account 'bad1'"
    assert client.redact(message) == message
    assert client.redact(f"GET {client.live_url(3)}: wrong") == (
        "GET http://panel.example:8080/live/***/***/3.ts: wrong"
    )


def test_redact_tolerates_unencodable_secrets() -> None:
    assert redact_secrets("http://p/live/\ud800/x/1.ts", "\ud800") == "http://p/live/***/***/1.ts"
    assert redact_secrets("nothing here", "", "zz") == "nothing here"


# -- tolerant parsing of panel values ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (12, 12),
        ("12", 12),
        (" 12 ", 12),
        ("12.0", 12),
        (12.0, 12),
        ("-3", -3),
        (True, 1),
        ("12.5", None),
        ("", None),
        (None, None),
        ("abc", None),
        ("²", None),
        ([1], None),
    ],
)
def test_as_int(raw: object, expected: int | None) -> None:
    assert as_int(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        (1, True),
        ("true", True),
        ("Yes", True),
        ("2", True),
        ("0", False),
        (0, False),
        ("false", False),
        ("", False),
        (None, False),
        ("null", False),
    ],
)
def test_as_bool(raw: object, expected: bool) -> None:
    assert as_bool(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1767355200", datetime(2026, 1, 2, 12, 0, tzinfo=UTC)),
        (1767355200, datetime(2026, 1, 2, 12, 0, tzinfo=UTC)),
        ("2026-01-02 12:00:00", datetime(2026, 1, 2, 12, 0, tzinfo=UTC)),
        ("0", None),
        ("-1", None),
        ("99999999999999", None),
        ("null", None),
        (None, None),
        ("unlimited", None),
    ],
)
def test_as_timestamp(raw: object, expected: datetime | None) -> None:
    assert as_timestamp(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (7, "7"),
        ("7", "7"),
        ("007", "7"),
        ("7.0", "7"),
        (7.0, "7"),
        ("sports", "sports"),
        ("", None),
        (None, None),
    ],
)
def test_as_id(raw: object, expected: str | None) -> None:
    assert as_id(raw) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_as_int_reads_every_spelling_of_an_integer(number: int) -> None:
    for spelling in (number, str(number), f" {number} ", f"{number}.0", float(number)):
        assert as_int(spelling) == number


def test_account_status_words() -> None:
    assert AccountStatus.parse("ACTIVE") is AccountStatus.ACTIVE
    assert AccountStatus.parse("Inactive") is AccountStatus.DISABLED
    assert AccountStatus.parse("Banned") is AccountStatus.BANNED
    assert AccountStatus.parse(None) is AccountStatus.UNKNOWN


def test_account_with_missing_and_odd_fields() -> None:
    info = AccountInfo.parse(
        {
            "user_info": {
                "auth": "1",
                "status": "Active",
                "exp_date": None,
                "max_connections": None,
                "allowed_output_formats": "ts,m3u8",
            }
        }
    )
    assert info.is_active
    assert info.exp_date is None
    assert info.max_connections == 0
    assert info.active_cons == 0
    assert info.allowed_output_formats == ("ts", "m3u8")
    assert info.server is None
    with pytest.raises(ProviderBadResponse):
        AccountInfo.parse({"server_info": {}})


def test_short_epg_shapes() -> None:
    parsed = parse_short_epg({"epg_listings": None})
    assert parsed is not None
    assert parsed.items == []
    assert parse_short_epg([]) is None
    parsed = parse_short_epg(
        {
            "epg_listings": [
                {**epg_listing("", EXPIRED_AT), "title": "Plain title!", "description": "News"},
                {"title": "no times"},
            ]
        }
    )
    assert parsed is not None
    assert parsed.skipped == 1
    assert parsed.items[0].title == "Plain title!"
    assert parsed.items[0].description == "News"

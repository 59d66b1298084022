"""Mock provider catalogue API: Xtream shapes, auth, expired accounts, quirks, big catalogues."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import aiohttp
import pytest
from lxml import etree

from streamforge.mockprovider import (
    Account,
    ApiQuirk,
    Catalog,
    MediaLibrary,
    MockProvider,
    QuirkKind,
)
from streamforge.mockprovider import api as api_module
from tests.mockfixtures import RawStream

ALPHA = {"username": "alpha", "password": "alpha-secret"}


async def api(mp: MockProvider, **params: str) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{mp.base_url}/player_api.php", params=params) as resp,
    ):
        return resp.status, resp.content_type, await resp.read()


async def api_json(mp: MockProvider, **params: str) -> Any:
    status, ctype, body = await api(mp, **params)
    assert status == 200
    assert ctype == "application/json"
    return json.loads(body)


async def test_account_info_shape(mock_provider: MockProvider) -> None:
    data = await api_json(mock_provider, **ALPHA)
    user = data["user_info"]
    assert user["auth"] == 1
    assert user["status"] == "Active"
    assert user["exp_date"] == "4102444800"
    assert user["is_trial"] == "0"
    assert user["max_connections"] == "2"
    assert user["active_cons"] == "0"
    assert user["allowed_output_formats"] == ["m3u8", "ts", "rtmp"]
    assert user["username"] == "alpha"
    server = data["server_info"]
    assert server["port"] == str(mock_provider.port)
    assert server["url"] == "127.0.0.1"
    assert server["server_protocol"] == "http"
    assert abs(server["timestamp_now"] - time.time()) < 5
    assert set(server) >= {"https_port", "timezone", "time_now"}


async def test_wrong_credentials_give_auth_zero(mock_provider: MockProvider) -> None:
    for params in (
        {"username": "alpha", "password": "nope"},
        {"username": "ghost", "password": "x"},
    ):
        data = await api_json(mock_provider, **params, action="get_live_streams")
        assert data == {"user_info": {"auth": 0}}


async def test_expired_account_answers_every_action_with_the_account(
    mock_provider: MockProvider,
) -> None:
    creds = {"username": "expired", "password": "expired-secret"}
    for action in ("get_live_categories", "get_live_streams", "get_short_epg"):
        data = await api_json(mock_provider, **creds, action=action)
        assert isinstance(data, dict)
        assert data["user_info"]["status"] == "Expired"
    mock_provider.update_account("alpha", status="Banned")
    data = await api_json(mock_provider, **ALPHA, action="get_live_streams")
    assert data["user_info"]["status"] == "Banned"


async def test_categories_and_streams(mock_provider: MockProvider) -> None:
    cats = await api_json(mock_provider, **ALPHA, action="get_live_categories")
    assert {c["category_id"] for c in cats} == {"1", "2", "3", "4"}
    assert all(isinstance(c["category_id"], str) for c in cats)
    streams = await api_json(mock_provider, **ALPHA, action="get_live_streams")
    assert [s["stream_id"] for s in streams] == [101, 102, 103, 104, 105, 106]
    first = streams[0]
    assert first == {
        "num": 1,
        "name": "UK: BBC One FHD",
        "stream_type": "live",
        "stream_id": 101,
        "stream_icon": "",
        "epg_channel_id": "bbcone.uk",
        "added": "1700000000",
        "category_id": "1",
        "custom_sid": "",
        "tv_archive": 0,
        "direct_source": "",
        "tv_archive_duration": 0,
    }
    only = await api_json(mock_provider, **ALPHA, action="get_live_streams", category_id="2")
    assert [s["stream_id"] for s in only] == [104]
    beta = await api_json(
        mock_provider, username="beta", password="beta-secret", action="get_live_streams"
    )
    assert [s["stream_id"] for s in beta] == [201, 202, 203]


async def test_short_epg(mock_provider: MockProvider) -> None:
    data = await api_json(
        mock_provider, **ALPHA, action="get_short_epg", stream_id="101", limit="3"
    )
    listings = data["epg_listings"]
    assert len(listings) == 3
    now = time.time()
    assert int(listings[0]["start_timestamp"]) <= now < int(listings[0]["stop_timestamp"])
    assert base64.b64decode(listings[0]["title"]).decode()
    assert listings[0]["channel_id"] == "bbcone.uk"


async def test_post_form_is_accepted(mock_provider: MockProvider) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{mock_provider.base_url}/player_api.php", data={**ALPHA, "action": "get_live_streams"}
        ) as resp,
    ):
        assert len(json.loads(await resp.read())) == 6


async def test_get_php_playlist(mock_provider: MockProvider) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{mock_provider.base_url}/get.php",
            params={**ALPHA, "type": "m3u_plus", "output": "ts"},
        ) as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert 'tvg-id="bbcone.uk"' in lines[1]
    assert 'group-title="UK | Entertainment"' in lines[1]
    assert lines[2] == f"{mock_provider.base_url}/live/alpha/alpha-secret/101.ts"
    assert sum(1 for line in lines if line.startswith("#EXTINF")) == 6
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{mock_provider.base_url}/get.php", params={"username": "alpha", "password": "x"}
        ) as resp,
    ):
        assert resp.status == 401


async def test_xmltv_guide_is_valid_and_around_now(mock_provider: MockProvider) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{mock_provider.base_url}/xmltv.php", params=ALPHA) as resp,
    ):
        assert resp.status == 200
        body = await resp.read()
    root = etree.fromstring(body)
    assert root.tag == "tv"
    channels = [c.get("id") for c in root.findall("channel")]
    assert sorted(channels) == ["bbcone.uk", "bbctwo.uk", "daserste.de", "espn.us"]
    tags = [child.tag for child in root]
    assert tags.index("programme") > max(i for i, t in enumerate(tags) if t == "channel")
    now = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    current = [
        p
        for p in root.findall("programme")
        if p.get("channel") == "bbcone.uk" and p.get("start")[:14] <= now < p.get("stop")[:14]
    ]
    assert len(current) == 1
    assert current[0].findtext("title")


# --------------------------------------------------------------------------- quirks


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        (QuirkKind.HTML, lambda s, c, b: s == 200 and c == "text/html" and b"<html>" in b),
        (QuirkKind.EMPTY, lambda s, c, b: s == 200 and b == b""),
        (QuirkKind.STATUS, lambda s, c, b: s == 503),
    ],
)
async def test_answer_quirks(mock_provider: MockProvider, kind: QuirkKind, check: Any) -> None:
    mock_provider.add_quirk(ApiQuirk(kind, targets=frozenset({"get_live_streams"})))
    assert check(*await api(mock_provider, **ALPHA, action="get_live_streams"))
    # Other calls are unaffected.
    assert (await api_json(mock_provider, **ALPHA))["user_info"]["auth"] == 1


async def test_malformed_json(mock_provider: MockProvider) -> None:
    mock_provider.add_quirk(ApiQuirk(QuirkKind.MALFORMED_JSON, times=1))
    status, _, body = await api(mock_provider, **ALPHA, action="get_live_streams")
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert len(await api_json(mock_provider, **ALPHA, action="get_live_streams")) == 6


async def test_slow_headers_quirk(mock_provider: MockProvider) -> None:
    mock_provider.add_quirk(ApiQuirk(QuirkKind.SLOW_HEADERS, delay=1.0, account="alpha"))
    start = time.monotonic()
    await api_json(mock_provider, **ALPHA)
    assert time.monotonic() - start >= 0.95
    start = time.monotonic()
    await api_json(mock_provider, username="beta", password="beta-secret")
    assert time.monotonic() - start < 0.9  # another account: no delay


async def test_redirect_quirk_is_followed_once(mock_provider: MockProvider) -> None:
    mock_provider.add_quirk(ApiQuirk(QuirkKind.REDIRECT))
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{mock_provider.base_url}/player_api.php", params=ALPHA, allow_redirects=False
        ) as resp:
            assert resp.status == 302
            assert resp.headers["Location"].startswith("/lb/player_api.php?")
        async with session.get(f"{mock_provider.base_url}/player_api.php", params=ALPHA) as resp:
            assert resp.status == 200
            assert len(resp.history) == 1
            assert (await resp.json())["user_info"]["auth"] == 1


async def test_reshaping_quirks(mock_provider: MockProvider) -> None:
    mock_provider.add_quirk(ApiQuirk(QuirkKind.STRINGLY, times=1))
    streams = await api_json(mock_provider, **ALPHA, action="get_live_streams")
    assert streams[0]["stream_id"] == "101"
    assert streams[0]["num"] == "1"
    mock_provider.add_quirk(ApiQuirk(QuirkKind.NULLS, times=1))
    streams = await api_json(mock_provider, **ALPHA, action="get_live_streams")
    assert streams[0]["epg_channel_id"] is None
    assert streams[0]["stream_icon"] is None
    assert streams[0]["stream_id"] == 101
    mock_provider.add_quirk(ApiQuirk(QuirkKind.MISSING_FIELDS, times=1))
    streams = await api_json(mock_provider, **ALPHA, action="get_live_streams")
    assert "epg_channel_id" not in streams[0]
    assert "stream_icon" not in streams[0]
    assert streams[0]["name"] == "UK: BBC One FHD"
    streams = await api_json(mock_provider, **ALPHA, action="get_live_streams")
    assert streams[0]["stream_id"] == 101
    assert streams[0]["epg_channel_id"] == "bbcone.uk"


async def test_api_calls_are_counted(mock_provider: MockProvider) -> None:
    await api_json(mock_provider, **ALPHA)
    await api_json(mock_provider, **ALPHA, action="get_live_streams")
    await api_json(mock_provider, **ALPHA, action="get_live_streams")
    calls = mock_provider.stats().api_calls
    assert calls["user_info"] == 1
    assert calls["get_live_streams"] == 2


async def test_sixty_thousand_streams_are_served_quickly(
    mock_media: MediaLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog.synthetic(60_000, seed=7, accounts=[Account("big", "pw", max_connections=1)])
    creds = {"username": "big", "password": "pw", "action": "get_live_streams"}
    async with MockProvider(catalog, media=mock_media, warm_media=False) as mp:
        first = await api_json(mp, **creds)

        def rebuilt(*_args: object) -> bytes:
            raise AssertionError("the 60k stream list was serialised again")

        monkeypatch.setattr(api_module, "_dump_streams", rebuilt)
        start = time.monotonic()
        status, _, body = await api(mp, **creds)
        cached_time = time.monotonic() - start
    assert status == 200
    assert len(first) == 60_000
    assert json.loads(body) == first
    assert cached_time < 5.0  # generous: a cached 16 MB answer, even on a busy machine
    assert len({s["stream_id"] for s in first}) == 60_000


async def test_active_cons_counts_streaming_connections(mock_provider: MockProvider) -> None:
    raw = await RawStream.open(mock_provider.stream_url(101))
    await mock_provider.wait_for(lambda s: any(c.streaming for c in s.open))
    data = await api_json(mock_provider, **ALPHA)
    assert data["user_info"]["active_cons"] == "1"
    await raw.close()
    await mock_provider.wait_for(lambda s: s.open_connections() == 0)
    data = await api_json(mock_provider, **ALPHA)
    assert data["user_info"]["active_cons"] == "0"

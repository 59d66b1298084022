"""The finishing touches of the UI and outputs, on the server side: the TV guide
page, logos without credentials (pages, lineup, M3U), breaker and button
wording, settings labels, the dashboard's order, counts and problems, the
favicon, and connection errors in words."""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from streamforge.admin_views import breaker_text, problems
from streamforge.db.models import XtreamChannel
from streamforge.errors import GuideError
from streamforge.mockprovider import MockProviderThread
from streamforge.outputs.catalog import safe_logo
from streamforge.runtime import Runtime
from streamforge.web.ui.dashboard import plural
from streamforge.web.ui.live import axis_ticks, mark_title
from streamforge.web.ui.settings import label
from tests.test_web_ui import logged_in

SECRET = "alpha-secret"


@pytest.fixture
def catalogue(runtime: Runtime, mock_provider_thread: MockProviderThread) -> Runtime:
    """alpha synced, its own guide imported and matched; provider icons set on the
    streams as a panel's ``stream_icon`` would give them."""

    async def setup() -> None:
        await runtime.accounts.add(
            "alpha", server_url=mock_provider_thread.base_url, username="alpha", password=SECRET
        )
        await runtime.channel_sync.sync("alpha")
        runtime.epg.add("alpha-guide", from_account="alpha")
        await runtime.catalog.refresh_guide("alpha-guide")

    asyncio.run(setup())
    with runtime.db.session() as session:
        for stream in session.scalars(select(XtreamChannel)):
            if "BBC One" in stream.name:
                stream.icon = "https://logos.example/bbc-one.png"
            elif "ESPN" in stream.name:
                stream.icon = f"http://panel.example/images/alpha/{SECRET}/espn.png"
            elif "Das Erste" in stream.name:
                stream.icon = f"http://panel.example/logo.php?username=alpha&password={SECRET}"
    return runtime


def test_safe_logo_refuses_urls_with_credentials() -> None:
    users = frozenset({"alpha"})
    assert safe_logo("https://logos.example/a.png", users) == "https://logos.example/a.png"
    assert safe_logo("http://u:p@logos.example/a.png", users) is None
    assert safe_logo("http://panel/logo?password=x", users) is None
    assert safe_logo("http://panel/images/alpha/pw/1.png", users) is None
    assert safe_logo("javascript:alert(1)", users) is None
    assert safe_logo("", users) is None


def test_logos_in_pages_lineup_and_m3u_never_with_credentials(
    catalogue: Runtime, client: TestClient
) -> None:
    logged_in(client)
    channels = client.get("/ui/channels").text
    assert 'src="https://logos.example/bbc-one.png"' in channels
    assert SECRET not in channels
    bbc = catalogue.channels.get("bbcone.uk")
    page = client.get(f"/ui/channels/{bbc.id}").text
    assert 'class="logo" src="https://logos.example/bbc-one.png"' in page
    playlist = client.get("/playlist.m3u").text
    bbc_line = next(line for line in playlist.splitlines() if "BBC One" in line)
    assert 'tvg-logo="https://logos.example/bbc-one.png"' in bbc_line
    espn_line = next(line for line in playlist.splitlines() if "ESPN" in line)
    assert "tvg-logo" not in espn_line
    assert SECRET not in playlist
    assert SECRET not in client.get("/lineup.json").text
    assert SECRET not in client.get("/epg.xml").text


def test_guide_page_shows_now_and_next_on_a_time_axis(
    catalogue: Runtime, client: TestClient
) -> None:
    logged_in(client)
    page = client.get("/ui/guide").text
    assert 'href="/ui/guide" aria-current="page"' in page
    rows = re.findall(r'<div class="epg-row" data-guide="([^"]+)">', page)
    assert len(rows) == 4
    assert len(re.findall(r'class="tick"', page)) == 6
    assert page.count("Now: ") == 4
    assert "Next: " in page
    assert 'class="prog on"' in page
    found = client.get("/ui/guide", params={"search": "espn"}).text
    assert len(re.findall(r'<div class="epg-row" data-guide=', found)) == 1
    assert "ESPN" in found
    # a programme title finds its channel too
    title = re.search(r"Now: ([^<]+) <span", page)
    assert title is not None
    by_title = client.get("/ui/guide", params={"search": title.group(1)}).text
    assert len(re.findall(r'<div class="epg-row" data-guide=', by_title)) >= 1
    nothing = client.get("/ui/guide", params={"search": "no such thing"}).text
    assert "Nothing matches" in nothing


def test_channel_page_wording_and_guide_sources(catalogue: Runtime, client: TestClient) -> None:
    logged_in(client)
    bbc = catalogue.channels.get("bbcone.uk")
    page = client.get(f"/ui/channels/{bbc.id}").text
    assert ">Disable</button>" in page
    assert "Enabled \u2013 disable" not in page
    assert ">healthy</span>" in page
    assert ">closed<" not in page
    assert "alpha-guide" in page
    assert 'id="programmes"' in page
    catalogue.channels.set_enabled("bbcone.uk", False)
    assert ">Enable</button>" in client.get(f"/ui/channels/{bbc.id}").text


def test_breaker_words() -> None:
    now = datetime(2026, 5, 1, 20, 0, tzinfo=UTC)
    assert breaker_text({"state": "closed"}) == "healthy"
    assert breaker_text({"state": "open", "retry_in": 840.0}, now) == "cooling down until 20:14"
    assert "tried again" in breaker_text({"state": "half_open"})


def test_settings_labels_and_units(client: TestClient) -> None:
    assert label("stall_timeout") == "Stall timeout (s)"
    assert label("no_such_setting") == "No such setting"
    logged_in(client)
    page = client.get("/ui/settings").text
    assert '<label for="set-stall_timeout">Stall timeout (s)</label>' in page
    assert ">stall_timeout<" not in page


def test_plural_and_timeline_words() -> None:
    assert (plural(1, "client"), plural(2, "client"), plural(0, "failover")) == (
        "1 client",
        "2 clients",
        "0 failovers",
    )
    assert [t["label"] for t in axis_ticks(125.0)] == ["0:00", "0:30", "1:00", "1:30", "2:00"]
    assert [t["pct"] for t in axis_ticks(10.0)][-1] == 100.0
    title = mark_title(
        {"t": 65.0, "kind": "failover", "reason": "stall", "from": "A", "to": "B", "gap_ms": 850}
    )
    assert title == "1:05 failover after stall: A → B; viewers saw a 850 ms gap"
    assert "no gap" in mark_title({"t": 5.0, "kind": "upgrade", "to": "A"})


def test_dashboard_events_newest_first_and_problems_once(
    runtime: Runtime, client: TestClient
) -> None:
    for index in range(5):
        runtime.events.record("error" if index == 1 else "info", "system", f"event {index}")
    assert runtime.events.flush()
    logged_in(client)
    page = client.get("/ui/").text
    shown = re.findall(r"event (\d)", page)
    assert shown == ["4", "3", "2", "1", "0"]
    account = {"name": "a", "exp_date": None, "status": "Banned", "last_error": "account banned"}
    # status and last error on one line, and the same line only once
    found = problems([account, dict(account)], [], {"not_working": []})
    assert [p["text"] for p in found] == ["Account a is Banned: account banned."]
    same = problems([{**account, "last_error": "Banned"}], [], {"not_working": []})
    assert [p["text"] for p in same] == ["Account a is Banned."]
    both = problems([{**account, "last_error": "wrong password"}], [], {"not_working": []})
    assert [p["text"] for p in both] == ["Account a is Banned: wrong password."]


def test_favicon(client: TestClient) -> None:
    answer = client.get("/favicon.ico")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/x-icon"
    assert answer.content[:4] == b"\x00\x00\x01\x00"
    logged_in(client)
    assert '<link rel="icon" href="/favicon.ico"' in client.get("/ui/setup").text


def test_guide_download_error_is_in_words(runtime: Runtime, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime.epg.add("offline", url=f"http://127.0.0.1:{port}/guide.xml")
    with pytest.raises(GuideError) as raised:
        asyncio.run(runtime.epg.refresh("offline"))
    message = str(raised.value)
    assert (
        message
        == f"guide download failed: could not connect to 127.0.0.1:{port}: connection refused"
    )
    assert runtime.epg.get("offline").last_error == message
    assert not re.search(r"[A-Z][a-z]+[A-Z]\w*Error", message)

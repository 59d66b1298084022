"""The web UI in a real browser (Debian's Chromium through Playwright).

One walk through what a newcomer does: log in, add the mock provider's
accounts (testing first), sync them, add a guide, see the channels matched
with backups, reorder a channel's streams (checked through the API), play a
channel with an HTTP client, break the playing stream from the demo panel and
see the failover on the Live page and in Events, and copy a Plex URL.
Screenshots of every page go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import uvicorn
from sqlalchemy import select

from streamforge.db.models import XtreamChannel
from streamforge.demo import DemoControls
from streamforge.mockprovider import MockProvider
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from streamforge.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.netutil import free_port
from tests.streamharness import StreamClient

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000

try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:  # pragma: no cover - playwright is a dev dependency
    pytest.skip("playwright is not installed", allow_module_level=True)


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing on CI")
        pytest.skip(f"{CHROMIUM} is not installed")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def served(data_dir: Path, mock_provider: MockProvider) -> AsyncIterator[tuple[str, Runtime]]:
    """An empty StreamForge in demo mode, served by uvicorn on 127.0.0.1."""
    settings = load_settings(
        data_dir=data_dir,
        keyring=False,
        discovery_enabled=False,
        ssdp_enabled=False,
        host="127.0.0.1",
        port=free_port(),
        recovery_period=300,
    )
    runtime = Runtime.build(settings)
    runtime.auth.set_password(ADMIN_PASSWORD)
    app = create_app(runtime)
    app.state.demo = DemoControls(mock_provider, runtime)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve(), name="browser-test-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{settings.port}", runtime
    finally:
        server.should_exit = True
        await runtime.streams.close()
        await task
        await runtime.tasks.close()
        runtime.close()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def add_account(page: Page, name: str, provider: MockProvider) -> None:
    form = page.locator("#account-form")
    await form.get_by_label("Name", exact=True).fill(name)
    await form.get_by_label("Server URL", exact=True).fill(provider.base_url)
    await form.get_by_label("Username", exact=True).fill(name)
    await form.get_by_label("Password", exact=True).fill(f"{name}-secret")
    await form.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#account-form-result")).to_contain_text("Works", timeout=WAIT_MS)
    await form.get_by_role("button", name="Save account").click()
    await expect(page.locator(f'tr[data-account="{name}"]')).to_be_visible(timeout=WAIT_MS)
    # The page reloaded to list the account; the save's message is still on screen.
    await expect(page.locator("#account-form-result")).to_contain_text(f"Saved {name}: ok")


async def refused_account(page: Page, provider: MockProvider) -> None:
    """A wrong password: nothing saved, and the reason stays on screen."""
    form = page.locator("#account-form")
    await form.get_by_label("Name", exact=True).fill("bad1")
    await form.get_by_label("Server URL", exact=True).fill(provider.base_url)
    await form.get_by_label("Username", exact=True).fill("alpha")
    await form.get_by_label("Password", exact=True).fill("wrong")
    await form.get_by_role("button", name="Save account").click()
    await expect(page.locator("#account-form-result")).to_contain_text(
        "account 'bad1' not saved: wrong username or password", timeout=WAIT_MS
    )
    await expect(page.locator('tr[data-account="bad1"]')).to_have_count(0)


async def sync_account(page: Page, name: str) -> None:
    row = page.locator(f'tr[data-account="{name}"]')
    await row.get_by_role("button", name="Sync").click()
    await expect(page.locator(f'tr[data-account="{name}"] output')).to_contain_text(
        "last sync done", timeout=WAIT_MS
    )


def _guide_xml() -> str:
    """A second guide for the demo's four channels, with an hour of programmes."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ids = ("bbcone.uk", "bbctwo.uk", "espn.us", "daserste.de")
    channels = "".join(f'<channel id="{i}"><display-name>{i}</display-name></channel>' for i in ids)
    programmes = "".join(
        f'<programme start="{now + timedelta(hours=h):%Y%m%d%H%M%S} +0000" '
        f'stop="{now + timedelta(hours=h + 1):%Y%m%d%H%M%S} +0000" channel="{i}">'
        f"<title>From the file guide {h}</title></programme>"
        for i in ids
        for h in range(-1, 30)
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><tv>{channels}{programmes}</tv>'


SECOND_GUIDE = _guide_xml()


def set_icons(runtime: Runtime, plain: str) -> None:
    """Icons as a provider's ``stream_icon`` gives them (written where a sync stores them)."""
    with runtime.db.session() as session:
        for stream in session.scalars(select(XtreamChannel)):
            if "BBC One" in stream.name or "BBC ONE" in stream.name:
                stream.icon = plain
            elif "ESPN" in stream.name:
                stream.icon = "http://127.0.0.1:9/live/alpha/alpha-secret/espn.png"


async def test_newcomer_walkthrough(
    browser: Browser, served: tuple[str, Runtime], mock_provider: MockProvider
) -> None:
    base, runtime = served
    context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)

    # Log in.
    await page.goto("/ui/accounts")
    await expect(page).to_have_url(f"{base}/ui/login?next=/ui/accounts")
    await shot(page, "login")
    await page.get_by_label("Admin password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Accounts", exact=True)).to_be_visible()

    # Accounts: test, save, sync.
    await add_account(page, "alpha", mock_provider)
    await add_account(page, "beta", mock_provider)
    await refused_account(page, mock_provider)
    await sync_account(page, "alpha")
    await sync_account(page, "beta")
    await shot(page, "accounts")
    # Provider logos: one plain (served by StreamForge itself, so it loads), one whose URL
    # carries the account's credentials (it must never reach a page or the M3U).
    await runtime.db.write(set_icons, runtime, f"{base}/ui/static/favicon.svg")

    # A guide from alpha's own xmltv.php; adding it imports and matches.
    await page.goto("/ui/guides")
    form = page.locator("#guide-form")
    await expect(form.locator('label[data-kind="url"]')).to_be_hidden()
    await expect(form.locator('label[data-kind="file"]')).to_be_hidden()
    await form.get_by_label("A URL").check()
    await expect(form.locator('label[data-kind="url"]')).to_be_visible()
    await expect(form.locator('label[data-kind="from_account"]')).to_be_hidden()
    for radio in await form.locator('input[type="radio"]').all():
        box = await radio.bounding_box()
        text = await radio.locator("xpath=..").bounding_box()
        assert box is not None
        assert text is not None
        # the radio sits on its label's line, vertically centred with the text
        assert abs((box["y"] + box["height"] / 2) - (text["y"] + text["height"] / 2)) < 4
        assert box["x"] - text["x"] < 4
    await shot(page, "guides-add-url")
    await form.get_by_label("A provider account's own guide").check()
    await form.get_by_label("Name", exact=True).fill("alpha-guide")
    await form.locator('select[name="from_account"]').select_option("alpha")
    await form.get_by_role("button", name="Add, import and match").click()
    await expect(page.locator('tr[data-source="alpha-guide"] td').nth(3)).to_have_text("4")
    # A second guide (a file) for the same channels: no new channels, merged by priority.
    second = Path(runtime.settings.data_dir) / "second-guide.xml"
    second.write_text(SECOND_GUIDE)
    await form.get_by_label("Name", exact=True).fill("file-guide")
    await form.get_by_label("A file on this machine").check()
    await form.get_by_label("File path").fill(str(second))
    await form.get_by_role("button", name="Add, import and match").click()
    await expect(page.locator('tr[data-source="file-guide"] td').nth(3)).to_have_text("4")
    assert len(runtime.channels.all()) == 4
    await shot(page, "guides")

    # Channels matched with backups.
    await page.goto("/ui/channels?show=backups")
    table = page.locator("#channels")
    await expect(table).to_contain_text("BBC One")
    await expect(table).to_contain_text("ESPN")
    await expect(table.locator("tbody tr").first.locator("ol li")).to_have_count(
        len(runtime.channels.get("bbcone.uk").mappings)
    )
    bbc_row = table.locator("tbody tr", has_text="BBC One").first
    await expect(bbc_row.locator("img.logo")).to_have_attribute(
        "src", f"{base}/ui/static/favicon.svg"
    )
    assert await bbc_row.locator("img.logo").evaluate("img => img.naturalWidth > 0")
    assert "alpha-secret" not in await page.content()
    await expect(bbc_row.get_by_role("button", name="Disable BBC One")).to_be_visible()
    await shot(page, "channels")

    # Reorder BBC One's streams: move the first one down.
    bbc = runtime.channels.get("bbcone.uk")
    before = [m.xtream_channel_id for m in bbc.mappings]
    assert len(before) >= 2
    await page.get_by_role("link", name="BBC One").click()
    await expect(page.locator("#mappings li")).to_have_count(len(before))
    await page.locator("#mappings li").first.locator('[data-action="map-down"]').click()
    expected = [before[1], before[0], *before[2:]]
    await expect(page.locator("#mappings li").first).to_have_attribute("data-xid", str(expected[0]))
    await expect(page.get_by_role("button", name="Disable", exact=True)).to_be_visible()
    await expect(page.locator("#mappings .breaker-text").first).to_have_text("healthy")
    await expect(page.locator("#guide-sources tbody tr")).to_have_count(2)
    # alpha-guide (priority 0) has every slot; the file guide (priority 1) is a standby
    await expect(page.locator("#guide-sources tbody tr").nth(1)).to_contain_text("file-guide")
    await expect(page.locator("#programmes li").first).to_contain_text("alpha-guide")
    await expect(page.locator("h1 img.logo")).to_be_visible()
    await shot(page, "channel")
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as http:
        async with http.get(f"{base}/api/v1/channels/bbcone.uk") as answer:
            mapped = await answer.json()
        assert [m["xtream_channel_id"] for m in mapped["mappings"]] == expected
        async with http.get(f"{base}/lineup.json") as answer:
            lineup = await answer.json()
        assert any(row["GuideName"] == "BBC One" for row in lineup)
        async with http.get(f"{base}/playlist.m3u") as answer:
            playlist = await answer.text()
        assert f'tvg-logo="{base}/ui/static/favicon.svg"' in playlist
        assert "alpha-secret" not in playlist
        async with http.get(f"{base}/favicon.ico") as answer:
            assert answer.status == 200
            assert answer.content_type == "image/x-icon"
            assert (await answer.read())[:4] == b"\x00\x00\x01\x00"

        # Play BBC One, then break the playing stream from the demo panel.
        number = bbc.guide_number
        assert number is not None
        client = StreamClient(http, f"{base}/auto/v{number}")
        client.start()
        try:
            await client.wait_bytes(188 * 2000)
            await page.goto("/ui/live")
            card = page.locator(f'.session[data-guide="{number}"]')
            await expect(card).to_be_visible()
            await expect(page.locator("#live-state")).to_have_text("live")
            playing = await card.locator(".stream").inner_text()
            panel = page.locator("#demo-panel")
            await panel.locator('input[name="guide_number"]').fill(number)
            await panel.locator('select[name="kind"]').select_option("eof")
            await panel.get_by_role("button", name="Kill the playing stream").click()
            await expect(page.locator("#demo-result")).to_contain_text(playing)
            await expect(card.locator(".failovers")).to_have_text("1")
            await expect(card.locator(".mark.k-failover")).to_have_count(1)
            title = await card.locator(".mark.k-failover").get_attribute("title")
            assert title is not None
            assert "failover after" in title
            assert "gap" in title
            assert await card.locator(".axis span").count() >= 2
            await expect(card.locator(".stream")).not_to_have_text(playing)
            await expect(page.locator("#live-events")).to_contain_text("failover from")
            received = len(client.data)
            await client.wait_bytes(received + 188 * 500)
            await card.locator(".mark.k-failover").hover()
            await shot(page, "live")
            dash = await context.new_page()
            await dash.goto("/ui/")
            await expect(dash.locator("#live-h + ul")).to_contain_text("1 client, 1 failover")
            await dash.close()
            await panel.get_by_role("button", name="Recover all").click()
            await expect(page.locator("#demo-result")).to_contain_text("Recovered streams")
        finally:
            await client.stop()

    # The failover is in the event log.
    await page.goto("/ui/events?category=stream")
    events = page.locator("#events")
    await expect(events).to_contain_text(f"failover from {playing}")
    await events.locator("details").first.locator("summary").click()
    await expect(events.locator("details").first.locator("pre")).to_contain_text("gap_ms")
    await shot(page, "events")

    # Copy the Plex address.
    await page.goto("/ui/setup")
    plex_url = (await page.locator("#url-plex").inner_text()).strip()
    copy = page.locator('button[data-target="url-plex"]')
    await copy.click()
    await expect(copy).to_have_text("Copied!")
    assert await page.evaluate("navigator.clipboard.readText()") == plex_url
    await shot(page, "setup")
    assert await page.evaluate("document.scrollingElement.scrollWidth") <= 1280
    assert await page.locator('link[rel="icon"]').count() >= 1

    # The TV guide: now and next on a time axis, searchable.
    await page.get_by_role("link", name="TV guide").click()
    await expect(page.locator("#guide .epg-row[data-guide]")).to_have_count(4)
    assert await page.locator("#guide .tick").count() >= 6
    bbc_line = page.locator(f'#guide .epg-row[data-guide="{number}"]')
    await expect(bbc_line).to_contain_text("Now:")
    await expect(bbc_line.locator(".prog.on")).to_have_count(1)
    await shot(page, "guide")
    await page.get_by_label("Search").fill("ESPN")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#guide .epg-row[data-guide]")).to_have_count(1)
    await expect(page.locator("#guide")).to_contain_text("ESPN")

    # The remaining pages, and the dashboard on a phone.
    await page.goto("/ui/settings")
    await expect(page.locator("#set-recovery_period")).to_have_value("300.0")
    await expect(page.get_by_label("Stall timeout (s)")).to_have_value("3.0")
    await expect(page.locator("#settings-form")).not_to_contain_text("stall_timeout")
    await shot(page, "settings")
    await page.goto("/ui/")
    await expect(page.locator("#count-backups")).not_to_have_text("0")
    times = await page.locator("#dash-events li[data-time]").evaluate_all(
        "items => items.map(li => li.dataset.time)"
    )
    assert len(times) >= 5
    assert times == sorted(times, reverse=True)
    problems = await page.locator("#problems li").all_inner_texts()
    assert len(problems) == len(set(problems))
    table_box = await page.locator("#dash-accounts").bounding_box()
    card_box = await page.locator("#acc-h").locator("xpath=..").bounding_box()
    assert table_box is not None
    assert card_box is not None
    assert table_box["x"] + table_box["width"] <= card_box["x"] + card_box["width"]
    await shot(page, "dashboard")
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.reload()
    await shot(page, "dashboard-phone")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400
    await context.close()

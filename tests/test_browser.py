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
from pathlib import Path

import aiohttp
import pytest
import uvicorn

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


async def sync_account(page: Page, name: str) -> None:
    row = page.locator(f'tr[data-account="{name}"]')
    await row.get_by_role("button", name="Sync").click()
    await expect(page.locator(f'tr[data-account="{name}"] output')).to_contain_text(
        "last sync done", timeout=WAIT_MS
    )


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
    await sync_account(page, "alpha")
    await sync_account(page, "beta")
    await shot(page, "accounts")

    # A guide from alpha's own xmltv.php; adding it imports and matches.
    await page.goto("/ui/guides")
    form = page.locator("#guide-form")
    await form.get_by_label("Name", exact=True).fill("alpha-guide")
    await form.locator('select[name="from_account"]').select_option("alpha")
    await form.get_by_role("button", name="Add, import and match").click()
    await expect(page.locator('tr[data-source="alpha-guide"] td').nth(3)).to_have_text("4")
    await shot(page, "guides")

    # Channels matched with backups.
    await page.goto("/ui/channels?show=backups")
    table = page.locator("#channels")
    await expect(table).to_contain_text("BBC One")
    await expect(table).to_contain_text("ESPN")
    await expect(table.locator("tbody tr").first.locator("ol li")).to_have_count(
        len(runtime.channels.get("bbcone.uk").mappings)
    )
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
    await shot(page, "channel")
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as http:
        async with http.get(f"{base}/api/v1/channels/bbcone.uk") as answer:
            mapped = await answer.json()
        assert [m["xtream_channel_id"] for m in mapped["mappings"]] == expected
        async with http.get(f"{base}/lineup.json") as answer:
            lineup = await answer.json()
        assert any(row["GuideName"] == "BBC One" for row in lineup)

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
            await expect(card.locator(".stream")).not_to_have_text(playing)
            await expect(page.locator("#live-events")).to_contain_text("failover from")
            received = len(client.data)
            await client.wait_bytes(received + 188 * 500)
            await shot(page, "live")
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

    # The remaining pages, and the dashboard on a phone.
    await page.goto("/ui/settings")
    await expect(page.locator("#set-recovery_period")).to_have_value("300.0")
    await shot(page, "settings")
    await page.goto("/ui/")
    await expect(page.locator("#count-backups")).not_to_have_text("0")
    await shot(page, "dashboard")
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.reload()
    await shot(page, "dashboard-phone")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400
    await context.close()

"""One hook after every channel sync and guide import, whoever started it.

Each test prepares the same catalogue on a real SQLite file against the mock
provider — account ``alpha`` and guide ``alpha-guide``, with one of the two
brought in *without* the hook — and then has the admin API, the command line
or the periodic jobs do the other one. Every trigger must end in the same
effects: the streams matched onto the guide channels, the rendered guide
current in the cache, and one ``catalog updated`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from streamforge.cli.main import app as cli_app
from streamforge.mockprovider import MockProviderThread
from streamforge.outputs.catalog import lineup
from streamforge.outputs.guide_cache import guide_version
from streamforge.runtime import Runtime
from streamforge.scheduler import account_sync_loop, epg_refresh_loop
from streamforge.settings import Settings, load_settings
from streamforge.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.streamharness import wait_until

GUIDE = "alpha-guide"
EXPECTED = {
    "sync": {
        "bbc_streams": 3,
        "guide_cached": True,
        "events": ["catalog updated after sync of account 'alpha'"],
    },
    "import": {
        "bbc_streams": 3,
        "guide_cached": True,
        "events": ["catalog updated after import of guide 'alpha-guide'"],
    },
}


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Settings:
    """Settings from the environment, so the command line sees the same data dir."""
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    monkeypatch.setenv("STREAMFORGE_DISCOVERY_ENABLED", "false")
    monkeypatch.setenv("STREAMFORGE_SSDP_ENABLED", "false")
    return load_settings()


@contextlib.contextmanager
def opened(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.build(settings)
    try:
        yield runtime
    finally:
        runtime.close()


async def prepare(runtime: Runtime, provider_url: str, done_by_trigger: str) -> None:
    """Account alpha and its guide source; of the channel sync and the guide import,
    the one the trigger is to do is left out, the other done without the hook."""
    runtime.auth.set_password(ADMIN_PASSWORD)
    added = await runtime.accounts.add(
        "alpha", server_url=provider_url, username="alpha", password="alpha-secret"
    )
    assert added.ok, added.message
    runtime.epg.add(GUIDE, from_account="alpha")
    # Straight to the services, bypassing the hook: nothing is matched yet.
    if done_by_trigger == "sync":
        await runtime.epg.refresh(GUIDE)
    else:
        await runtime.channel_sync.sync("alpha")
    assert runtime.channels.all(mapped=True) == []


def catalog_events(runtime: Runtime) -> list[str]:
    assert runtime.events.flush()
    return [
        e.message
        for e in runtime.events.query(category="mapping")
        if e.message.startswith("catalog updated")
    ]


def effects(runtime: Runtime) -> dict[str, Any]:
    rows = lineup(runtime.db)
    version = guide_version(runtime.db, rows)
    return {
        "bbc_streams": runtime.channels.get("bbcone.uk").stream_count,
        "guide_cached": runtime.catalog.guide_cache.cached("epg.xml", version) is not None,
        "events": catalog_events(runtime),
    }


def sync_finished(http: TestClient, within: float = 30.0) -> str:
    """Poll the API until alpha's background sync is no longer running; its state."""
    deadline = time.monotonic() + within
    while True:
        state = str(http.get("/api/v1/accounts/alpha/sync").json()["state"])
        if state != "running" or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


@pytest.mark.parametrize("kind", ["sync", "import"])
def test_api_trigger(
    kind: str, env_settings: Settings, mock_provider_thread: MockProviderThread
) -> None:
    with opened(env_settings) as runtime:
        asyncio.run(prepare(runtime, mock_provider_thread.base_url, kind))
        with TestClient(create_app(runtime)) as http:
            http.auth = ("admin", ADMIN_PASSWORD)
            if kind == "sync":
                assert http.post("/api/v1/accounts/alpha/sync").status_code == 202
                assert sync_finished(http) == "done"
            else:
                answer = http.post(f"/api/v1/epg/{GUIDE}/refresh")
                assert answer.status_code == 200, answer.text
                assert answer.json()["channels"] == 4
        assert effects(runtime) == EXPECTED[kind]


@pytest.mark.parametrize("kind", ["sync", "import"])
def test_cli_trigger(
    kind: str, env_settings: Settings, mock_provider_thread: MockProviderThread
) -> None:
    with opened(env_settings) as runtime:
        asyncio.run(prepare(runtime, mock_provider_thread.base_url, kind))
    command = ["account", "sync", "alpha"] if kind == "sync" else ["epg", "refresh", GUIDE]
    result = CliRunner().invoke(cli_app, command)
    assert result.exit_code == 0, result.output
    with opened(env_settings) as runtime:
        assert effects(runtime) == EXPECTED[kind]


@pytest.mark.parametrize("kind", ["sync", "import"])
async def test_scheduler_trigger(
    kind: str, env_settings: Settings, mock_provider_thread: MockProviderThread
) -> None:
    with opened(env_settings) as runtime:
        await prepare(runtime, mock_provider_thread.base_url, kind)
        loop = account_sync_loop if kind == "sync" else epg_refresh_loop
        task = asyncio.get_running_loop().create_task(loop(runtime), name=f"test-{kind}")
        try:
            await wait_until(lambda: catalog_events(runtime) != [], within=30)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert effects(runtime) == EXPECTED[kind]

"""Periodic jobs: a never-synced account and a never-refreshed guide are
handled as soon as the loops start; matching follows a refresh."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from streamforge.mockprovider import MockProvider
from streamforge.runtime import Runtime
from streamforge.scheduler import account_sync_loop, epg_refresh_loop
from tests.streamharness import wait_until


async def test_periodic_sync_and_refresh(
    runtime: Runtime, mock_provider: MockProvider, tmp_path: Path
) -> None:
    await runtime.accounts.add(
        "alpha", server_url=mock_provider.base_url, username="alpha", password="alpha-secret"
    )
    runtime.epg.add("guide", from_account="alpha")
    loops = [
        asyncio.get_running_loop().create_task(account_sync_loop(runtime), name="t-sync"),
        asyncio.get_running_loop().create_task(epg_refresh_loop(runtime), name="t-epg"),
    ]
    try:
        await wait_until(
            lambda: runtime.accounts.get("alpha").last_synced_at is not None, within=20
        )
        await wait_until(lambda: runtime.epg.get("guide").last_refreshed_at is not None, within=20)
        await wait_until(lambda: runtime.channels.get("bbcone.uk").stream_count > 0, within=20)
    finally:
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert runtime.accounts.get("alpha").channel_count == 6

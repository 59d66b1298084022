"""Periodic jobs: channel sync of every active account and guide refresh of
every active source, each at its interval, and keeping the rendered guide
output current. Syncs run through ``SyncJobs.run`` and refreshes through
``CatalogUpdates.refresh_guide``, so the same re-match, guide re-render and
event follow them as when the API or the command line starts one. Failures
are recorded on the account or source (and in the event log) by the services
themselves; the next round simply tries again. A loop that crashes outright
is logged and restarted with back-off.

In a cluster these jobs run once per cluster: every loop works only while
this node holds the leader lease (:meth:`Runtime.is_leader`, always true on
a single node) and otherwise checks again every :data:`FOLLOWER_PERIOD`
seconds, so a new leader takes over within that period of winning the lease.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from streamforge.errors import StreamForgeError
from streamforge.runtime import Runtime
from streamforge.tasks import restarting

log = logging.getLogger(__name__)

FOLLOWER_PERIOD = 1.0
"""Seconds between two leadership checks of a job loop on a node that does not lead."""


async def _await_lead(runtime: Runtime) -> None:
    """Return once this node leads (at once on a single node)."""
    while True:
        if runtime.is_leader():
            return
        await asyncio.sleep(FOLLOWER_PERIOD)


async def _sleep_until_due(last: datetime | None, interval: float) -> None:
    if last is not None:
        due = last + timedelta(seconds=interval)
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(min(wait, interval))


async def account_sync_loop(runtime: Runtime) -> None:
    interval = runtime.settings.account_sync_interval
    while True:
        await _await_lead(runtime)
        views = [v for v in await runtime.db.run(runtime.accounts.all) if v.is_active]
        oldest = min((v.last_synced_at for v in views if v.last_synced_at), default=None)
        await _sleep_until_due(oldest, interval)
        for view in await runtime.db.run(runtime.accounts.all):
            if not view.is_active or not runtime.is_leader():
                continue
            last = view.last_synced_at
            if last is None or datetime.now(UTC) - last >= timedelta(seconds=interval):
                await runtime.sync_jobs.run(view.name)
        await asyncio.sleep(60)


async def epg_refresh_loop(runtime: Runtime) -> None:
    interval = runtime.settings.epg_refresh_interval
    while True:
        await _await_lead(runtime)
        for source in await runtime.db.run(runtime.epg.all):
            if not source.is_active or not runtime.is_leader():
                continue
            last = source.last_refreshed_at
            if last is None or datetime.now(UTC) - last >= timedelta(seconds=interval):
                try:
                    await runtime.catalog.refresh_guide(source.name)
                except StreamForgeError as exc:
                    log.warning("scheduled refresh of guide %r failed: %s", source.name, exc)
        await asyncio.sleep(60)


async def guide_warm_loop(runtime: Runtime, interval: float = 30.0) -> None:
    """Keep a rendered copy of /epg.xml current, so requests never wait for a render
    (the guide also changes when its two-hour placeholder slot turns over)."""
    while True:
        await _await_lead(runtime)
        if await runtime.catalog.render_guide():
            log.info("guide output re-rendered for the current lineup and programmes")
        await asyncio.sleep(interval)


def start_periodic_jobs(runtime: Runtime) -> None:
    """Start every periodic loop; each one that crashes is logged and restarted
    with back-off (:func:`~streamforge.tasks.restarting`)."""
    loops = {
        "account-sync": lambda: account_sync_loop(runtime),
        "epg-refresh": lambda: epg_refresh_loop(runtime),
        "guide-warm": lambda: guide_warm_loop(runtime),
    }
    for name, loop in loops.items():
        runtime.tasks.spawn(restarting(name, loop), name=name)

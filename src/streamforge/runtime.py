"""The running StreamForge: every long-lived part, built from the settings
and handed to whoever needs it. Nothing is global; tests build as many
runtimes as they like, each on its own data dir and database.

The runtime sits above the services and below the front ends (``web``,
``cli``, ``server``, ``scheduler``, ``demo``): it imports no front end. Two
things the front ends share go through it: :attr:`Runtime.catalog` (what
follows every channel sync and guide import, see
:mod:`streamforge.catalog_updates`) and :meth:`Runtime.apply_settings` (the
one way to change settings at run time, see :mod:`streamforge.live_settings`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from streamforge import live_settings
from streamforge.admin_auth import AdminAuth
from streamforge.admin_views import AdminViews
from streamforge.catalog_updates import CatalogUpdates
from streamforge.cpu_pool import CpuPool
from streamforge.credentials import CredentialStore
from streamforge.db.engine import Database
from streamforge.db.migrate import upgrade
from streamforge.epg.sources import EpgService
from streamforge.epg.xmltv_parse import ImportWindow
from streamforge.events import EventLog
from streamforge.loop_monitor import LoopMonitor
from streamforge.matching.channels import ChannelService
from streamforge.matching.service import MatchService
from streamforge.outputs.guide_cache import GuideCache
from streamforge.settings import Settings
from streamforge.streaming.manager import SessionManager
from streamforge.streaming.metrics import StreamMetrics
from streamforge.streaming.protocol import PolicyConfig
from streamforge.tasks import TaskOwner
from streamforge.xtream.accounts import AccountService
from streamforge.xtream.sync import ChannelSync
from streamforge.xtream.sync_jobs import SyncJobs

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    credentials: CredentialStore
    events: EventLog
    auth: AdminAuth
    accounts: AccountService
    channel_sync: ChannelSync
    sync_jobs: SyncJobs
    epg: EpgService
    channels: ChannelService
    matching: MatchService
    catalog: CatalogUpdates
    views: AdminViews
    streams: SessionManager
    tasks: TaskOwner
    loop_monitor: LoopMonitor
    cpu: CpuPool

    @classmethod
    def build(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        """Open the database (migrating it unless told not to) and start the event writer."""
        settings.ensure_data_dir()
        db = Database(settings.effective_database_url)
        if migrate:
            upgrade(db.engine)
        events = EventLog(
            db,
            retention=timedelta(days=settings.event_retention_days),
            max_rows=settings.event_max_rows,
        )
        events.start()
        credentials = CredentialStore(settings.data_dir, use_keyring=settings.keyring)
        accounts = AccountService(db, credentials, events, default_user_agent=settings.user_agent)
        # CPU-heavy parsing and matching run in worker processes, off the loop's GIL.
        # Two workers (one core: one), so that a guide parse and a sync's stream list overlap.
        cpu = CpuPool("runtime-cpu", workers=min(2, os.cpu_count() or 1))
        channel_sync = ChannelSync(db, accounts, events, cpu=cpu)
        tasks = TaskOwner("runtime")
        epg = EpgService(
            db,
            accounts,
            events,
            window=ImportWindow(settings.epg_days_back, settings.epg_days_ahead),
            user_agent=settings.user_agent,
            cpu=cpu,
            credentials=credentials,
        )
        if migrate and (sealed := epg.seal_stored_urls()):
            log.warning("sealed %d guide URL(s) that carried credentials in clear", sealed)
        matching = MatchService(db, events, threshold=settings.match_threshold, cpu=cpu)
        catalog = CatalogUpdates(db, epg, matching, events, GuideCache(settings.data_dir / "cache"))
        channels = ChannelService(db, events)
        metrics = StreamMetrics()
        streams = SessionManager(settings, channels, accounts, events, metrics)
        return cls(
            settings=settings,
            db=db,
            credentials=credentials,
            events=events,
            auth=AdminAuth(db, settings.admin_password),
            accounts=accounts,
            channel_sync=channel_sync,
            sync_jobs=SyncJobs(channel_sync, tasks, after_sync=catalog.after_sync),
            epg=epg,
            channels=channels,
            matching=matching,
            catalog=catalog,
            views=AdminViews(db, accounts, epg, channels, matching, events),
            streams=streams,
            tasks=tasks,
            loop_monitor=LoopMonitor(events, metrics.loop_lag),
            cpu=cpu,
        )

    # -- settings at run time ---------------------------------------------------------
    async def apply_settings(
        self, body: Mapping[str, Any], *, origin: str
    ) -> live_settings.SettingsChange:
        """Validate, persist and apply a settings change (``origin`` names who asked).

        Raises :class:`~streamforge.live_settings.SettingsRejected` for a setting
        that cannot change at run time or a value the model refuses; nothing is
        saved then. Live settings apply at once, the others after a restart.
        """
        new, changes = live_settings.plan_change(self.settings, body)
        saved = await self.db.write(live_settings.save_overrides, self.db, new, set(changes))
        live = {k: v for k, v in changes.items() if live_settings.EDITABLE[k]}
        if live:
            self._swap_settings(live_settings.validated_settings(self.settings, live))
        self.events.record(
            "info", "system", f"settings changed {origin}", {"changed": sorted(changes)}
        )
        after_restart = tuple(k for k in changes if not live_settings.EDITABLE[k])
        return live_settings.SettingsChange(new, live, saved, after_restart)

    def restore_saved_settings(self) -> None:
        """Apply the overrides saved at run time (call once, right after :meth:`build`)."""
        restored = live_settings.apply_saved_overrides(self.settings, self.db)
        if restored is not self.settings:
            self._swap_settings(restored)

    def _swap_settings(self, new: Settings) -> None:
        """Swap ``new`` into the running services; sessions started from now on use it."""
        self.settings = new
        self.streams.policy_config = PolicyConfig.from_settings(new)
        self.streams.upstream_config = dataclasses.replace(
            self.streams.upstream_config, stall_timeout=new.stall_timeout
        )

    async def aclose(self) -> None:
        await self.loop_monitor.stop()
        await self.streams.close()
        await self.tasks.close()
        await self.cpu.aclose()
        self.close()

    def close(self) -> None:
        self.cpu.close()
        self.events.close()
        self.db.dispose()

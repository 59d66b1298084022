"""The running StreamForge: every long-lived part, built from the settings
and handed to whoever needs it. Nothing is global; tests build as many
runtimes as they like, each on its own data dir and database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from streamforge.credentials import CredentialStore
from streamforge.db.engine import Database
from streamforge.db.migrate import upgrade
from streamforge.epg.sources import EpgService
from streamforge.epg.xmltv_parse import ImportWindow
from streamforge.events import EventLog
from streamforge.loop_monitor import LoopMonitor
from streamforge.matching.channels import ChannelService
from streamforge.matching.service import MatchService
from streamforge.settings import Settings
from streamforge.streaming.manager import SessionManager
from streamforge.streaming.metrics import StreamMetrics
from streamforge.tasks import TaskOwner
from streamforge.web.auth import AdminAuth
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
    streams: SessionManager
    tasks: TaskOwner
    loop_monitor: LoopMonitor

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
        channel_sync = ChannelSync(db, accounts, events)
        tasks = TaskOwner("runtime")
        epg = EpgService(
            db,
            accounts,
            events,
            window=ImportWindow(settings.epg_days_back, settings.epg_days_ahead),
            user_agent=settings.user_agent,
        )
        matching = MatchService(db, events, threshold=settings.match_threshold)

        async def rematch(_account: str, _report: object) -> None:
            await matching.arun()

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
            sync_jobs=SyncJobs(channel_sync, tasks, after_sync=rematch),
            epg=epg,
            channels=channels,
            matching=matching,
            streams=streams,
            tasks=tasks,
            loop_monitor=LoopMonitor(events, metrics.loop_lag),
        )

    async def aclose(self) -> None:
        await self.loop_monitor.stop()
        await self.streams.close()
        await self.tasks.close()
        self.close()

    def close(self) -> None:
        self.events.close()
        self.db.dispose()

"""The running StreamForge: every long-lived part, built from the settings
and handed to whoever needs it. Nothing is global; tests build as many
runtimes as they like, each on its own data dir and database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from streamforge.credentials import CredentialStore
from streamforge.db.engine import Database
from streamforge.db.migrate import upgrade
from streamforge.events import EventLog
from streamforge.settings import Settings
from streamforge.tasks import TaskOwner
from streamforge.web.auth import AdminAuth

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    credentials: CredentialStore
    events: EventLog
    auth: AdminAuth
    tasks: TaskOwner = field(default_factory=lambda: TaskOwner("runtime"))

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
        return cls(
            settings=settings,
            db=db,
            credentials=CredentialStore(settings.data_dir, use_keyring=settings.keyring),
            events=events,
            auth=AdminAuth(db, settings.admin_password),
        )

    async def aclose(self) -> None:
        await self.tasks.close()
        self.close()

    def close(self) -> None:
        self.events.close()
        self.db.dispose()

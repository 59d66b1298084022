"""Channel syncs running in the background, with status for the API and UI.

One sync per account at a time; asking again while one runs returns the
running one. Each job is a named task owned by the runtime's task owner.

Every channel sync runs through :meth:`SyncJobs.run` — started in the
background by the API (:meth:`SyncJobs.start`), awaited by the command
line, the periodic jobs and the demo — so the ``after_sync`` hook (the
runtime's :meth:`~streamforge.catalog_updates.CatalogUpdates.after_sync`)
follows every successful sync, whoever asked for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from streamforge.errors import StreamForgeError
from streamforge.tasks import TaskOwner
from streamforge.xtream.sync import ChannelSync, Progress, SyncReport

AfterSync = Callable[[str, SyncReport], Awaitable[object]]


@dataclass(frozen=True)
class SyncStatus:
    account: str
    state: str = "idle"  # idle | running | done | failed
    stage: str = ""
    done: int = 0
    total: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    report: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "state": self.state,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "report": self.report,
            "error": self.error,
        }


class SyncJobs:
    def __init__(
        self, sync: ChannelSync, tasks: TaskOwner, after_sync: AfterSync | None = None
    ) -> None:
        self._sync = sync
        self._tasks = tasks
        self._after_sync = after_sync
        self._status: dict[str, SyncStatus] = {}

    def status(self, account: str) -> SyncStatus:
        return self._status.get(account, SyncStatus(account))

    def start(self, account: str) -> SyncStatus:
        current = self.status(account)
        if current.state == "running":
            return current
        self._status[account] = SyncStatus(account, "running", started_at=datetime.now(UTC))
        self._tasks.spawn(self.run(account), name=f"sync:{account}")
        return self._status[account]

    async def run(self, account: str, progress: Progress | None = None) -> SyncReport | None:
        """Run one sync now, recording progress (also told to ``progress``); errors end up
        in the status (None is returned then), a success is followed by the hook."""
        if self.status(account).state != "running":
            self._status[account] = SyncStatus(account, "running", started_at=datetime.now(UTC))

        def record(stage: str, done: int, total: int) -> None:
            self._status[account] = replace(
                self._status[account], stage=stage, done=done, total=total
            )
            if progress is not None:
                progress(stage, done, total)

        try:
            report = await self._sync.sync(account, record)
        except StreamForgeError as exc:
            self._status[account] = replace(
                self._status[account],
                state="failed",
                error=str(exc),
                finished_at=datetime.now(UTC),
            )
            return None
        if self._after_sync is not None:
            # Before "done", so that a finished sync means an updated catalogue.
            try:
                await self._after_sync(account, report)
            except StreamForgeError as exc:
                self._status[account] = replace(
                    self._status[account],
                    state="failed",
                    report=report.as_dict(),
                    error=f"synced, but updating the catalogue failed: {exc}",
                    finished_at=datetime.now(UTC),
                )
                return None
        self._status[account] = replace(
            self._status[account],
            state="done",
            report=report.as_dict(),
            finished_at=datetime.now(UTC),
        )
        return report

"""What happens after the catalogue changed: one hook for every trigger.

A channel sync (new, renamed or vanished provider streams) and a guide import
(new guide channels and programmes) both change what Plex should see. Whoever
started them — the admin API, the command line, the periodic jobs or the demo
— the same three things follow, in this order, through :meth:`CatalogUpdates.updated`:

1. **re-match**: :meth:`~streamforge.matching.service.MatchService.run` maps
   the streams onto the guide channels again (manual mappings are kept), on
   the database's one writer thread;
2. **guide re-render**: the rendered ``/epg.xml`` copy is brought up to date
   (:func:`~streamforge.outputs.guide_cache.warm`), off the event loop, so the
   next request from Plex finds it ready;
3. **event**: one ``catalog updated`` entry in the event log (which its
   subscribers, such as the Live page, see at once) says what triggered it
   and what matching did.

The two ways in are :meth:`refresh_guide` (import a guide source, then the
hook) and :meth:`after_sync`, the hook that
:class:`~streamforge.xtream.sync_jobs.SyncJobs` calls when a sync finished —
every channel sync runs through ``SyncJobs.run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from streamforge.db.engine import Database
from streamforge.epg.compression import ProgressCallback
from streamforge.epg.sources import EpgService
from streamforge.events import EventLog
from streamforge.matching.service import MatchService, MatchSummary
from streamforge.outputs.guide_cache import GuideCache, warm
from streamforge.xtream.sync import SyncReport


@dataclass(frozen=True)
class CatalogUpdate:
    """What the hook did after one sync or import."""

    cause: str  # "sync" | "import"
    name: str  # the account or guide source
    matching: MatchSummary
    guide_rendered: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "name": self.name,
            "matching": self.matching.as_dict(),
            "guide_rendered": self.guide_rendered,
        }


class GuideRefresh(NamedTuple):
    """A guide import's report and the catalogue update that followed it."""

    report: dict[str, Any]
    update: CatalogUpdate


class CatalogUpdates:
    def __init__(
        self,
        db: Database,
        epg: EpgService,
        matching: MatchService,
        events: EventLog,
        guide_cache: GuideCache,
    ) -> None:
        self._db = db
        self._epg = epg
        self._matching = matching
        self._events = events
        self.guide_cache = guide_cache

    async def refresh_guide(
        self, name: str, progress: ProgressCallback | None = None
    ) -> GuideRefresh:
        """Import guide source ``name`` (raises on failure), then run the hook."""
        report = await self._epg.refresh(name, progress)
        return GuideRefresh(report, await self.updated("import", name))

    async def after_sync(self, account: str, _report: SyncReport) -> CatalogUpdate:
        """The hook after a finished channel sync (given to ``SyncJobs``)."""
        return await self.updated("sync", account)

    async def render_guide(self) -> bool:
        """Bring the rendered guide up to date; whether it had to render."""
        return await self._db.run(warm, self._db, self.guide_cache)

    async def updated(self, cause: str, name: str) -> CatalogUpdate:
        """Re-match, re-render the guide and record the event."""
        summary = await self._db.write(self._matching.run)
        rendered = await self.render_guide()
        update = CatalogUpdate(cause, name, summary, rendered)
        what = f"sync of account {name!r}" if cause == "sync" else f"import of guide {name!r}"
        self._events.record("info", "mapping", f"catalog updated after {what}", update.as_dict())
        return update

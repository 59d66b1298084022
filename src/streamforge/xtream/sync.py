"""Channel sync: an account's categories and live streams into the database.

Everything is fetched from the panel first; only then, in one transaction,
are categories and ``xtream_channels`` upserted (keyed by account and
``stream_id``) and the streams the provider dropped deleted — their mappings
go with them, and the loss is logged. A provider failure at any point leaves
the previous channel list exactly as it was. Manual mappings of streams that
remain are never touched.

Writes are done in bulk (one INSERT and one UPDATE executemany, a DELETE per
chunk of ids) so that a 60,000-stream account syncs in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from streamforge.cpu_pool import CpuPool
from streamforge.db.engine import Database
from streamforge.db.models import (
    Account,
    ChannelMapping,
    XmltvChannel,
    XtreamCategory,
    XtreamChannel,
)
from streamforge.errors import AccountExpiredError, ProviderError
from streamforge.events import EventLog
from streamforge.xtream.accounts import AccountService
from streamforge.xtream.models import Category
from streamforge.xtream.streams_worker import StreamRow, quality_json, quality_pairs, stream_rows

#: (stage, done, total) — stages: "account", "categories", "streams", "store", "done"
Progress = Callable[[str, int, int], None]

_CHUNK = 900  # stays under SQLite's bound-parameter limit
_WRITE_SLICE = 5000


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    return None


@dataclass
class SyncReport:
    account: str
    categories: int = 0
    streams: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    mappings_removed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self) -> str:
        return (
            f"{self.account}: {self.streams} streams ({self.added} new, {self.updated} changed, "
            f"{self.removed} removed), {self.categories} categories"
        )


def _stream_row(stream: StreamRow, categories: dict[str, str]) -> dict[str, Any]:
    stream_id, name, _type, icon, epg_channel_id, category_id, quality = stream
    return {
        "stream_id": stream_id,
        "name": name[:500],
        "icon": (icon or None) and icon[:1000],
        "epg_channel_id": (epg_channel_id or None) and epg_channel_id[:300],
        "category_id": category_id,
        "qualities": {**quality_json(quality), "category": categories.get(category_id or "")},
    }


_COMPARED = ("name", "icon", "epg_channel_id", "category_id", "qualities")


def _compared(values: Any) -> tuple[Any, ...]:
    """The :data:`_COMPARED` values of a row (a stored one or a new row dict) as
    atoms, the ``qualities`` pairs sorted by key: the stored side of a big
    account is held through the whole sync, and atoms keep it out of the
    garbage collector's way."""
    *plain, qualities = (values[c] for c in _COMPARED)
    return (*plain, tuple(sorted(quality_pairs(qualities or {}))))


class ChannelSync:
    """Syncs one account at a time; safe to call for any number of accounts."""

    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        events: EventLog,
        *,
        cpu: CpuPool | None = None,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._events = events
        self._cpu = cpu

    async def sync(self, name: str, progress: Progress = _no_progress) -> SyncReport:
        report = SyncReport(account=name)
        view = await self._db.run(self._accounts.get, name)
        if not view.is_active:
            raise AccountExpiredError(f"account {name!r} is disabled; enable it before syncing")
        client = await self._db.run(self._accounts.client, name)
        try:
            async with client:
                progress("account", 0, 1)
                info = await client.account_info()
                if not info.is_active:
                    raise AccountExpiredError(
                        f"account {name!r} is {info.status.value}; its channels are kept as they "
                        "are"
                    )
                progress("categories", 0, 1)
                categories = await client.live_categories()
                progress("streams", 0, 1)
                rows: Iterable[StreamRow]
                if self._cpu is not None:
                    # Decoded, parsed and quality-tagged in a worker process
                    # (off this process's GIL), unpacked by the writer thread.
                    rows = (await client.live_stream_rows(self._cpu)).rows()
                else:
                    rows = stream_rows(await client.live_streams())
        except ProviderError as exc:
            self._events.record(
                "error", "account", f"sync of {name!r} failed", {"account": name, "error": str(exc)}
            )
            raise
        # The bulk upsert takes seconds for a big account; the database's
        # writer thread keeps the event loop (and every live stream)
        # responsive, and other writes queue behind this transaction instead
        # of fighting over the database lock.
        await self._db.write(self._store, view.id, categories, rows, report, progress)
        progress("done", report.streams, report.streams)
        self._events.record(
            "warning" if report.removed else "info",
            "account",
            f"synced {name!r}: {report.streams} streams",
            report.as_dict(),
        )
        return report

    def _store(
        self,
        account_id: int,
        categories: list[Category],
        streams: Iterable[StreamRow],
        report: SyncReport,
        progress: Progress,
    ) -> None:
        names = {c.category_id: c.category_name for c in categories}
        unique: dict[int, StreamRow] = {}
        for stream in streams:
            if stream[2] not in {"live", "created_live", "radio_streams"}:
                report.skipped += 1
                continue
            unique.setdefault(stream[0], stream)
        report.categories = len(names)
        report.streams = len(unique)
        total = len(unique)
        with self._db.session() as session:
            self._store_categories(session, account_id, names)
            existing = {
                row.stream_id: (row.id, _compared(row._mapping))
                for row in session.execute(
                    select(
                        XtreamChannel.id,
                        XtreamChannel.stream_id,
                        *(getattr(XtreamChannel, c) for c in _COMPARED),
                    ).where(XtreamChannel.account_id == account_id)
                )
            }
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            now = datetime.now(UTC)

            def write() -> None:
                # Written in slices so that a huge account never holds every row
                # dict at once; it is still one transaction.
                if inserts:
                    # render_nulls: one executemany batch even when optional columns vary
                    session.execute(
                        insert(XtreamChannel).execution_options(render_nulls=True), inserts
                    )
                if updates:
                    session.execute(update(XtreamChannel), updates)
                report.added += len(inserts)
                report.updated += len(updates)
                inserts.clear()
                updates.clear()

            for done, stream in enumerate(unique.values(), 1):
                row = _stream_row(stream, names)
                old = existing.get(stream[0])
                if old is None:
                    inserts.append({**row, "account_id": account_id, "added_at": now})
                elif old[1] != _compared(row):
                    updates.append({**row, "id": old[0]})
                else:
                    report.unchanged += 1
                if done % _WRITE_SLICE == 0:
                    write()
                    progress("store", done, total)
            write()
            gone = [old[0] for sid, old in existing.items() if sid not in unique]
            report.removed = len(gone)
            report.mappings_removed = self._remove(session, account_id, gone)
            account = session.get(Account, account_id)
            if account is not None:
                account.last_synced_at = now
            progress("store", total, total)

    @staticmethod
    def _store_categories(session: Any, account_id: int, names: dict[str, str]) -> None:
        stored = {
            c.category_id: c
            for c in session.scalars(
                select(XtreamCategory).where(XtreamCategory.account_id == account_id)
            )
        }
        for category_id, name in names.items():
            row = stored.pop(category_id, None)
            if row is None:
                session.add(
                    XtreamCategory(account_id=account_id, category_id=category_id, name=name)
                )
            elif row.name != name:
                row.name = name
        for row in stored.values():
            session.delete(row)

    def _remove(self, session: Any, account_id: int, ids: list[int]) -> int:
        """Delete dropped streams; log the guide channels that lost a mapping."""
        lost = 0
        for chunk in _chunks(ids):
            affected = session.execute(
                select(XmltvChannel.id, XmltvChannel.display_name, XtreamChannel.name)
                .join(ChannelMapping, ChannelMapping.xmltv_channel_id == XmltvChannel.id)
                .join(XtreamChannel, XtreamChannel.id == ChannelMapping.xtream_channel_id)
                .where(ChannelMapping.xtream_channel_id.in_(chunk))
            ).all()
            for channel_id, channel_name, stream_name in affected:
                self._events.record(
                    "warning",
                    "mapping",
                    f"stream {stream_name!r} was dropped by the provider; "
                    f"unmapped from {channel_name!r}",
                    {"stream": stream_name, "channel": channel_name, "account_id": account_id},
                    channel_id=channel_id,
                )
            lost += len(affected)
            session.execute(
                delete(ChannelMapping).where(ChannelMapping.xtream_channel_id.in_(chunk))
            )
            session.execute(delete(XtreamChannel).where(XtreamChannel.id.in_(chunk)))
        return lost


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    batch: list[int] = []
    for item in ids:
        batch.append(item)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch

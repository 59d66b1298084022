"""Storing a parsed guide: staging first, then one swap transaction.

Phase 1 parses the whole file (bounded memory) and spools the rows into a
temporary staging file; any error there — hostile XML, truncation, a bad
download — raises before the database is touched. Phase 2 swaps the staged
guide in with one transaction: channels are upserted by XMLTV id (so their
ids, GuideNumbers, enabled flags and mappings survive a refresh), channels the
guide no longer lists are removed, and the source's programmes are replaced.

**Several guides, one channel.** A guide channel is one ``xmltv_channels`` row
per XMLTV id, whichever sources list it. Each source that lists it has a
:class:`~streamforge.db.models.GuideChannelSource` link holding what that
source says of it (names, icon, LCN), and its programmes are stored per source
(``programmes.source_id``). The channel row shows its best source's data
(lowest ``priority``, then oldest source; :func:`refresh_channels`): names
(then the other sources' extra names), the first icon and LCN by priority.
A second guide for the same channels therefore adds links and programmes, no
channels; a source that stops listing a channel (or is removed,
:func:`remove_source`) drops only its link and programmes — the channel, its
GuideNumber and mappings stay as long as some source lists it.

Programmes are merged **at output time**, not here
(:mod:`streamforge.epg.merge`): every source's programmes are kept, so a change
of priority or time offset takes effect at once without a re-import.

What a programme row holds is :mod:`streamforge.epg.programme_rows`; this
module only moves those rows in bulk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from streamforge.cpu_pool import CpuPool
from streamforge.db.engine import Database
from streamforge.db.models import GuideChannelSource, Programme, XmltvChannel, XmltvSource
from streamforge.epg import parse_worker
from streamforge.epg.compression import ProgressCallback
from streamforge.epg.parse_worker import Spool as _Spool
from streamforge.epg.parse_worker import spool_guide
from streamforge.epg.programme_rows import VALUE_COLUMNS
from streamforge.epg.xmltv_parse import (
    GuideChannelRecord,
    GuideSource,
    ImportReport,
    ImportWindow,
)

_PROGRESS_EVERY = 0.25
PROGRAMMES: Table = Programme.__table__  # type: ignore[assignment]


def _insert_sql(dialect: Dialect) -> str:
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    columns = ("xmltv_channel_id", "source_id", *VALUE_COLUMNS)
    # Built only from the table's own name and column constants, never from input.
    return (
        f"INSERT INTO {PROGRAMMES.name} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join([mark] * len(columns))})"
    )


def _db_time(dialect: Dialect) -> Callable[[datetime | None], Any]:
    """How a UTC datetime is bound on this backend, matching :class:`UTCDateTime`."""
    if dialect.name == "sqlite":
        # SQLAlchemy's SQLite DATETIME storage format
        return lambda v: None if v is None else v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return lambda v: None if v is None else v.astimezone(UTC).replace(tzinfo=None)


class StagedGuide:
    """Phase 1's result: the guide's channels and its spooled programmes.

    Close it (or use it as a context manager) to drop the staging file.
    """

    def __init__(self, channels: dict[str, GuideChannelRecord], spool: _Spool) -> None:
        self.channels = channels
        self._spool = spool

    def swap_into(self, db: Database, source_id: int) -> None:
        """Phase 2: the one swap transaction (blocking; a writer's job)."""
        _swap(db, source_id, self.channels, self._spool)

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> StagedGuide:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def stage_guide(
    guide: GuideSource,
    *,
    now: datetime,
    window: ImportWindow | None,
    progress: ProgressCallback | None = None,
) -> tuple[StagedGuide, ImportReport]:
    """Phase 1: parse ``guide`` into a staging file; the database is not touched."""
    spool = _Spool()
    channels, report = spool_guide(guide, spool, now=now, window=window, progress=progress)
    return StagedGuide(channels, spool), report


async def stage_guide_in_process(
    pool: CpuPool,
    path: str,
    *,
    now: datetime,
    window: ImportWindow | None,
    progress: ProgressCallback | None = None,
) -> tuple[StagedGuide, ImportReport]:
    """Phase 1 in a worker process of ``pool`` (off this process's GIL).

    The worker parses the file at ``path`` and spools the programmes to a
    staging file this process then reads; only the channels and the report
    are pickled back. ``progress`` is fed from a small file the worker updates.
    """
    handle, spool_path = tempfile.mkstemp(prefix="sf-guide-stage-")
    os.close(handle)
    progress_path: str | None = None
    if progress is not None:
        handle, progress_path = tempfile.mkstemp(prefix="sf-guide-progress-")
        os.close(handle)
    tick = None
    if progress is not None and progress_path is not None:
        report_progress, polled = progress, progress_path

        async def tick() -> None:
            seen = await asyncio.to_thread(parse_worker.read_progress, polled)
            if seen is not None:
                report_progress(*seen)

    try:
        channels, report = await pool.run(
            parse_worker.stage_guide_file,
            path,
            spool_path,
            progress_path,
            now,
            window,
            every=_PROGRESS_EVERY,
            tick=tick,
        )
        return StagedGuide(channels, _Spool.reopen(spool_path)), report
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool_path)
        raise
    finally:
        if progress_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(progress_path)


def import_guide(
    db: Database,
    source_id: int,
    guide: GuideSource,
    *,
    now: datetime,
    window: ImportWindow | None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Parse ``guide`` and swap it in as the content of source ``source_id``."""
    staged, report = stage_guide(guide, now=now, window=window, progress=progress)
    with staged:
        staged.swap_into(db, source_id)
    return report


def refresh_channels(session: Session, channel_ids: Iterable[int] | None = None) -> int:
    """Bring channels (all when ``channel_ids`` is None) in line with their links:
    the best source's names, icon and LCN; channels no source lists are removed.
    Returns how many were removed."""
    wanted = None if channel_ids is None else set(channel_ids)
    stmt = (
        select(
            GuideChannelSource.xmltv_channel_id,
            GuideChannelSource.source_id,
            GuideChannelSource.display_names,
            GuideChannelSource.icon,
            GuideChannelSource.lcn,
        )
        .join(XmltvSource, XmltvSource.id == GuideChannelSource.source_id)
        .order_by(GuideChannelSource.xmltv_channel_id, XmltvSource.priority, XmltvSource.id)
    )
    links: dict[int, list[Any]] = {}
    for row in session.execute(stmt):
        if wanted is None or row[0] in wanted:
            links.setdefault(row[0], []).append(row)
    if wanted is None:
        channels = list(session.scalars(select(XmltvChannel)))
    else:
        ordered = sorted(wanted)
        channels = []
        for start in range(0, len(ordered), 900):
            channels.extend(
                session.scalars(
                    select(XmltvChannel).where(XmltvChannel.id.in_(ordered[start : start + 900]))
                )
            )
    removed = 0
    for channel in channels:
        mine = links.get(channel.id)
        if not mine:
            session.delete(channel)
            removed += 1
            continue
        names: list[str] = []
        for link in mine:
            names.extend(n for n in link[2] or [] if n not in names)
        names = names or [channel.xmltv_id]
        best = mine[0]
        if channel.source_id != best[1]:
            channel.source_id = best[1]
        if channel.display_names != names or channel.display_name != names[0][:500]:
            channel.display_name = names[0][:500]
            channel.display_names = names
        icon = next((link[3] for link in mine if link[3]), None)
        lcn = next((link[4] for link in mine if link[4]), None)
        if channel.icon != icon:
            channel.icon = icon
        if channel.lcn != lcn:
            channel.lcn = lcn
    session.flush()
    return removed


def remove_source(session: Session, source: XmltvSource) -> None:
    """Delete a guide source; its channels that other sources list stay (moved to
    their next best source), the others go with it."""
    listed = list(
        session.scalars(
            select(GuideChannelSource.xmltv_channel_id).where(
                GuideChannelSource.source_id == source.id
            )
        )
    )
    others: dict[int, int] = {}
    for channel_id, other in session.execute(
        select(GuideChannelSource.xmltv_channel_id, GuideChannelSource.source_id)
        .join(XmltvSource, XmltvSource.id == GuideChannelSource.source_id)
        .where(GuideChannelSource.source_id != source.id)
        .order_by(XmltvSource.priority.desc(), XmltvSource.id.desc())
    ):
        others[channel_id] = other  # the last one written is the best
    for channel in session.scalars(select(XmltvChannel).where(XmltvChannel.source_id == source.id)):
        if channel.id in others:
            channel.source_id = others[channel.id]
    session.flush()
    session.delete(source)
    session.flush()
    session.expire_all()
    refresh_channels(session, listed)


def _swap(
    db: Database, source_id: int, channels: dict[str, GuideChannelRecord], spool: _Spool
) -> None:
    with db.session() as session:
        links = {
            link.xmltv_channel_id: link
            for link in session.scalars(
                select(GuideChannelSource).where(GuideChannelSource.source_id == source_id)
            )
        }
        wanted = list(channels)
        existing: dict[str, XmltvChannel] = {}
        for start in range(0, len(wanted), 900):
            for row in session.scalars(
                select(XmltvChannel).where(XmltvChannel.xmltv_id.in_(wanted[start : start + 900]))
            ):
                existing[row.xmltv_id] = row
        for xmltv_id, record in channels.items():
            if xmltv_id not in existing:
                names = record.names or [xmltv_id]
                row = XmltvChannel(
                    source_id=source_id,
                    xmltv_id=xmltv_id,
                    display_name=names[0][:500],
                    display_names=names,
                    icon=record.icon,
                    lcn=record.lcn,
                )
                session.add(row)
                existing[xmltv_id] = row
        session.flush()
        ids: dict[str, int] = {}
        for xmltv_id, record in channels.items():
            channel_id = existing[xmltv_id].id
            ids[xmltv_id] = channel_id
            link = links.pop(channel_id, None)
            if link is None:
                link = GuideChannelSource(xmltv_channel_id=channel_id, source_id=source_id)
                session.add(link)
            link.display_names = record.names or [xmltv_id]
            link.icon = record.icon
            link.lcn = record.lcn
        for gone in links.values():
            session.delete(gone)
        session.flush()
        # Channels whose best source is this one that it no longer lists move on.
        affected = set(ids.values()) | set(links)
        for row in session.scalars(select(XmltvChannel).where(XmltvChannel.source_id == source_id)):
            affected.add(row.id)
        refresh_channels(session, affected)
        session.execute(delete(Programme).where(Programme.source_id == source_id))
        connection = session.connection()
        dialect = connection.dialect
        sql = _insert_sql(dialect)
        as_db = _db_time(dialect)
        flag: Callable[[Any], Any] = int if dialect.name == "sqlite" else bool
        for batch in spool.batches():
            # Driver-level executemany of ready tuples: the guide import inserts
            # hundreds of thousands of rows, and per-row SQLAlchemy processing
            # would cost more than the insert itself.
            rows = [
                (
                    ids[channel],
                    source_id,
                    as_db(v[0]),
                    as_db(v[1]),
                    *v[2:9],
                    flag(v[9]),
                    flag(v[10]),
                    v[11],
                )
                for channel, v in batch
                if channel in ids
            ]
            if rows:
                connection.exec_driver_sql(sql, rows)

"""Storing a parsed guide: staging first, then one swap transaction.

Phase 1 parses the whole file (bounded memory) and spools the rows into a
temporary staging file; any error there — hostile XML, truncation, a bad
download — raises before the database is touched. Phase 2 swaps the staged
guide in with one transaction: channels are upserted by XMLTV id (so their
ids, GuideNumbers, enabled flags and mappings survive a refresh), channels the
guide no longer lists are removed, and the source's programmes are replaced.

What a programme row holds is :mod:`streamforge.epg.programme_rows`; this
module only moves those rows in bulk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.engine import Dialect

from streamforge.cpu_pool import CpuPool
from streamforge.db.engine import Database
from streamforge.db.models import Programme, XmltvChannel
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
    columns = ("xmltv_channel_id", *VALUE_COLUMNS)
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


def _swap(
    db: Database, source_id: int, channels: dict[str, GuideChannelRecord], spool: _Spool
) -> None:
    with db.session() as session:
        stored = {
            row.xmltv_id: row
            for row in session.scalars(
                select(XmltvChannel).where(XmltvChannel.source_id == source_id)
            )
        }
        ids: dict[str, int] = {}
        for xmltv_id, record in channels.items():
            names = record.names or [xmltv_id]
            row = stored.pop(xmltv_id, None)
            if row is None:
                row = XmltvChannel(source_id=source_id, xmltv_id=xmltv_id)
                session.add(row)
            row.display_name = names[0][:500]
            row.display_names = names
            row.icon = record.icon
            row.lcn = record.lcn
        session.flush()
        for row in session.scalars(select(XmltvChannel).where(XmltvChannel.source_id == source_id)):
            ids[row.xmltv_id] = row.id
        for gone in stored.values():
            session.delete(gone)
        session.flush()
        known = list(ids.values())
        for start in range(0, len(known), 900):
            session.execute(
                delete(Programme).where(Programme.xmltv_channel_id.in_(known[start : start + 900]))
            )
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

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

import pickle
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Table, delete, select
from sqlalchemy.engine import Dialect

from streamforge.db.engine import Database
from streamforge.db.models import Programme, XmltvChannel
from streamforge.epg.compression import ProgressCallback
from streamforge.epg.programme_rows import VALUE_COLUMNS, programme_values
from streamforge.epg.xmltv_parse import (
    GuideChannelRecord,
    GuideSource,
    ImportReport,
    ImportWindow,
    XmltvReader,
)

_BATCH = 2000
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


class _Spool:
    """Rows pickled to a temporary file in batches (bounded memory)."""

    def __init__(self) -> None:
        # Closed by close(), which import_guide calls in a finally block.
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="sf-guide-")  # noqa: SIM115
        self._batch: list[tuple[str, tuple[Any, ...]]] = []

    def add(self, channel_xmltv_id: str, row: tuple[Any, ...]) -> None:
        self._batch.append((channel_xmltv_id, row))
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            pickle.dump(self._batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def batches(self) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
        self._flush()
        self._file.seek(0)
        while True:
            try:
                # Our own file, written just above in this process: trusted input.
                yield pickle.load(self._file)  # noqa: S301
            except EOFError:
                return

    def close(self) -> None:
        self._file.close()


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
    reader = XmltvReader(guide, now=now, window=window, progress=progress)
    channels: dict[str, GuideChannelRecord] = {}
    spool = _Spool()
    try:
        for record in reader:
            if isinstance(record, GuideChannelRecord):
                channels[record.xmltv_id] = record
            else:
                spool.add(record.channel_id, programme_values(record))
    except BaseException:
        spool.close()
        raise
    return StagedGuide(channels, spool), reader.report


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

"""A rendered copy of the XMLTV output, reused until the guide changes.

Plex and other players fetch the guide far more often than it changes, and
rendering a week for a thousand channels costs seconds of CPU. The first
request after a change streams the document as it is generated (first byte
at once, constant memory) and writes a copy on the side; later requests for
the same *version* are served from that file. The version is a digest of
everything the output depends on: the published lineup (ids, numbers, names,
icons), the programme table's size and newest row, when each guide source was last
imported, each source's priority and time offset and each channel's time
offset (they change the merge), and — because channels
without guide data get placeholder blocks aligned to two hours — the current
two-hour slot. Anything that changes the output changes the version, so a
stale guide is never served.

A copy is only kept once it was written completely; an interrupted render
leaves nothing behind.

Each virtual device (:mod:`streamforge.outputs.devices`) has its own guide
of only its channels, cached under its own key
(:func:`device_guide_prefix` + kind, e.g. ``device2-epg.xml``), so the
devices' copies never replace one another or the whole lineup's.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from streamforge.db.engine import Database
from streamforge.db.models import Programme, XmltvChannel, XmltvSource
from streamforge.outputs.catalog import (
    PLACEHOLDER_HOURS,
    LineupRow,
    guide_channels,
    guide_programmes,
    lineup,
)
from streamforge.outputs.xmltv_writer import iter_xmltv


def guide_version(db: Database, rows: list[LineupRow], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    digest = hashlib.sha256()
    for row in rows:
        digest.update(
            f"{row.channel_id}|{row.epg_id}|{row.guide_number}|{row.name}|{row.icon}\n".encode()
        )
    with db.session() as session:
        count, newest = session.execute(
            select(func.count(Programme.id), func.max(Programme.id))
        ).one()
        refreshed = session.execute(
            select(
                XmltvSource.id,
                XmltvSource.last_refreshed_at,
                XmltvSource.priority,
                XmltvSource.time_offset_minutes,
                XmltvSource.is_active,
            ).order_by(XmltvSource.id)
        ).all()
        shifted = session.execute(
            select(XmltvChannel.id, XmltvChannel.time_offset_minutes)
            .where(XmltvChannel.time_offset_minutes != 0)
            .order_by(XmltvChannel.id)
        ).all()
    slot = now.strftime("%Y%m%d") + f"-{now.hour // PLACEHOLDER_HOURS}"
    digest.update(f"{count}|{newest}|{slot}|{refreshed}|{shifted}".encode())
    return digest.hexdigest()[:24]


def render(db: Database, rows: list[LineupRow]) -> Iterator[bytes]:
    """The XMLTV document of the published lineup, as UTF-8 chunks."""
    return iter_xmltv(
        guide_channels(db, rows), guide_programmes(db, rows), generator_name="StreamForge"
    )


def device_guide_prefix(number: int) -> str:
    """The cache-key prefix of device ``number``'s own guide."""
    return f"device{number}-"


def warm_rows(db: Database, cache: GuideCache, kind: str, rows: list[LineupRow]) -> bool:
    """Render the guide of ``rows`` into the cache as ``kind`` unless it is there."""
    version = guide_version(db, rows)
    if cache.cached(kind, version) is not None:
        return False
    for _chunk in cache.tee(kind, version, render(db, rows)):
        pass
    return True


def warm(db: Database, cache: GuideCache) -> bool:
    """Render the current guide into the cache unless it is already there.

    Run in a worker thread by the periodic jobs, so that Plex's requests find
    a ready copy even right after a guide refresh. Returns whether it rendered.
    """
    return warm_rows(db, cache, "epg.xml", lineup(db))


class GuideCache:
    """Rendered guides by version, in ``directory`` (one file per kind)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def path(self, kind: str, version: str) -> Path:
        return self._dir / f"{kind}-{version}"

    def cached(self, kind: str, version: str) -> Path | None:
        path = self.path(kind, version)
        return path if path.is_file() else None

    def tee(self, kind: str, version: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield ``chunks`` and keep a copy; the copy replaces older ones when complete."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{kind}-", dir=self._dir)
        complete = False
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    yield chunk
            os.replace(tmp_name, self.path(kind, version))
            complete = True
            for old in self._dir.glob(f"{kind}-*"):
                if old.name != self.path(kind, version).name:
                    old.unlink(missing_ok=True)
        finally:
            if not complete:
                Path(tmp_name).unlink(missing_ok=True)

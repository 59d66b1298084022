"""Merging one channel's programmes from several guide sources, at output time.

Every source's programmes are stored as imported (``programmes.source_id``);
the published guide merges them when it is written, so a change of priority or
time offset shows at once, without a re-import:

1. each source's times are shifted by its ``time_offset_minutes``;
2. sources are taken best first (lower ``priority``, then the older source):
   the best source's programmes are all kept, and a programme of a worse
   source is kept only where it overlaps nothing already kept — the gaps of
   the better guides are filled from the others, whole programmes at a time;
3. the channel's own ``time_offset_minutes`` shifts the result.

A programme without a stop time lasts, for the overlap test, until its
source's next programme (or an hour when it is the last one); its stop stays
unset in the output. Programmes of an inactive source are not published.

:func:`merge` is pure (rows in, rows out) and used by the XMLTV output
(:func:`streamforge.outputs.catalog.guide_programmes`) and the admin pages
that show which source supplied what.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from streamforge.errors import ConfigError

_OPEN_END = timedelta(hours=1)

#: A time offset is at most a day either way (anything more is not a wrong time zone).
MAX_OFFSET_MINUTES = 24 * 60


def check_offset(minutes: int) -> int:
    """``minutes`` as a time offset, or ConfigError if it is more than a day."""
    minutes = int(minutes)
    if abs(minutes) > MAX_OFFSET_MINUTES:
        raise ConfigError(f"a time offset of {minutes} minutes is more than a day")
    return minutes


class _Timed(Protocol):
    @property
    def start(self) -> datetime: ...

    @property
    def stop(self) -> datetime | None: ...

    @property
    def source_id(self) -> int | None: ...


@dataclass(frozen=True)
class SourceRank:
    """What the merge needs of a guide source."""

    priority: int
    offset_minutes: int
    is_active: bool = True


@dataclass(frozen=True)
class Placed:
    """One programme row as published: its (shifted) times and the source it came from."""

    row: Any
    start: datetime
    stop: datetime | None
    source_id: int | None


def _rank_key(ranks: Mapping[int, SourceRank], source_id: int | None) -> tuple[int, int]:
    rank = ranks.get(source_id) if source_id is not None else None
    if rank is None:
        return (1 << 30, source_id or 0)
    return (rank.priority, source_id or 0)


def merge(
    rows: Iterable[_Timed], ranks: Mapping[int, SourceRank], channel_offset_minutes: int = 0
) -> list[Placed]:
    """One channel's programme rows merged by source priority (see the module docstring),
    in start order."""
    by_source: dict[int | None, list[_Timed]] = {}
    for row in rows:
        rank = ranks.get(row.source_id) if row.source_id is not None else None
        if rank is not None and not rank.is_active:
            continue
        by_source.setdefault(row.source_id, []).append(row)
    channel_shift = timedelta(minutes=channel_offset_minutes)
    if len(by_source) == 1:
        ((source_id, only),) = by_source.items()
        rank = ranks.get(source_id) if source_id is not None else None
        shift = channel_shift + timedelta(minutes=rank.offset_minutes if rank else 0)
        placed = [
            Placed(r, r.start + shift, r.stop + shift if r.stop else None, source_id) for r in only
        ]
        placed.sort(key=lambda p: p.start)
        return placed
    starts: list[datetime] = []
    stops: list[datetime] = []
    kept: list[Placed] = []
    for source_id in sorted(by_source, key=lambda sid: _rank_key(ranks, sid)):
        rank = ranks.get(source_id) if source_id is not None else None
        shift = timedelta(minutes=rank.offset_minutes if rank else 0)
        mine = sorted(by_source[source_id], key=lambda r: r.start)
        fresh: list[tuple[datetime, datetime, Placed]] = []
        for index, row in enumerate(mine):
            start = row.start + shift
            stop = row.stop + shift if row.stop else None
            end = stop or (
                mine[index + 1].start + shift if index + 1 < len(mine) else start + _OPEN_END
            )
            if end <= start:
                end = start + timedelta(seconds=1)
            if not _overlaps(starts, stops, start, end):
                fresh.append((start, end, Placed(row, start, stop, source_id)))
        # A source's own programmes never push each other out: add them after the pass.
        for start, end, item in fresh:
            index = bisect_right(starts, start)
            starts.insert(index, start)
            stops.insert(index, end)
            insort(kept, item, key=lambda p: p.start)
    if channel_shift:
        kept = [
            Placed(
                p.row,
                p.start + channel_shift,
                p.stop + channel_shift if p.stop else None,
                p.source_id,
            )
            for p in kept
        ]
    return kept


def _overlaps(
    starts: Sequence[datetime], stops: Sequence[datetime], start: datetime, end: datetime
) -> bool:
    """Whether [start, end) overlaps one of the kept, non-overlapping intervals."""
    index = bisect_right(starts, start)
    if index > 0 and stops[index - 1] > start:
        return True
    return index < len(starts) and starts[index] < end

"""Automatic matching, persisted.

``MatchService.run()`` maps every provider stream of the streamable accounts
onto the guide channels (:func:`~streamforge.matching.matcher.match_streams`)
and replaces the automatic mappings in one transaction:

- manual mappings (``is_manual=1``) are never touched, and a stream that has
  one is left out of automatic matching altogether;
- a channel's automatic streams come after its manual ones, ranked by quality
  tier, account preference and confidence; the first mapping is the primary;
- a channel that gains its first mapping gets a GuideNumber (its LCN if free,
  else the lowest free number). Existing GuideNumbers never change.

From async code use ``await arun()``: the same work on the database's writer
thread, off the event loop.

``suggestions()`` ranks the unmapped streams for one channel by name
similarity, for the UI's "add from suggestions".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import delete, insert, select

from streamforge import guide_number
from streamforge.cpu_pool import CpuPool, pack_rows, unpack_rows
from streamforge.db.engine import Database
from streamforge.db.models import (
    Account,
    ChannelMapping,
    XmltvChannel,
    XmltvSource,
    XtreamChannel,
)
from streamforge.db.rules import streamable_account
from streamforge.events import EventLog
from streamforge.matching import match_worker
from streamforge.matching.match_worker import ChannelDecision, GuideRow, StreamRow
from streamforge.matching.normalize import normalize_name
from streamforge.streaming.candidates import stream_ref


@dataclass(frozen=True)
class MatchSummary:
    streams: int
    mapped_streams: int
    channels_with_streams: int
    channels_with_backups: int
    unmatched: int
    manual_kept: int
    numbered: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class MatchService:
    def __init__(
        self, db: Database, events: EventLog, *, threshold: float, cpu: CpuPool | None = None
    ) -> None:
        self._db = db
        self._events = events
        self._threshold = threshold
        self._cpu = cpu

    async def arun(self) -> MatchSummary:
        """:meth:`run` from async code: on the database's writer thread, so the
        event loop keeps serving while streams are matched and stored."""
        return await self._db.write(self.run)

    def run(self) -> MatchSummary:
        """Match and persist in one transaction (blocking; see :meth:`arun`)."""
        with self._db.session() as session:
            channel_rows = session.execute(
                select(
                    XmltvChannel.id,
                    XmltvChannel.xmltv_id,
                    XmltvChannel.display_names,
                    XmltvChannel.display_name,
                    XmltvChannel.lcn,
                    XmltvChannel.guide_number,
                )
                .join(XmltvSource, XmltvSource.id == XmltvChannel.source_id)
                .where(XmltvSource.is_active.is_(True))
                .order_by(XmltvChannel.id)
            ).all()
            by_xmltv: dict[str, int] = {}
            guide: list[GuideRow] = []
            for cid, xmltv_id, names, display, _lcn, _number in channel_rows:
                if xmltv_id in by_xmltv:
                    continue
                by_xmltv[xmltv_id] = cid
                guide.append((xmltv_id, list(names or [display])))
            stream_rows = session.execute(
                select(
                    XtreamChannel.id,
                    XtreamChannel.name,
                    XtreamChannel.epg_channel_id,
                    Account.id,
                    Account.priority,
                )
                .join(Account, Account.id == XtreamChannel.account_id)
                .where(streamable_account())
            ).all()
            manual = session.execute(
                select(
                    ChannelMapping.xmltv_channel_id,
                    ChannelMapping.xtream_channel_id,
                    ChannelMapping.stream_priority,
                ).where(ChannelMapping.is_manual.is_(True))
            ).all()
            manual_streams = {row[1] for row in manual}
            manual_count: dict[int, int] = {}
            for channel_id, _stream, priority in manual:
                manual_count[channel_id] = max(manual_count.get(channel_id, 0), priority + 1)
            grouped, unmatched = self._decide(guide, stream_rows, manual_streams)
            session.execute(delete(ChannelMapping).where(ChannelMapping.is_manual.is_(False)))
            rows: list[dict[str, Any]] = []
            for xmltv_id, results in grouped:
                channel_id = by_xmltv[xmltv_id]
                offset = manual_count.get(channel_id, 0)
                for index, (stream_id, confidence) in enumerate(results):
                    rows.append(
                        {
                            "xmltv_channel_id": channel_id,
                            "xtream_channel_id": stream_id,
                            "match_confidence": confidence,
                            "is_manual": False,
                            "is_primary": offset == 0 and index == 0,
                            "stream_priority": offset + index,
                        }
                    )
            for start in range(0, len(rows), 5000):
                session.execute(insert(ChannelMapping), rows[start : start + 5000])
            per_channel = dict(manual_count)
            for row in rows:
                cid = row["xmltv_channel_id"]
                per_channel[cid] = per_channel.get(cid, 0) + 1
            mapped_channels = set(per_channel)
            numbered = _assign_numbers(session, channel_rows, mapped_channels)
            summary = MatchSummary(
                streams=len(stream_rows),
                mapped_streams=len(rows),
                channels_with_streams=len(mapped_channels),
                channels_with_backups=sum(1 for n in per_channel.values() if n > 1),
                unmatched=unmatched,
                manual_kept=len(manual),
                numbered=numbered,
            )
        self._events.record("info", "mapping", "automatic matching finished", summary.as_dict())
        return summary

    def _decide(
        self, guide: list[GuideRow], stream_rows: Sequence[Any], exclude: set[Any]
    ) -> tuple[list[ChannelDecision], int]:
        """The matcher's decisions: in a worker process of the CPU pool when
        there is one (this thread waits, its transaction open), else here."""
        streams: list[StreamRow] = [tuple(row) for row in stream_rows]
        if self._cpu is None:
            return match_worker.decide(guide, streams, self._threshold, exclude)
        packed, unmatched = self._cpu.call(
            match_worker.decide_packed,
            guide,
            pack_rows(streams),
            self._threshold,
            frozenset(exclude),
        )
        return list(unpack_rows(packed)), unmatched

    def suggestions(self, channel_id: int, limit: int = 20) -> list[dict[str, Any]]:
        """Unmapped streams ranked by similarity to the channel's names."""
        with self._db.session() as session:
            channel = session.get(XmltvChannel, channel_id)
            if channel is None:
                return []
            names = list(channel.display_names or [channel.display_name])
            mapped = select(ChannelMapping.xtream_channel_id)
            candidates = session.execute(
                select(XtreamChannel.id, XtreamChannel.name, Account.name, XtreamChannel.stream_id)
                .join(Account, Account.id == XtreamChannel.account_id)
                .where(XtreamChannel.id.not_in(mapped))
            ).all()
        if not candidates:
            return []
        keys = [normalize_name(name).key for _sid, name, _acc, _stream_id in candidates]
        best: dict[int, float] = {}
        for name in names:
            query = normalize_name(name).key
            for _key, score, index in process.extract(
                query, keys, scorer=fuzz.token_sort_ratio, limit=limit
            ):
                best[index] = max(best.get(index, 0.0), float(score) / 100)
        ranked = sorted(best.items(), key=lambda item: -item[1])[:limit]
        return [
            {
                "xtream_channel_id": candidates[i][0],
                "ref": stream_ref(candidates[i][2], candidates[i][3]),
                "stream_name": candidates[i][1],
                "account": candidates[i][2],
                "score": round(score, 3),
            }
            for i, score in ranked
        ]


def _assign_numbers(session: Any, channel_rows: Any, mapped: set[int]) -> int:
    taken = {row[5] for row in channel_rows if row[5] is not None}
    numbered = 0
    next_number = 1
    for cid, _xmltv, _names, _display, lcn, number in channel_rows:
        if cid not in mapped or number is not None:
            continue
        if lcn and guide_number.is_valid(lcn) and lcn not in taken:
            chosen = lcn
        else:
            while str(next_number) in taken:
                next_number += 1
            chosen = str(next_number)
        taken.add(chosen)
        session.get(XmltvChannel, cid).guide_number = chosen
        numbered += 1
    return numbered

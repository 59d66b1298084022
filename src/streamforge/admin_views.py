"""Read models for the admin UI: what each page shows, read off the event loop.

The web layer holds no SQL and never reads the database on the event loop;
it asks :class:`AdminViews` (owned by the runtime) for a page's data. Each
method gathers everything one page needs in a single call on the database's
read pool (:meth:`~streamforge.db.engine.Database.run`). What lives only in
memory on the loop — the live sessions, the account slots in use and the
circuit breakers — the caller reads on the loop and passes in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, select

from streamforge.db.engine import Database
from streamforge.db.models import (
    Account,
    ChannelMapping,
    GuideChannelSource,
    Programme,
    XmltvSource,
    XtreamChannel,
)
from streamforge.db.rules import account_may_stream
from streamforge.epg.sources import EpgService
from streamforge.events import LEVELS, EventLog
from streamforge.live_settings import saved_overrides
from streamforge.matching.channels import ChannelService, ChannelView
from streamforge.matching.service import MatchService
from streamforge.outputs.catalog import lineup, merged_window, safe_logo
from streamforge.xtream.accounts import AccountService

SEVERITY: Mapping[str, int] = MappingProxyType({lvl: rank for rank, lvl in enumerate(LEVELS)})

Breakers = Mapping[int, Mapping[str, Any]]
"""Circuit breaker status by xtream channel id (``SessionManager.breaker_states``)."""


def parse_time(value: str | None) -> datetime | None:
    """An ISO time (naive means UTC), or None for nothing; ValueError if not a time."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def breakers_by_stream(states: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {b["xtream_channel_id"]: b for b in states}


def breaker_text(breaker: Mapping[str, Any], now: datetime | None = None) -> str:
    """A stream's circuit breaker in words: "healthy", "cooling down until 20:14"."""
    state = breaker.get("state", "closed")
    if state == "open":
        retry_in = float(breaker.get("retry_in") or 0.0)
        until = (now or datetime.now().astimezone()) + timedelta(seconds=retry_in)
        return f"cooling down until {until:%H:%M}"
    if state == "half_open":
        return "cooled down, tried again on the next tune"
    return "healthy"


def usernames(db: Database) -> frozenset[str]:
    """The accounts' user names: a stream icon URL carrying one is never shown."""
    with db.session() as session:
        return frozenset(session.scalars(select(Account.username)))


def channel_logo(
    guide_icon: str | None, streams: list[dict[str, Any]], users: frozenset[str]
) -> str | None:
    """The guide's icon, else the first stream icon without credentials in it."""
    found = safe_logo(guide_icon)
    for stream in streams:
        if found is not None:
            break
        found = safe_logo(stream.get("icon"), users)
    return found


def mapped_streams(db: Database) -> dict[int, list[dict[str, Any]]]:
    """Every channel's streams in failover order, in one query (for lists and counts)."""
    with db.session() as session:
        rows = session.execute(
            select(
                ChannelMapping.xmltv_channel_id,
                XtreamChannel.id,
                XtreamChannel.name,
                Account.name,
                Account.is_active,
                Account.status,
                XtreamChannel.icon,
            )
            .join(XtreamChannel, XtreamChannel.id == ChannelMapping.xtream_channel_id)
            .join(Account, Account.id == XtreamChannel.account_id)
            .order_by(
                ChannelMapping.xmltv_channel_id,
                ChannelMapping.stream_priority,
                ChannelMapping.is_primary.desc(),
                ChannelMapping.id,
            )
        ).all()
    found: dict[int, list[dict[str, Any]]] = {}
    for channel_id, xid, name, account, active, status, icon in rows:
        found.setdefault(channel_id, []).append(
            {
                "xtream_channel_id": xid,
                "stream_name": name,
                "account": account,
                "account_active": account_may_stream(active, status),
                "icon": icon,
            }
        )
    return found


def channel_summary(
    channels: list[ChannelView], streams: Mapping[int, list[dict[str, Any]]], breakers: Breakers
) -> dict[str, Any]:
    """Counts for the dashboard, and the enabled channels no stream of which can play."""
    broken = []
    for view in channels:
        if not view.is_enabled:
            continue
        usable = [
            m
            for m in streams.get(view.id, [])
            if m["account_active"]
            and breakers.get(m["xtream_channel_id"], {}).get("state") != "open"
        ]
        if not usable:
            broken.append(view)
    return {
        "total": len(channels),
        "enabled": sum(1 for c in channels if c.is_enabled),
        "mapped": sum(1 for c in channels if c.stream_count > 0),
        "with_backups": sum(1 for c in channels if c.stream_count > 1),
        "without_stream": sum(1 for c in channels if c.is_enabled and c.stream_count == 0),
        "not_working": broken,
    }


def problems(
    accounts: list[dict[str, Any]], sources: list[dict[str, Any]], summary: Mapping[str, Any]
) -> list[dict[str, str]]:
    """What needs the admin's attention, most serious first."""
    found: list[dict[str, str]] = []
    now = datetime.now(UTC)
    for data in accounts:
        # One line per account: its state and its last error together.
        name = data["name"]
        expires = parse_time(data["exp_date"])
        error = str(data["last_error"] or "").strip().rstrip(".")
        if expires is not None and expires < now:
            text = f"Account {name} expired {expires:%Y-%m-%d}"
        elif data["status"] and str(data["status"]).lower() not in {"active", "unknown"}:
            text = f"Account {name} is {data['status']}"
        elif error:
            found.append({"level": "warning", "text": f"Account {name}: {error}."})
            continue
        else:
            continue
        if error and error.lower() not in text.lower():
            text += f": {error}"
        found.append({"level": "error", "text": f"{text}."})
    for source in sources:
        if source["last_error"]:
            found.append(
                {"level": "warning", "text": f"Guide {source['name']}: {source['last_error']}"}
            )
    broken = summary["not_working"]
    if broken:
        names = ", ".join(f"{c.guide_number or '-'} {c.name}" for c in broken[:8])
        more = f" and {len(broken) - 8} more" if len(broken) > 8 else ""
        found.append(
            {
                "level": "warning",
                "text": f"{len(broken)} enabled channels have no working stream: {names}{more}.",
            }
        )
    unique = list({p["text"]: p for p in found}.values())
    return sorted(unique, key=lambda p: -SEVERITY[p["level"]])


def _programme(placed: Any, sources: Mapping[int, str]) -> dict[str, Any]:
    if placed is None:
        return {}
    return {
        "title": str(placed.row.title),
        "sub_title": placed.row.sub_title,
        "start": placed.start.isoformat(),
        "stop": placed.stop.isoformat() if placed.stop else None,
        "time": f"{placed.start.astimezone():%H:%M}"
        + (f"\u2013{placed.stop.astimezone():%H:%M}" if placed.stop else ""),
        "source": sources.get(placed.source_id, "") if placed.source_id else "",
    }


class AdminViews:
    """The data of each admin page, each gathered in one call off the event loop."""

    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        epg: EpgService,
        channels: ChannelService,
        matching: MatchService,
        events: EventLog,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._epg = epg
        self._channels = channels
        self._matching = matching
        self._events = events

    def _accounts_with(self, in_use: Mapping[int, int]) -> list[dict[str, Any]]:
        return [
            {**view.as_dict(), "in_use": in_use.get(view.id, 0)} for view in self._accounts.all()
        ]

    # -- pages ------------------------------------------------------------------------
    async def dashboard(self, *, in_use: Mapping[int, int], breakers: Breakers) -> dict[str, Any]:
        """Accounts, guides, channel counts, problems and the most serious recent events."""

        def read() -> dict[str, Any]:
            accounts = self._accounts_with(in_use)
            sources = [s.as_dict() for s in self._epg.all()]
            summary = channel_summary(self._channels.all(), mapped_streams(self._db), breakers)
            recent = self._events.query(limit=15)  # newest first
            return {
                "accounts": accounts,
                "sources": sources,
                "summary": summary,
                "problems": problems(accounts, sources, summary),
                "events": [e.as_dict() for e in recent],
            }

        return await self._db.run(read)

    async def accounts(
        self, *, in_use: Mapping[int, int], sync_status: Callable[[str], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Every account with its slots in use; ``sync_status`` adds each one's last sync."""
        rows = await self._db.run(self._accounts_with, in_use)
        return [{**row, "sync": sync_status(row["name"])} for row in rows]

    async def guides(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            return {
                "sources": [s.as_dict() for s in self._epg.all()],
                "accounts": [a.name for a in self._accounts.all()],
            }

        return await self._db.run(read)

    async def channels(self, *, search: str | None, show: str) -> list[dict[str, Any]]:
        """Guide channels for a list filter (all, enabled, disabled, mapped, unmapped,
        backups), each with its streams in failover order."""
        filters: dict[str, bool] = {}
        if show in {"enabled", "disabled"}:
            filters["enabled"] = show == "enabled"
        if show in {"mapped", "unmapped"}:
            filters["mapped"] = show == "mapped"

        def read() -> list[dict[str, Any]]:
            found = self._channels.all(search=search, **filters)
            if show == "backups":
                found = [c for c in found if c.stream_count > 1]
            streams = mapped_streams(self._db)
            users = usernames(self._db)
            return [
                {
                    **c.as_dict(),
                    "mappings": streams.get(c.id, []),
                    "logo": channel_logo(c.icon, streams.get(c.id, []), users),
                }
                for c in found
            ]

        return await self._db.run(read)

    async def channel(self, ref: str, *, breakers: Breakers) -> dict[str, Any]:
        """One channel with its streams and their breakers (NotFoundError if unknown)."""
        view = (await self._db.run(self._channels.get, ref)).as_dict()
        for mapping in view["mappings"]:
            breaker = breakers.get(mapping["xtream_channel_id"], {"state": "closed"})
            mapping["breaker"] = {**breaker, "text": breaker_text(breaker)}
        extra = await self._db.run(self._channel_extra, view["id"], view["icon"])
        return {**view, **extra}

    def _channel_extra(self, channel_id: int, icon: str | None) -> dict[str, Any]:
        """A channel's logo and its guide: which source lists it, and which source
        supplied each programme of the next day (as ``/epg.xml`` merges them)."""
        now = datetime.now(UTC)
        streams = mapped_streams(self._db).get(channel_id, [])
        with self._db.session() as session:
            sources = session.execute(
                select(
                    XmltvSource.id,
                    XmltvSource.name,
                    XmltvSource.priority,
                    XmltvSource.time_offset_minutes,
                )
                .join(GuideChannelSource, GuideChannelSource.source_id == XmltvSource.id)
                .where(GuideChannelSource.xmltv_channel_id == channel_id)
                .order_by(XmltvSource.priority, XmltvSource.id)
            ).all()
            stored = dict(
                session.execute(
                    select(Programme.source_id, func.count())
                    .where(Programme.xmltv_channel_id == channel_id)
                    .group_by(Programme.source_id)
                ).all()
            )
            placed = merged_window(
                session, [channel_id], now - timedelta(hours=1), now + timedelta(hours=24)
            ).get(channel_id, [])
        names = {sid: name for sid, name, _p, _o in sources}
        used: dict[int | None, int] = {}
        for p in placed:
            used[p.source_id] = used.get(p.source_id, 0) + 1
        return {
            "logo": channel_logo(icon, streams, usernames(self._db)),
            "guide_sources": [
                {
                    "name": name,
                    "priority": prio,
                    "time_offset_minutes": offset,
                    "stored": int(stored.get(sid, 0)),
                    "supplied": used.get(sid, 0),
                }
                for sid, name, prio, offset in sources
            ],
            "programmes": [
                {
                    "start": p.start.isoformat(),
                    "stop": p.stop.isoformat() if p.stop else None,
                    "title": p.row.title,
                    "source": names.get(p.source_id, "?") if p.source_id else "?",
                    "now": p.start <= now < (p.stop or p.start),
                }
                for p in placed
            ],
        }

    async def guide(
        self, *, search: str | None, now: datetime | None = None, hours: int = 3
    ) -> dict[str, Any]:
        """The guide page: every published channel's programmes on a time axis of
        ``hours`` from the last half hour, with what is on now and next."""
        now = now or datetime.now(UTC)
        start = now.replace(minute=(now.minute // 30) * 30, second=0, microsecond=0)
        end = start + timedelta(hours=hours)
        span = (end - start).total_seconds()

        def pct(moment: datetime) -> float:
            seconds = (min(max(moment, start), end) - start).total_seconds()
            return round(100 * seconds / span, 2)

        def read() -> dict[str, Any]:
            rows = lineup(self._db)
            with self._db.session() as session:
                names = dict(session.execute(select(XmltvSource.id, XmltvSource.name)).all())
                window = merged_window(
                    session, [r.channel_id for r in rows], now - timedelta(hours=12), end
                )
            needle = (search or "").strip().lower()
            channels = []
            for row in rows:
                placed = window.get(row.channel_id, [])
                current = next((p for p in placed if p.start <= now < (p.stop or p.start)), None)
                later = [p for p in placed if p.start > now]
                titles = [str(p.row.title) for p in placed if (p.stop or p.start) > start]
                if needle and not (
                    needle in row.name.lower()
                    or needle == row.guide_number
                    or needle in row.xmltv_id.lower()
                    or any(needle in t.lower() for t in titles)
                ):
                    continue
                channels.append(
                    {
                        "id": row.channel_id,
                        "guide_number": row.guide_number,
                        "name": row.name,
                        "logo": row.icon,
                        "now": _programme(current, names),
                        "next": _programme(later[0] if later else None, names),
                        "blocks": [
                            {
                                **_programme(p, names),
                                "left": pct(p.start),
                                "width": round(pct(p.stop or end) - pct(p.start), 2),
                                "on_now": p is current,
                            }
                            for p in placed
                            if (p.stop or end) > start and p.start < end
                        ],
                    }
                )
            return {
                "channels": channels,
                "ticks": [
                    {
                        "label": f"{(start + timedelta(minutes=30 * i)).astimezone():%H:%M}",
                        "left": pct(start + timedelta(minutes=30 * i)),
                    }
                    for i in range(hours * 2)
                ],
                "now_left": pct(now),
                "now": now.isoformat(),
                "search": search or "",
            }

        return await self._db.run(read)

    async def logos(self) -> dict[str, str]:
        """Logos of the published channels by GuideNumber (the Live page's cards)."""

        def read() -> dict[str, str]:
            return {row.guide_number: row.icon for row in lineup(self._db) if row.icon}

        return await self._db.run(read)

    async def suggestions(self, channel_id: int, limit: int) -> list[dict[str, Any]]:
        return await self._db.run(self._matching.suggestions, channel_id, limit)

    async def events(self, **filters: Any) -> list[dict[str, Any]]:
        """The event log, newest first (``EventLog.query``'s filters)."""
        found = await self._db.run(self._events.query, **filters)
        return [e.as_dict() for e in found]

    async def saved_settings(self) -> dict[str, Any]:
        return await self._db.run(saved_overrides, self._db)

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
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import select

from streamforge.db.engine import Database
from streamforge.db.models import Account, ChannelMapping, XtreamChannel
from streamforge.db.rules import account_may_stream
from streamforge.epg.sources import EpgService
from streamforge.events import LEVELS, EventLog
from streamforge.live_settings import saved_overrides
from streamforge.matching.channels import ChannelService, ChannelView
from streamforge.matching.service import MatchService
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
    for channel_id, xid, name, account, active, status in rows:
        found.setdefault(channel_id, []).append(
            {
                "xtream_channel_id": xid,
                "stream_name": name,
                "account": account,
                "account_active": account_may_stream(active, status),
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
        name = data["name"]
        expires = parse_time(data["exp_date"])
        if expires is not None and expires < now:
            found.append({"level": "error", "text": f"Account {name} expired {expires:%Y-%m-%d}."})
        elif data["status"] and str(data["status"]).lower() not in {"active", "unknown"}:
            found.append({"level": "error", "text": f"Account {name} is {data['status']}."})
        if data["last_error"]:
            found.append({"level": "warning", "text": f"Account {name}: {data['last_error']}"})
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
    return sorted(found, key=lambda p: -SEVERITY[p["level"]])


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
            recent = self._events.query(limit=60)
            recent.sort(key=lambda e: -SEVERITY.get(e.level, 0))
            return {
                "accounts": accounts,
                "sources": sources,
                "summary": summary,
                "problems": problems(accounts, sources, summary),
                "events": [e.as_dict() for e in recent[:15]],
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
            return [{**c.as_dict(), "mappings": streams.get(c.id, [])} for c in found]

        return await self._db.run(read)

    async def channel(self, ref: str, *, breakers: Breakers) -> dict[str, Any]:
        """One channel with its streams and their breakers (NotFoundError if unknown)."""
        view = (await self._db.run(self._channels.get, ref)).as_dict()
        for mapping in view["mappings"]:
            mapping["breaker"] = breakers.get(mapping["xtream_channel_id"], {"state": "closed"})
        return view

    async def suggestions(self, channel_id: int, limit: int) -> list[dict[str, Any]]:
        return await self._db.run(self._matching.suggestions, channel_id, limit)

    async def events(self, **filters: Any) -> list[dict[str, Any]]:
        """The event log, newest first (``EventLog.query``'s filters)."""
        found = await self._db.run(self._events.query, **filters)
        return [e.as_dict() for e in found]

    async def saved_settings(self) -> dict[str, Any]:
        return await self._db.run(saved_overrides, self._db)

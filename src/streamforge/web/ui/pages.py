"""The catalogue pages: accounts, guides, channels, one channel, events and
setup. Changes are made by ``static/app.js`` through the JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from streamforge.admin_views import breakers_by_stream, parse_time
from streamforge.events import LEVELS
from streamforge.outputs.setup_urls import device_setup_urls, setup_urls
from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime
from streamforge.web.ui.common import render, require_page_session
from streamforge.web.ui.sessions import UiSession

EVENT_CATEGORIES = ("stream", "account", "epg", "mapping", "system")

router = APIRouter(include_in_schema=False)


@router.get("/ui/accounts", response_class=HTMLResponse)
async def accounts_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    rows = await runtime.views.accounts(
        in_use=runtime.streams.slots.snapshot(),
        sync_status=lambda name: runtime.sync_jobs.status(name).as_dict(),
    )
    return await render(request, "accounts", session, accounts=rows)


@router.get("/ui/guides", response_class=HTMLResponse)
async def guides_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    return await render(request, "guides", session, **await runtime.views.guides())


@router.get("/ui/channels", response_class=HTMLResponse)
async def channels_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
    search: str | None = Query(None),
    show: str = Query("all", pattern="^(all|enabled|disabled|mapped|unmapped|backups)$"),
) -> Response:
    channels = await runtime.views.channels(search=search or None, show=show)
    return await render(
        request, "channels", session, channels=channels, search=search or "", show=show
    )


@router.get("/ui/channels/{channel_id}", response_class=HTMLResponse)
async def channel_page(
    channel_id: int,
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    breakers = breakers_by_stream(runtime.streams.breaker_states())
    view = await runtime.views.channel(f"#{channel_id}", breakers=breakers)
    health = await runtime.db.run(runtime.channels.health, f"#{channel_id}")
    settings = runtime.settings
    return await render(
        request,
        "channel",
        session,
        channel=view,
        suggestions=await runtime.views.suggestions(channel_id, 10),
        health=health.as_dict(),
        health_defaults={
            "black_seconds": settings.black_seconds,
            "frozen_seconds": settings.frozen_seconds,
            "silence_seconds": settings.silence_seconds,
            "live_lag_limit": settings.live_lag_limit,
        },
    )


@router.get("/ui/events", response_class=HTMLResponse)
async def events_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
    level: str = Query(""),
    category: str = Query(""),
    channel: str = Query(""),
    since: str = Query(""),
    until: str = Query(""),
) -> Response:
    error = None
    try:
        found = await runtime.views.events(
            level=level or None,
            category=category or None,
            channel_id=int(channel) if channel else None,
            since=parse_time(since),
            until=parse_time(until),
            limit=300,
        )
    except ValueError as exc:
        found, error = [], f"Filter not understood: {exc}"
    return await render(
        request,
        "events",
        session,
        events=found,
        levels=LEVELS,
        error=error,
        filters={
            "level": level,
            "category": category,
            "channel": channel,
            "since": since,
            "until": until,
        },
        categories=EVENT_CATEGORIES,
    )


@router.get("/ui/setup", response_class=HTMLResponse)
async def setup_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    devices = await runtime.db.write(device_setup_urls, runtime.db, runtime.settings)
    return await render(
        request, "setup", session, urls=setup_urls(runtime.settings), devices=devices
    )

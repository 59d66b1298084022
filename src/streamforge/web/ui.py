"""The web UI: server-rendered pages, login/logout, live updates and live settings.

Theory of operation
-------------------
Every page is a Jinja2 template rendered on the server from the runtime's
services (no client-side framework, no build step, no CDN). Reading needs a
UI session cookie (see :mod:`streamforge.web.ui_sessions`); a page requested
without one redirects to ``/ui/login``.

Changes are made by the small vanilla script (``static/app.js``) calling the
JSON API under ``/api/v1`` with ``fetch()``: the browser sends the session
cookie, the script adds the page's CSRF token as ``X-CSRF-Token`` and
``deps.require_admin`` checks both. The few UI-only actions (settings, the
demo fault panel) are JSON endpoints here behind the same guard; login and
logout are plain forms with a CSRF field.

The Live page opens a server-sent event stream (``/ui/live/events``). It
sends the sessions snapshot once a second and every event the
:class:`~streamforge.events.EventLog` records as it happens (the log's
subscriber callback may run on any thread, so it hands events to the
loop with ``call_soon_threadsafe``). Each session carries its timeline as
ready-made *segments* (which stream played from when to when) and *marks*
(failovers, upgrades, failed probes), computed by :func:`timeline_picture`,
so the script only draws them.

Settings: a few can change while running (:data:`EDITABLE`). A change is
validated with the :class:`~streamforge.settings.Settings` model, persisted
under ``settings_overrides`` in ``app_state`` and, when it can apply live,
swapped into the runtime (new sessions use the new timing). Those that
cannot (discovery/SSDP responders are started once) say "applies after
restart"; :func:`apply_saved_overrides` folds the saved overrides into the
settings at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import select

from streamforge import __version__
from streamforge.db.engine import Database
from streamforge.db.models import Account, ChannelMapping, XtreamChannel
from streamforge.db.rules import account_may_stream
from streamforge.events import LEVELS, Event
from streamforge.outputs.setup_urls import setup_urls
from streamforge.runtime import Runtime
from streamforge.settings import Settings, documented_settings
from streamforge.state import get_state, set_state
from streamforge.streaming.policy import PolicyConfig
from streamforge.web.deps import SESSION_COOKIE, get_runtime, require_admin
from streamforge.web.ui_sessions import UiSession, UiSessions, tokens_match

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
LOGIN_CSRF_COOKIE = "sf_login_csrf"
OVERRIDES_KEY = "settings_overrides"

#: Settings the UI may change: name → applies live (True) or after a restart (False).
EDITABLE: Mapping[str, bool] = MappingProxyType(
    {
        "recovery_period": True,
        "stall_timeout": True,
        "tuner_count": True,
        "base_url": True,
        "discovery_enabled": False,
        "ssdp_enabled": False,
    }
)
#: What the Settings page says about when each editable setting takes effect.
WHEN_APPLIED: Mapping[str, str] = MappingProxyType(
    {
        "recovery_period": "Applies at once to sessions started from now on.",
        "stall_timeout": "Applies at once to sessions started from now on.",
        "tuner_count": "Applies at once (lineup, discovery).",
        "base_url": "Applies at once to lineup, M3U and setup URLs; "
        "UDP discovery answers after restart.",
        "discovery_enabled": "Applies after restart.",
        "ssdp_enabled": "Applies after restart.",
    }
)
SWITCHING_KINDS = frozenset({"failover", "upgrade"})
QUIET_KINDS = frozenset({"open", "switch"})
SEVERITY: Mapping[str, int] = MappingProxyType({lvl: rank for rank, lvl in enumerate(LEVELS)})

router = APIRouter(include_in_schema=False)


# -- plumbing ---------------------------------------------------------------------------
def ui_sessions(request: Request) -> UiSessions:
    """The app's logged-in browsers (``app.state.ui_sessions``)."""
    return cast(UiSessions, request.app.state.ui_sessions)


def templates(app: FastAPI) -> Jinja2Templates:
    """The app's template renderer (built on first use, kept on ``app.state``)."""
    found = getattr(app.state, "ui_templates", None)
    if found is None:
        found = Jinja2Templates(directory=str(TEMPLATE_DIR))
        found.env.globals["version"] = __version__
        app.state.ui_templates = found
    return cast(Jinja2Templates, found)


def require_page_session(request: Request) -> UiSession:
    """The browser's UI session; without one, redirect to the login page."""
    session = ui_sessions(request).get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "login required", {"Location": f"/ui/login?next={quote(target)}"})
    return session


def render(request: Request, name: str, session: UiSession | None, **context: Any) -> Response:
    """Render ``templates/<name>.html`` with the session's CSRF token and the demo flag."""
    context.update(request=request, csrf=session.csrf if session else "", page=name)
    context.setdefault("demo", getattr(request.app.state, "demo", None) is not None)
    return templates(request.app).TemplateResponse(request, f"{name}.html", context)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui/"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- login ------------------------------------------------------------------------------
@router.get("/")
def root() -> RedirectResponse:
    """The bare address opens the UI."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/login")
def login_page(request: Request, next: str | None = None, error: str | None = None) -> Response:
    """The login form, with a double-submit token (cookie + hidden field)."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, "login", None, login_csrf=token, next=_safe_next(next), error=error)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui/login"
    )
    return response


def _login_refused(request: Request, next: str, error: str, status: int) -> Response:
    response = login_page(request, next, error)
    response.status_code = status
    return response


@router.post("/ui/login")
def login(
    request: Request,
    password: str = Form(""),
    csrf: str = Form(""),
    next: str = Form("/ui/"),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    """Rate limit, check the form token, check the password, then start a session."""
    sessions = ui_sessions(request)
    wait = sessions.limiter.attempt(_client(request))
    if wait:
        retry = str(int(wait) + 1)
        response = _login_refused(
            request, next, f"Too many login attempts; try again in {retry} s.", 429
        )
        response.headers["Retry-After"] = retry
        return response
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf):
        return _login_refused(request, next, "The login form expired; please try again.", 403)
    if not runtime.auth.verify(password):
        return _login_refused(request, next, "Wrong password.", 401)
    session = sessions.create()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict", path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@router.post("/ui/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    sessions = ui_sessions(request)
    session = sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        if not tokens_match(session.csrf, csrf):
            raise HTTPException(403, "invalid CSRF token")
        sessions.revoke(session.token)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- dashboard --------------------------------------------------------------------------
def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _breakers(runtime: Runtime) -> dict[int, dict[str, Any]]:
    return {b["xtream_channel_id"]: b for b in runtime.streams.breaker_states_sync()}


def mapped_streams(runtime: Runtime) -> dict[int, list[dict[str, Any]]]:
    """Every channel's streams in failover order, in one query (for lists and counts)."""
    with runtime.db.session() as session:
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


def channel_summary(runtime: Runtime) -> dict[str, Any]:
    """Counts for the dashboard, and the enabled channels no stream of which can play."""
    breakers = _breakers(runtime)
    streams = mapped_streams(runtime)
    channels = runtime.channels.all()
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


def problems(runtime: Runtime, summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """What needs the admin's attention, most serious first."""
    found: list[dict[str, str]] = []
    now = datetime.now(UTC)
    for account in runtime.accounts.all():
        data = account.as_dict()
        expires = _parse_time(data["exp_date"])
        if expires is not None and expires < now:
            found.append(
                {"level": "error", "text": f"Account {account.name} expired {expires:%Y-%m-%d}."}
            )
        elif data["status"] and str(data["status"]).lower() not in {"active", "unknown"}:
            found.append({"level": "error", "text": f"Account {account.name} is {data['status']}."})
        if data["last_error"]:
            found.append(
                {"level": "warning", "text": f"Account {account.name}: {data['last_error']}"}
            )
    for source in runtime.epg.all():
        if source.last_error:
            found.append({"level": "warning", "text": f"Guide {source.name}: {source.last_error}"})
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


@router.get("/ui/", response_class=HTMLResponse)
def dashboard(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    in_use = runtime.streams.slots.snapshot()
    accounts = [
        {**view.as_dict(), "in_use": in_use.get(view.id, 0)} for view in runtime.accounts.all()
    ]
    summary = channel_summary(runtime)
    recent = runtime.events.query(limit=60)
    recent.sort(key=lambda e: -SEVERITY.get(e.level, 0))
    return render(
        request,
        "dashboard",
        session,
        accounts=accounts,
        sources=[s.as_dict() for s in runtime.epg.all()],
        summary=summary,
        problems=problems(runtime, summary),
        sessions=[with_picture(s) for s in runtime.streams.snapshot()],
        events=[e.as_dict() for e in recent[:15]],
    )


# -- accounts, guides, channels ---------------------------------------------------------
@router.get("/ui/accounts", response_class=HTMLResponse)
def accounts_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    in_use = runtime.streams.slots.snapshot()
    rows = [
        {
            **view.as_dict(),
            "in_use": in_use.get(view.id, 0),
            "sync": runtime.sync_jobs.status(view.name).as_dict(),
        }
        for view in runtime.accounts.all()
    ]
    return render(request, "accounts", session, accounts=rows)


@router.get("/ui/guides", response_class=HTMLResponse)
def guides_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    return render(
        request,
        "guides",
        session,
        sources=[s.as_dict() for s in runtime.epg.all()],
        accounts=[a.name for a in runtime.accounts.all()],
    )


@router.get("/ui/channels", response_class=HTMLResponse)
def channels_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
    search: str | None = Query(None),
    show: str = Query("all", pattern="^(all|enabled|disabled|mapped|unmapped|backups)$"),
) -> Response:
    filters: dict[str, bool] = {}
    if show in {"enabled", "disabled"}:
        filters["enabled"] = show == "enabled"
    if show in {"mapped", "unmapped"}:
        filters["mapped"] = show == "mapped"
    found = runtime.channels.all(search=search or None, **filters)
    if show == "backups":
        found = [c for c in found if c.stream_count > 1]
    streams = mapped_streams(runtime)
    return render(
        request,
        "channels",
        session,
        channels=[{**c.as_dict(), "mappings": streams.get(c.id, [])} for c in found],
        search=search or "",
        show=show,
    )


@router.get("/ui/channels/{channel_id}", response_class=HTMLResponse)
def channel_page(
    channel_id: int,
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    view = runtime.channels.get(f"#{channel_id}").as_dict()
    breakers = _breakers(runtime)
    for mapping in view["mappings"]:
        mapping["breaker"] = breakers.get(mapping["xtream_channel_id"], {"state": "closed"})
    return render(
        request,
        "channel",
        session,
        channel=view,
        suggestions=runtime.matching.suggestions(channel_id, 10),
    )


# -- live -------------------------------------------------------------------------------
def timeline_picture(status: Mapping[str, Any]) -> dict[str, Any]:
    """Segments (which stream played when) and marks (what happened when) of one session.

    Positions are percentages of the session's age, so the picture always
    spans the whole session. The session's ``switch`` entries say when the
    output started carrying a stream; a timeline without them falls back to
    the ``to`` of failovers and upgrades, starting from the first stream in
    failover order. ``open``/``switch`` bookkeeping is not drawn as a mark.
    """
    entries = list(status.get("timeline") or [])
    streams = [s.get("stream") for s in status.get("streams") or []]
    span = max([float(status.get("uptime_s") or 0.0)] + [float(e["t"]) for e in entries] + [1e-3])
    changes = [(float(e["t"]), str(e["stream"])) for e in entries if e.get("kind") == "switch"]
    if not changes:
        first = status.get("stream") if not entries else (streams[0] if streams else None)
        changes = [(0.0, str(first or "?"))] + [
            (float(e["t"]), str(e["to"]))
            for e in entries
            if e.get("kind") in SWITCHING_KINDS and e.get("to")
        ]
    order = [name for name in streams if name] + [name for _t, name in changes]
    colours = {name: index % 6 for index, name in enumerate(dict.fromkeys(order))}
    ended = next((float(e["t"]) for e in entries if e.get("kind") == "end"), span)
    bounds = [t for t, _name in changes[1:]] + [ended]
    segments = [
        _segment(name, t, stop, span, colours)
        for (t, name), stop in zip(changes, bounds, strict=True)
    ]
    marks = [
        {
            "t": round(float(e["t"]), 1),
            "kind": e.get("kind"),
            "reason": e.get("reason"),
            "to": e.get("to"),
            "pct": round(100 * float(e["t"]) / span, 2),
        }
        for e in entries
        if e.get("kind") not in QUIET_KINDS
    ]
    return {"segments": [s for s in segments if s["width"] > 0], "marks": marks, "span": span}


def _segment(
    stream: str, start: float, end: float, span: float, colours: Mapping[str, int]
) -> dict[str, Any]:
    return {
        "stream": stream,
        "start": round(start, 1),
        "end": round(end, 1),
        "left": round(100 * start / span, 2),
        "width": round(100 * max(end - start, 0.0) / span, 2),
        "colour": colours.get(stream or "", 0),
    }


def with_picture(status: Mapping[str, Any]) -> dict[str, Any]:
    """A session status plus its timeline picture (what the Live page draws)."""
    return {**status, "picture": timeline_picture(status)}


@router.get("/ui/live", response_class=HTMLResponse)
def live_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    return render(
        request,
        "live",
        session,
        sessions=[with_picture(s) for s in runtime.streams.snapshot()],
        events=[e.as_dict() for e in runtime.events.query(category="stream", limit=20)],
        fault_kinds=getattr(request.app.state, "demo", None) and request.app.state.demo.kinds,
        recovery_period=runtime.settings.recovery_period,
    )


def _frame(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def live_frames(
    request: Request, runtime: Runtime, limit: int | None, interval: float = 1.0
) -> AsyncIterator[bytes]:
    """Session snapshots every ``interval`` seconds, plus every event as it is recorded."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)

    def offer(event: Event) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(event)

    def on_event(event: Event) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(offer, event)

    unsubscribe = runtime.events.subscribe(on_event)
    sent = 0
    try:
        yield b"retry: 2000\n\n"
        while limit is None or sent < limit:
            yield _frame("sessions", [with_picture(s) for s in runtime.streams.snapshot()])
            sent += 1
            deadline = loop.time() + interval
            while limit is None or sent < limit:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        event = await queue.get()
                except TimeoutError:
                    break
                yield _frame("event", event.as_dict())
                sent += 1
            if await request.is_disconnected():
                return
    finally:
        unsubscribe()


@router.get("/ui/live/events")
def live_events(
    request: Request,
    runtime: Runtime = Depends(get_runtime),
    limit: int | None = Query(None, ge=1, le=100_000, description="stop after this many"),
    _session: UiSession = Depends(require_page_session),
) -> StreamingResponse:
    return StreamingResponse(
        live_frames(request, runtime, limit),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- events, setup ----------------------------------------------------------------------
@router.get("/ui/events", response_class=HTMLResponse)
def events_page(
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
        found = runtime.events.query(
            level=level or None,
            category=category or None,
            channel_id=int(channel) if channel else None,
            since=_parse_time(since),
            until=_parse_time(until),
            limit=300,
        )
    except ValueError as exc:
        found, error = [], f"Filter not understood: {exc}"
    return render(
        request,
        "events",
        session,
        events=[e.as_dict() for e in found],
        levels=LEVELS,
        error=error,
        filters={
            "level": level,
            "category": category,
            "channel": channel,
            "since": since,
            "until": until,
        },
        categories=("stream", "account", "epg", "mapping", "system"),
    )


@router.get("/ui/setup", response_class=HTMLResponse)
def setup_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    return render(request, "setup", session, urls=setup_urls(runtime.settings))


# -- settings ---------------------------------------------------------------------------
def apply_saved_overrides(settings: Settings, db: Database) -> Settings:
    """``settings`` with the UI's saved overrides applied (call at start-up)."""
    saved = get_state(db, OVERRIDES_KEY) or {}
    wanted = {k: v for k, v in dict(saved).items() if k in EDITABLE}
    return validated_settings(settings, wanted) if wanted else settings


def restore_saved_settings(runtime: Runtime) -> None:
    """Apply the overrides saved from the UI to a freshly built runtime."""
    restored = apply_saved_overrides(runtime.settings, runtime.db)
    if restored is not runtime.settings:
        apply_settings_live(runtime, restored)


def validated_settings(current: Settings, changes: Mapping[str, Any]) -> Settings:
    """A new Settings with ``changes``, validated by the model (ValidationError if not)."""
    values = current.model_dump()
    values.update(changes)
    return Settings.model_validate(values)


def apply_settings_live(runtime: Runtime, new: Settings) -> None:
    """Swap ``new`` into the running services; sessions started from now on use it."""
    runtime.settings = new
    runtime.streams.policy_config = PolicyConfig.from_settings(new)
    runtime.streams.upstream_config = dataclasses.replace(
        runtime.streams.upstream_config, stall_timeout=new.stall_timeout
    )


def _field_docs() -> dict[str, str]:
    return {k.removeprefix("STREAMFORGE_").lower(): v for k, v in documented_settings().items()}


@router.get("/ui/settings", response_class=HTMLResponse)
def settings_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    values = runtime.settings.model_dump(mode="json", exclude={"admin_password"})
    docs = _field_docs()
    saved = get_state(runtime.db, OVERRIDES_KEY) or {}
    rows = [
        {
            "name": k,
            "value": v,
            "doc": docs.get(k, ""),
            "editable": k in EDITABLE,
            "live": EDITABLE.get(k, False),
            "when": WHEN_APPLIED.get(k, ""),
            "saved": k in saved,
            "saved_value": saved.get(k),
            "kind": type(Settings.model_fields[k].default).__name__
            if k in Settings.model_fields
            else "str",
        }
        for k, v in values.items()
    ]
    return render(request, "settings", session, rows=rows)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 422."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPException(422, "send a JSON object")
    return body


@router.post("/ui/settings", dependencies=[Depends(require_admin)])
async def save_settings(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    body = await json_object(request)
    unknown = sorted(set(body) - set(EDITABLE))
    if unknown:
        raise HTTPException(422, f"not editable here: {', '.join(unknown)}")
    changes = {k: (None if v == "" else v) for k, v in body.items()}
    try:
        new = validated_settings(runtime.settings, changes)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg')}"}, status_code=422)
    saved = dict(get_state(runtime.db, OVERRIDES_KEY) or {})
    saved.update(new.model_dump(mode="json", include=set(changes)))
    set_state(runtime.db, OVERRIDES_KEY, saved)
    live = {k: v for k, v in changes.items() if EDITABLE[k]}
    if live:
        apply_settings_live(runtime, validated_settings(runtime.settings, live))
    runtime.events.record(
        "info", "system", "settings changed in the UI", {"changed": sorted(changes)}
    )
    return JSONResponse(
        {
            "applied": sorted(live),
            "after_restart": sorted(k for k in changes if not EDITABLE[k]),
            "saved": saved,
        }
    )


# -- demo panel -------------------------------------------------------------------------
@router.post("/ui/demo/fault", dependencies=[Depends(require_admin)])
async def demo_fault(request: Request) -> JSONResponse:
    demo = getattr(request.app.state, "demo", None)
    if demo is None:
        raise HTTPException(404, "not in demo mode")
    body = await json_object(request)
    result = demo.inject(
        str(body.get("guide_number", "")), str(body.get("kind", "")), once=bool(body.get("once"))
    )
    return JSONResponse(result)


@router.post("/ui/demo/recover", dependencies=[Depends(require_admin)])
async def demo_recover(request: Request) -> JSONResponse:
    demo = getattr(request.app.state, "demo", None)
    if demo is None:
        raise HTTPException(404, "not in demo mode")
    return JSONResponse(demo.recover())

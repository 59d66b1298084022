"""The catalogue side of the mock panel: ``player_api.php``, ``get.php``, ``xmltv.php``.

Theory of operation
-------------------
Answers follow real Xtream Codes panels: wrong credentials get HTTP 200 with
``{"user_info": {"auth": 0}}``; an expired, disabled or banned account gets its
account object for *every* action (instead of the list a client expects); numbers
that real panels send as strings (``exp_date``, ``max_connections``,
``category_id`` …) are strings here too.

Serialised list answers are cached per (account, action, category, reshaping quirks),
so a 60,000-stream ``get_live_streams`` is built once and then served from memory.

:class:`~.faults.ApiQuirk`\\ s are applied in this order: ``redirect`` (302 to the same
call under ``/lb/``, which never redirects again), ``slow_headers`` (sleep, then carry
on), ``status`` / ``html`` / ``empty`` (replace the answer), reshaping quirks
(``missing_fields``, then ``nulls``, then ``stringly``), and finally
``malformed_json`` (the real body cut in half).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from streamforge.mockprovider.catalog import Account, AccountStatus, Stream
from streamforge.mockprovider.faults import ApiQuirk, QuirkKind
from streamforge.mockprovider.guide import render_xmltv, short_epg
from streamforge.mockprovider.state import ProviderState

STATE: web.AppKey[ProviderState] = web.AppKey("mockprovider_state", ProviderState)

REDIRECT_PREFIX = "/lb"

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    "<body><h1>Service Unavailable</h1><p>The server is temporarily busy.</p>"
    "<hr><center>nginx</center></body></html>"
)

_NULLABLE = frozenset(
    {
        "stream_icon",
        "epg_channel_id",
        "custom_sid",
        "tv_archive_duration",
        "added",
        "category_id",
        "exp_date",
        "parent_id",
    }
)
_OPTIONAL = frozenset(
    {
        "stream_icon",
        "epg_channel_id",
        "custom_sid",
        "tv_archive",
        "tv_archive_duration",
        "direct_source",
        "added",
        "num",
        "parent_id",
        "is_trial",
        "allowed_output_formats",
    }
)


# --------------------------------------------------------------------------- shapes


def _drop_optional(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_optional(v) for k, v in value.items() if k not in _OPTIONAL}
    if isinstance(value, list):
        return [_drop_optional(v) for v in value]
    return value


def _nullify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (None if k in _NULLABLE else _nullify(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_nullify(v) for v in value]
    return value


def _stringify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


_RESHAPERS: tuple[tuple[QuirkKind, Callable[[Any], Any]], ...] = (
    (QuirkKind.MISSING_FIELDS, _drop_optional),
    (QuirkKind.NULLS, _nullify),
    (QuirkKind.STRINGLY, _stringify),
)


def reshape(value: Any, kinds: frozenset[QuirkKind]) -> Any:
    for kind, fn in _RESHAPERS:
        if kind in kinds:
            value = fn(value)
    return value


# --------------------------------------------------------------------------- payloads


def user_info(account: Account, now: float, active: int = 0) -> dict[str, Any]:
    status = account.effective_status(now)
    return {
        "username": account.username,
        "password": account.password,
        "message": "Welcome to the StreamForge mock panel",
        "auth": 1,
        "status": status.value,
        "exp_date": None if account.exp_date is None else str(account.exp_date),
        "is_trial": "1" if account.is_trial else "0",
        "active_cons": str(active),
        "created_at": str(account.created_at),
        "max_connections": str(account.max_connections),
        "allowed_output_formats": list(account.allowed_output_formats),
    }


def server_info(request: web.Request, timezone: str, now: float) -> dict[str, Any]:
    host = request.url.host or "127.0.0.1"
    port = request.url.port or 80
    return {
        "url": host,
        "port": str(port),
        "https_port": "443",
        "server_protocol": request.url.scheme or "http",
        "rtmp_port": "8880",
        "timezone": timezone,
        "timestamp_now": int(now),
        "time_now": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "process": True,
    }


def stream_entry(s: Stream) -> dict[str, Any]:
    return {
        "num": s.num,
        "name": s.name,
        "stream_type": "live",
        "stream_id": s.stream_id,
        "stream_icon": s.icon,
        "epg_channel_id": s.epg_channel_id,
        "added": str(s.added),
        "category_id": str(s.category_id),
        "custom_sid": s.custom_sid,
        "tv_archive": s.tv_archive,
        "direct_source": "",
        "tv_archive_duration": s.tv_archive_duration,
    }


# --------------------------------------------------------------------------- quirks


async def _pre_quirks(request: web.Request, quirks: list[ApiQuirk]) -> web.StreamResponse | None:
    """Apply answer-replacing quirks; returns the replacement answer, if any."""
    kinds = {q.kind: q for q in quirks}
    redirect = kinds.get(QuirkKind.REDIRECT)
    if redirect is not None and not request.path.startswith(REDIRECT_PREFIX + "/"):
        raise web.HTTPFound(location=REDIRECT_PREFIX + request.path_qs)
    slow = kinds.get(QuirkKind.SLOW_HEADERS)
    if slow is not None:
        await asyncio.sleep(slow.delay)
    status = kinds.get(QuirkKind.STATUS)
    if status is not None:
        return web.Response(status=status.status, text=f"error {status.status}\n")
    if QuirkKind.HTML in kinds:
        return web.Response(text=HTML_PAGE, content_type="text/html")
    if QuirkKind.EMPTY in kinds:
        return web.Response(body=b"", content_type="application/json")
    return None


def _finish(body: bytes, quirks: list[ApiQuirk], content_type: str) -> web.Response:
    if any(q.kind is QuirkKind.MALFORMED_JSON for q in quirks):
        body = body[: max(1, len(body) // 2)]
    return web.Response(body=body, content_type=content_type, charset="utf-8")


def _shape_kinds(quirks: list[ApiQuirk]) -> frozenset[QuirkKind]:
    return frozenset(q.kind for q in quirks if q.kind.reshapes)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _dump_streams(streams: list[Stream], shape: frozenset[QuirkKind]) -> bytes:
    return _dumps(reshape([stream_entry(s) for s in streams], shape))


# --------------------------------------------------------------------------- handlers


async def _params(request: web.Request) -> Mapping[str, str]:
    params: dict[str, str] = dict(request.query)
    if request.method == "POST":
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


async def player_api(request: web.Request) -> web.StreamResponse:
    """``player_api.php``: account info, categories, streams, short EPG."""
    state = request.app[STATE]
    params = await _params(request)
    target = params.get("action") or "user_info"
    username = params.get("username")
    state.registry.count_api_call(target)
    quirks = state.board.take_quirks(username, target)
    replaced = await _pre_quirks(request, quirks)
    if replaced is not None:
        return replaced
    account = state.authenticate(username, params.get("password"))
    now = time.time()
    shape = _shape_kinds(quirks)
    if account is None:
        return _finish(_dumps({"user_info": {"auth": 0}}), quirks, "application/json")
    if target == "user_info" or account.effective_status(now) is not AccountStatus.ACTIVE:
        active = state.registry.streaming_count(account.username)
        body = {
            "user_info": user_info(account, now, active),
            "server_info": server_info(request, state.catalog.timezone, now),
        }
        return _finish(_dumps(reshape(body, shape)), quirks, "application/json")
    if target == "get_live_categories":
        key: tuple[Any, ...] = (account.username, target, shape)
        cached = state.api_cache.get(key)
        if cached is None:
            cats = [
                {
                    "category_id": str(c.category_id),
                    "category_name": c.name,
                    "parent_id": c.parent_id,
                }
                for c in state.catalog.categories_for(account)
            ]
            cached = state.api_cache[key] = _dumps(reshape(cats, shape))
        return _finish(cached, quirks, "application/json")
    if target == "get_live_streams":
        category = params.get("category_id") or None
        key = (account.username, target, category, shape)
        cached = state.api_cache.get(key)
        if cached is None:
            streams = state.catalog.streams_for(account)
            if category is not None:
                streams = [s for s in streams if str(s.category_id) == category]
            # Large catalogues take a noticeable fraction of a second to serialise: do
            # it off the event loop so live streams keep their pace.
            cached = await asyncio.to_thread(_dump_streams, streams, shape)
            state.api_cache[key] = cached
        return _finish(cached, quirks, "application/json")
    if target == "get_short_epg":
        stream = _visible_stream(state, account, params.get("stream_id"))
        limit = _int(params.get("limit"), 4)
        listing = short_epg(stream, now, limit) if stream else {"epg_listings": []}
        return _finish(_dumps(reshape(listing, shape)), quirks, "application/json")
    # Unknown actions (VOD, series …): real panels answer with an empty list.
    return _finish(b"[]", quirks, "application/json")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _visible_stream(state: ProviderState, account: Account, raw_id: str | None) -> Stream | None:
    stream_id = _int(raw_id, -1)
    stream = state.catalog.find_stream(stream_id)
    if stream is None or not account.sees(stream_id):
        return None
    return stream


def _account_or_error(
    state: ProviderState, params: Mapping[str, str]
) -> tuple[Account | None, web.Response | None]:
    account = state.authenticate(params.get("username"), params.get("password"))
    if account is None:
        return None, web.Response(status=401, text="invalid credentials\n")
    if account.effective_status() is not AccountStatus.ACTIVE:
        return None, web.Response(status=403, text="account not active\n")
    return account, None


async def get_php(request: web.Request) -> web.StreamResponse:
    """``get.php?type=m3u_plus&output=ts``: the account's playlist."""
    state = request.app[STATE]
    params = await _params(request)
    state.registry.count_api_call("get.php")
    quirks = state.board.take_quirks(params.get("username"), "get.php")
    replaced = await _pre_quirks(request, quirks)
    if replaced is not None:
        return replaced
    account, error = _account_or_error(state, params)
    if account is None:
        return error or web.Response(status=401)
    kind = params.get("type", "m3u_plus")
    output = params.get("output", "ts")
    base = f"{request.url.scheme}://{request.host}"
    key = (account.username, "get.php", kind, output, base)
    cached = state.api_cache.get(key)
    if cached is None:
        cats = {c.category_id: c.name for c in state.catalog.categories}
        ext = "m3u8" if output in ("m3u8", "hls") else "ts"
        lines = ["#EXTM3U"]
        for s in state.catalog.streams_for(account):
            url = f"{base}/live/{account.username}/{account.password}/{s.stream_id}.{ext}"
            if kind == "m3u_plus":
                lines.append(
                    f'#EXTINF:-1 tvg-id="{s.epg_channel_id or ""}" tvg-name="{s.name}" '
                    f'tvg-logo="{s.icon}" group-title="{cats.get(s.category_id, "")}",{s.name}'
                )
            else:
                lines.append(f"#EXTINF:-1,{s.name}")
            lines.append(url)
        cached = state.api_cache[key] = ("\n".join(lines) + "\n").encode("utf-8")
    return web.Response(body=cached, content_type="audio/x-mpegurl", charset="utf-8")


async def xmltv_php(request: web.Request) -> web.StreamResponse:
    """``xmltv.php``: an XMLTV guide for the account's channels around now."""
    state = request.app[STATE]
    params = await _params(request)
    state.registry.count_api_call("xmltv.php")
    quirks = state.board.take_quirks(params.get("username"), "xmltv.php")
    replaced = await _pre_quirks(request, quirks)
    if replaced is not None:
        return replaced
    account, error = _account_or_error(state, params)
    if account is None:
        return error or web.Response(status=401)
    now = time.time()
    hour = int(now // 3600)
    key = (account.username, "xmltv.php", hour)
    cached = state.api_cache.get(key)
    if cached is None:
        for stale in [k for k in state.api_cache if k[:2] == key[:2]]:
            del state.api_cache[stale]
        epg_ids = sorted(
            {s.epg_channel_id for s in state.catalog.streams_for(account) if s.epg_channel_id}
        )
        channels = [state.catalog.guide_channel(e) for e in epg_ids]
        cached = await asyncio.to_thread(
            render_xmltv,
            channels,
            hour * 3600,
            state.guide_hours_before,
            state.guide_hours_after + 1,
        )
        state.api_cache[key] = cached
    if any(q.kind is QuirkKind.MALFORMED_JSON for q in quirks):
        cached = cached[: max(1, len(cached) // 2)]
    return web.Response(body=cached, content_type="application/xml", charset="utf-8")

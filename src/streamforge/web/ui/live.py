"""The Live page: sessions with their timelines, and the server-sent event stream.

The page opens ``/ui/live/events``, which sends the sessions snapshot once a
second and every event the :class:`~streamforge.events.EventLog` records as
it happens (the log's subscriber callback may run on any thread, so it hands
events to the loop with ``call_soon_threadsafe``). Each session carries its
timeline as ready-made *segments* (which stream played from when to when)
and *marks* (failovers, upgrades, failed probes), computed by
:func:`timeline_picture`, so the script only draws them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from streamforge.events import Event
from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime
from streamforge.web.ui.common import render, require_page_session
from streamforge.web.ui.sessions import UiSession

SWITCHING_KINDS = frozenset({"failover", "upgrade"})
QUIET_KINDS = frozenset({"open", "switch"})

router = APIRouter(include_in_schema=False)


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
            "gap_ms": e.get("gap_ms"),
            "pct": round(100 * float(e["t"]) / span, 2),
            "title": mark_title(e),
        }
        for e in entries
        if e.get("kind") not in QUIET_KINDS
    ]
    return {
        "segments": [s for s in segments if s["width"] > 0],
        "marks": marks,
        "span": span,
        "ticks": axis_ticks(span),
    }


#: Steps of the time axis, in seconds: the first that gives at most six ticks.
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)


def clock(seconds: float) -> str:
    """Seconds since the session started as ``m:ss`` (``h:mm:ss`` past an hour)."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def axis_ticks(span: float) -> list[dict[str, Any]]:
    """Labelled ticks under the timeline: time since the session started."""
    step = next((s for s in _TICK_STEPS if span / s <= 6), _TICK_STEPS[-1])
    ticks = []
    t = 0.0
    while t <= span + 1e-9:
        ticks.append({"t": t, "label": clock(t), "pct": round(100 * t / span, 2)})
        t += step
    return ticks


def mark_title(entry: Mapping[str, Any]) -> str:
    """What a mark says on hover: when, what, why, and what the viewers saw."""
    kind = str(entry.get("kind") or "")
    words = {
        "failover": "failover",
        "upgrade": "switched back to a better stream",
        "upgrade_failed": "a better stream was tried and failed",
        "breaker_open": "stream set aside (circuit breaker)",
        "exhausted": "no stream left to play",
        "end": "session ended",
    }.get(kind, kind.replace("_", " "))
    text = f"{clock(float(entry.get('t') or 0.0))} {words}"
    reason = entry.get("reason")
    if reason:
        text += f" after {str(reason).replace('_', ' ')}"
    if entry.get("from") and entry.get("to"):
        text += f": {entry['from']} → {entry['to']}"
    elif entry.get("to"):
        text += f" → {entry['to']}"
    gap = entry.get("gap_ms")
    if isinstance(gap, int | float):
        text += f"; viewers saw a {gap:.0f} ms gap" if gap > 0 else "; no gap for viewers"
    elif kind == "upgrade":
        text += "; no gap for viewers"
    return text


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


def sessions_with_pictures(runtime: Runtime) -> list[dict[str, Any]]:
    """The live sessions (read on the loop, where they live) with their pictures."""
    return [with_picture(s) for s in runtime.streams.snapshot()]


@router.get("/ui/live", response_class=HTMLResponse)
async def live_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    demo = getattr(request.app.state, "demo", None)
    return await render(
        request,
        "live",
        session,
        sessions=sessions_with_pictures(runtime),
        events=await runtime.views.events(category="stream", limit=20),
        fault_kinds=demo and demo.kinds,
        recovery_period=runtime.settings.recovery_period,
        logos=await runtime.views.logos(),
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
            yield _frame("sessions", sessions_with_pictures(runtime))
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
async def live_events(
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

"""The live-stream side of the mock panel: paced MPEG-TS with fault injection.

Theory of operation
-------------------
``/live/U/P/ID.ts``, ``/live/U/P/ID``, ``/U/P/ID`` and ``/U/P/ID.ts`` serve stream
``ID``; ``.m3u8`` (HLS) answers 404 — this panel only does MPEG-TS.

Each request is a :class:`~.connections.Connection` from accept to close. After
authentication (401 bad credentials, 403 inactive account or ``ts`` not an allowed
output format, 404 unknown/unsold stream) a before-headers fault, if set, answers
instead. Only then is the account's ``max_connections`` enforced and video sent.

Pacing is anchored to the provider's broadcast clock: byte ``p`` of the endless feed
(see :class:`~.media.MediaClip`) is due at ``epoch + p / byte_rate``. A new connection
starts at the random-access point (PAT before a keyframe) preceding the current live
position, so it first receives up to one GOP at once — like a real panel's burst —
and then every ``TICK`` seconds the bytes that have become due. Between ticks the
handler checks the transport, so a client that leaves is noticed within a tick even
if nothing is being written; a stalled connection polls the same way.

Every stream adds its own fixed offset (:func:`~.media.pts_offset_for`) to PCR/PTS/DTS,
so two streams made from the same clip still have unrelated clocks, as streams from
different real providers do.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from aiohttp import web

from streamforge.mockprovider.api import HTML_PAGE, STATE
from streamforge.mockprovider.catalog import Account, AccountStatus
from streamforge.mockprovider.clip import MediaClip, pts_offset_for
from streamforge.mockprovider.connections import Connection, abort_transport
from streamforge.mockprovider.faults import Fault, FaultKind, FaultSlot
from streamforge.mockprovider.profiles import TS_PACKET
from streamforge.mockprovider.state import ProviderState

log = logging.getLogger(__name__)

#: Seconds between pacing steps (and between "is the client still there" checks).
TICK = 0.04
#: Seconds between checks while stalled or sleeping before headers.
POLL = 0.05
TS_CONTENT_TYPE = "video/mp2t"


def _parse_stream_id(raw: str) -> tuple[int, str] | None:
    stem, dot, ext = raw.partition(".")
    if not stem.isdigit():
        return None
    return int(stem), (ext if dot else "ts")


async def live_by_path(request: web.Request) -> web.StreamResponse:
    """``/live/{user}/{password}/{stream}`` and ``/{user}/{password}/{stream}``."""
    parsed = _parse_stream_id(request.match_info["stream"])
    if parsed is None or parsed[1] not in ("ts", "m3u8"):
        raise web.HTTPNotFound()
    stream_id, ext = parsed
    if ext == "m3u8":
        raise web.HTTPNotFound(text="HLS is not offered by this panel\n")
    state = request.app[STATE]
    username = request.match_info["user"]
    account = state.authenticate(username, request.match_info["password"])
    return await _serve(request, state, stream_id, username, account, via_token=False)


async def live_by_token(request: web.Request) -> web.StreamResponse:
    """``/live/play/{token}/{stream}.ts``: the target of a ``redirect`` fault."""
    parsed = _parse_stream_id(request.match_info["stream"])
    if parsed is None:
        raise web.HTTPNotFound()
    state = request.app[STATE]
    username = state.redeem_token(request.match_info["token"], parsed[0])
    if username is None:
        return web.Response(status=403, text="token expired\n")
    account = state.catalog.find_account(username)
    return await _serve(request, state, parsed[0], username, account, via_token=True)


def _access_error(
    state: ProviderState, account: Account | None, stream_id: int
) -> tuple[int, str] | None:
    if account is None:
        return 401, "unauthorized"
    if account.effective_status() is not AccountStatus.ACTIVE:
        return 403, "account_inactive"
    if "ts" not in account.allowed_output_formats:
        return 403, "format_not_allowed"
    if state.catalog.find_stream(stream_id) is None or not account.sees(stream_id):
        return 404, "not_found"
    return None


async def _serve(
    request: web.Request,
    state: ProviderState,
    stream_id: int,
    username: str,
    account: Account | None,
    *,
    via_token: bool,
) -> web.StreamResponse:
    """Count the connection from accept until its answer has been handed to the socket."""
    label = account.username if account is not None else "?"
    conn = state.registry.open(stream_id, label, request.transport, request.remote or "")
    reason = "completed"
    try:
        response, reason = await _answer(request, state, conn, username, account, via_token)
        if not response.prepared and not conn.client_gone():
            # Short answers are sent here, so the connection is logged closed only
            # after its bytes are on their way.
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionError:
                reason = "client_closed"
        return response
    except asyncio.CancelledError:
        reason = "cancelled"
        raise
    finally:
        state.registry.close(conn, reason)


async def _answer(
    request: web.Request,
    state: ProviderState,
    conn: Connection,
    username: str,
    account: Account | None,
    via_token: bool,
) -> tuple[web.StreamResponse, str]:
    """Decide and produce the answer to a live request; returns it and the close reason."""
    stream_id = conn.stream_id
    error = _access_error(state, account, stream_id)
    if error is not None or account is None:
        status, reason = error or (401, "unauthorized")
        return web.Response(status=status, text=f"{reason}\n"), reason
    slot = state.board.slot(stream_id)
    if (
        slot is not None
        and slot.fault.kind.before_headers
        and not (via_token and slot.fault.kind is FaultKind.REDIRECT)
    ):
        state.board.consume(stream_id, slot)
        answer, reason = await _before_headers(request, state, conn, slot.fault, username)
        if answer is not None:
            return answer, reason
    if conn.client_gone():
        return web.Response(status=499), "client_closed"
    if request.method == "HEAD":
        # A probe: headers only, and it does not take one of the account's slots.
        return web.Response(headers={"Content-Type": TS_CONTENT_TYPE}), "head"
    if not state.registry.admit(conn, account.max_connections):
        status = state.registry.limit_mode.refuse_status
        return web.Response(status=status, text="max connections reached\n"), "limit_refused"
    clip = await state.media.get(state.catalog.stream(stream_id).profile)
    response = web.StreamResponse(headers={"Content-Type": TS_CONTENT_TYPE})
    response.force_close()
    await response.prepare(request)
    try:
        reason = await _pump(state, conn, response, clip)
    except ConnectionError:
        reason = "client_closed"
    return response, reason


async def _before_headers(
    request: web.Request, state: ProviderState, conn: Connection, fault: Fault, username: str
) -> tuple[web.StreamResponse | None, str]:
    """Answer a before-headers fault. ``(None, …)`` means: go on and stream."""
    kind = fault.kind
    if kind is FaultKind.REFUSE:
        abort_transport(request.transport, reset=True)
        return web.Response(status=503), "refuse"
    if kind is FaultKind.STATUS:
        return web.Response(status=fault.status, text=f"error {fault.status}\n"), "status"
    if kind is FaultKind.HTML:
        return web.Response(text=HTML_PAGE, content_type="text/html"), "html"
    if kind is FaultKind.EMPTY:
        return web.Response(body=b"", content_type=TS_CONTENT_TYPE), "empty"
    if kind is FaultKind.REDIRECT:
        token = state.issue_token(username, conn.stream_id, fault.token_ttl)
        location = f"{request.scheme}://{request.host}/live/play/{token}/{conn.stream_id}.ts"
        return web.Response(status=302, headers={"Location": location}), "redirect"
    # SLOW_HEADERS: hold the request, then serve normally.
    deadline = time.monotonic() + fault.delay
    # aiohttp has no "peer went away" event; polling the transport is how we notice.
    while time.monotonic() < deadline and not conn.client_gone():  # noqa: ASYNC110
        await asyncio.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
    return None, "completed"


def _due(state: ProviderState, clip: MediaClip) -> int:
    elapsed = time.monotonic() - state.epoch
    return int(elapsed * clip.byte_rate) // TS_PACKET * TS_PACKET


async def _pump(
    state: ProviderState, conn: Connection, response: web.StreamResponse, clip: MediaClip
) -> str:
    """Stream the paced feed until the client leaves or a fault ends it; returns the reason."""
    live = _due(state, clip)
    loop_index, within = divmod(live, clip.loop_bytes)
    position = loop_index * clip.loop_bytes + clip.entry_at_or_before(within)
    offset = pts_offset_for(conn.stream_id)
    while True:
        if conn.client_gone():
            return conn.kill_reason or "client_closed"
        slot = state.board.slot(conn.stream_id)
        now = time.monotonic()
        if slot is not None and not slot.fault.kind.before_headers:
            fire = slot.fire_time(conn.started)
            if now >= fire:
                state.board.consume(conn.stream_id, slot)
                return await _during_stream(state, conn, response, clip, slot, position)
        due = _due(state, clip)
        if due > position:
            chunk = clip.read(position, due, offset)
            await response.write(chunk)
            conn.bytes_sent += len(chunk)
            position = due
        await asyncio.sleep(TICK)


async def _wait_gone(conn: Connection) -> None:
    while not conn.client_gone():  # noqa: ASYNC110 - see _before_headers
        await asyncio.sleep(POLL)


async def _during_stream(
    state: ProviderState,
    conn: Connection,
    response: web.StreamResponse,
    clip: MediaClip,
    slot: FaultSlot,
    position: int,
) -> str:
    fault = slot.fault
    kind = fault.kind
    state.registry.mark_fault(conn, kind.value)
    log.info("stream %s connection %s: %s fault fires", conn.stream_id, conn.conn_id, kind.value)
    if kind is FaultKind.EOF:
        # End the chunked body properly, then close after the buffer drains (FIN).
        await response.write_eof()
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()
        return "eof"
    if kind is FaultKind.RESET:
        abort_transport(conn.transport, reset=True)
        return "reset"
    if kind is FaultKind.STALL:
        await _wait_gone(conn)
        return conn.kill_reason or "client_closed_during_stall"
    if kind is FaultKind.DRIP:
        pending = b""
        step = max(1, fault.rate // 4)
        offset = pts_offset_for(conn.stream_id)
        while not conn.client_gone():
            while len(pending) < step:
                pending += clip.read(position, position + 4 * TS_PACKET, offset)
                position += 4 * TS_PACKET
            await response.write(pending[:step])
            conn.bytes_sent += step
            pending = pending[step:]
            await asyncio.sleep(0.25)
        return conn.kill_reason or "client_closed_during_drip"
    # GARBAGE: random bytes at the stream's byte rate.
    rng = random.Random(conn.conn_id)
    per_tick = max(1, int(clip.byte_rate * TICK))
    while not conn.client_gone():
        chunk = rng.randbytes(per_tick)
        await response.write(chunk)
        conn.bytes_sent += len(chunk)
        await asyncio.sleep(TICK)
    return conn.kill_reason or "client_closed_during_garbage"

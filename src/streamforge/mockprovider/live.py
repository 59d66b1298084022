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

Media and delivery faults (see :mod:`.faults`) keep the connection going: the
connection's :class:`_Feed` splices the replacement picture/sound in at the next
keyframe (or drops a PID, or changes its pacing), and splices back when the fault is
healed. A media fault whose replacement clip is still being encoded waits for it (it
fires as soon as the clip is ready; :meth:`.state.ProviderState.set_fault` starts the
encode when the fault is set).

Every stream adds its own fixed offset (:func:`~.media.pts_offset_for`) to PCR/PTS/DTS,
so two streams made from the same clip still have unrelated clocks, as streams from
different real providers do.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import numpy as np
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


class _Feed:
    """One connection's place in its endless feed: the clip it reads, where, and how fast.

    Pacing is an anchor: byte ``p`` of the current clip's feed is due at
    ``anchor_time + (p - anchor_pos) / (byte_rate * speed)``. A fresh connection is
    anchored to the broadcast clock (``epoch``, position 0, speed 1). A *splice*
    (:meth:`switch`) takes effect at the next entry point (PAT before a keyframe) of
    the current clip: the feed goes on with the new source's entry point whose
    keyframe carries the same PTS, in the same loop number — so PCR/PTS/DTS run on
    without a jump — and re-anchors so that point is due when the old one was. From
    the first splice on, every packet's continuity counter is restamped per PID (see
    :func:`_restamp`), so CCs stay continuous across splices and dropped PIDs.
    """

    def __init__(self, clip: MediaClip, pts_offset: int, epoch: float, position: int) -> None:
        self.clip = clip
        self.drop: frozenset[int] = frozenset()
        self.offset = pts_offset
        self.position = position
        self.anchor_time = epoch
        self.anchor_pos = 0
        self.speed = 1.0
        self._pending: tuple[MediaClip, frozenset[int]] | None = None
        self._splice_at: int | None = None
        self._counters: dict[int, int] | None = None

    @classmethod
    def live(cls, clip: MediaClip, pts_offset: int, epoch: float) -> _Feed:
        """A feed at the random-access point preceding the broadcast's live position."""
        feed = cls(clip, pts_offset, epoch, 0)
        live = feed.due(time.monotonic())
        loop_index, within = divmod(live, clip.loop_bytes)
        feed.position = loop_index * clip.loop_bytes + clip.entry_at_or_before(within)
        return feed

    def due(self, at: float) -> int:
        """The position of the current clip's feed that is due at monotonic time ``at``."""
        ahead = int((at - self.anchor_time) * self.clip.byte_rate * self.speed)
        return self.anchor_pos + ahead // TS_PACKET * TS_PACKET

    def _due_time(self, position: int) -> float:
        return self.anchor_time + (position - self.anchor_pos) / (self.clip.byte_rate * self.speed)

    def reanchor(self, at: float, speed: float) -> None:
        """From ``at`` on, deliver at ``speed`` times real time from the current position."""
        self.anchor_time, self.anchor_pos, self.speed = at, self.position, speed

    @property
    def spliced(self) -> bool:
        return self._counters is not None

    def switch(self, clip: MediaClip, drop: frozenset[int] = frozenset()) -> None:
        """Go on with ``clip`` (without the ``drop`` PIDs) from the next entry point."""
        if clip is self.clip and drop == self.drop and self._pending is None:
            return
        self._pending = (clip, drop)
        self._splice_at = self.clip.entry_after(self.position)

    def take(self, at: float | None = None, size: int | None = None) -> bytes:
        """The next bytes: all that is due at ``at``, or the next ``size`` bytes of the feed."""
        chunks: list[bytes] = []
        end = self.position + (size or 0) // TS_PACKET * TS_PACKET
        while True:
            target = self.due(at) if at is not None else end
            splice_at, pending = self._splice_at, self._pending
            if splice_at is not None and pending is not None and splice_at <= target:
                chunks.append(self._read(splice_at))
                end -= self.position  # what remains, in the next clip's coordinates
                self._splice(splice_at, *pending)
                end += self.position
                continue
            if target > self.position:
                chunks.append(self._read(target))
            return b"".join(chunks)

    def _read(self, end: int) -> bytes:
        data = self.clip.read(self.position, end, self.offset)
        self.position = end
        if self.drop:
            data = _drop_pids(data, self.drop)
        if self._counters is not None:
            data = _restamp(data, self._counters)
        return data

    def _splice(self, at: int, clip: MediaClip, drop: frozenset[int]) -> None:
        old = self.clip
        if self._counters is None:
            # Until now the feed was the plain render: count on from its counters.
            self._counters = old.next_counters(at)
        target = clip.matching_entry(old, at)
        if target is None:
            loop, within = divmod(at, old.loop_bytes)
            target = clip.entry_after(loop * clip.loop_bytes + min(within, clip.loop_bytes - 1))
        due_at = self._due_time(at)
        self.clip, self.drop, self.position = clip, drop, target
        self.anchor_time, self.anchor_pos = due_at, target
        self._pending = self._splice_at = None


def _drop_pids(data: bytes, pids: frozenset[int]) -> bytes:
    packets = np.frombuffer(data, dtype=np.uint8).reshape(-1, TS_PACKET)
    pid = ((packets[:, 1].astype(np.int64) & 0x1F) << 8) | packets[:, 2]
    return packets[~np.isin(pid, list(pids))].tobytes()


def _restamp(data: bytes, counters: dict[int, int]) -> bytes:
    """Renumber continuity counters so each PID counts on from ``counters`` (updated).

    Payload packets take the next counter; packets without payload repeat the last
    one, as the standard asks. Null packets are left alone.
    """
    if not data:
        return data
    packets = np.frombuffer(bytearray(data), dtype=np.uint8).reshape(-1, TS_PACKET)
    pids = ((packets[:, 1].astype(np.int64) & 0x1F) << 8) | packets[:, 2]
    payload = (packets[:, 3] & 0x10) != 0
    for pid in np.unique(pids).tolist():
        if pid == 0x1FFF:
            continue
        sel = np.flatnonzero(pids == pid)
        has = payload[sel].astype(np.int64)
        start = counters.get(pid)
        if start is None:
            first = int(packets[sel[0], 3]) & 0x0F
            start = first if has[0] else (first + 1) & 0x0F
        before = np.cumsum(has) - has
        cc = (start + before - (1 - has)) & 0x0F
        packets[sel, 3] = (packets[sel, 3] & 0xF0) | cc.astype(np.uint8)
        counters[pid] = (start + int(has.sum())) & 0x0F
    return packets.tobytes()


class _Ongoing:
    """The media or delivery fault currently applied to one connection."""

    def __init__(self, slot: FaultSlot, normal: MediaClip) -> None:
        self.slot = slot
        self.normal = normal
        self.next_burst: float | None = None

    @staticmethod
    def source(
        state: ProviderState, normal: MediaClip, fault: Fault
    ) -> tuple[MediaClip, frozenset[int]] | None:
        """What the feed switches to for a media fault (None: its media is not ready yet)."""
        profile = normal.profile
        kind = fault.kind
        if kind is FaultKind.NO_VIDEO:
            return normal, frozenset({profile.video_pid})
        if kind is FaultKind.NO_AUDIO:
            return normal, frozenset({profile.audio_pid})
        variant = kind.variant
        if variant is None:
            return normal, frozenset()
        clip = state.media.prefetch(profile.name, variant)
        return None if clip is None else (clip, frozenset())

    def apply(self, feed: _Feed, source: tuple[MediaClip, frozenset[int]], now: float) -> None:
        fault = self.slot.fault
        if fault.kind is FaultKind.SLOW:
            feed.reanchor(now, fault.factor)
        elif fault.kind is FaultKind.BURSTY:
            self.next_burst = now
        else:
            feed.switch(*source)

    def heal(self, feed: _Feed, now: float) -> None:
        kind = self.slot.fault.kind
        if kind is FaultKind.SLOW:
            feed.reanchor(now, 1.0)  # real time again, as far behind live as it got
        elif kind is not FaultKind.BURSTY:
            feed.switch(self.normal)
        # BURSTY: plain pacing again; nothing is due until live catches up.

    def take(self, feed: _Feed, now: float) -> bytes:
        if self.next_burst is None:
            return feed.take(now)
        if now < self.next_burst:
            return b""
        period = self.slot.fault.period
        self.next_burst += period
        if self.next_burst <= now:
            self.next_burst = now + period
        # Everything up to one period ahead of live, at once (like one HLS segment).
        return feed.take(now + period)


async def _pump(
    state: ProviderState, conn: Connection, response: web.StreamResponse, clip: MediaClip
) -> str:
    """Stream the paced feed until the client leaves or a fault ends it; returns the reason."""
    feed = _Feed.live(clip, pts_offset_for(conn.stream_id), state.epoch)
    ongoing: _Ongoing | None = None
    while True:
        if conn.client_gone():
            return conn.kill_reason or "client_closed"
        slot = state.board.slot(conn.stream_id)
        now = time.monotonic()
        if ongoing is not None and ongoing.slot.healed:
            log.info("stream %s connection %s: healed", conn.stream_id, conn.conn_id)
            ongoing.heal(feed, now)
            ongoing = None
            state.registry.mark_fault(conn, "")
        if (
            slot is not None
            and (ongoing is None or slot is not ongoing.slot)
            and not slot.fault.kind.before_headers
            and now >= slot.fire_time(conn.started)
        ):
            if not slot.fault.kind.ongoing:
                state.board.consume(conn.stream_id, slot)
                return await _during_stream(state, conn, response, feed, slot)
            source = _Ongoing.source(state, clip, slot.fault)
            if source is not None:  # else: its media is still being encoded
                state.board.consume(conn.stream_id, slot)
                _fired(state, conn, slot.fault.kind)
                ongoing = _Ongoing(slot, clip)
                ongoing.apply(feed, source, now)
        chunk = feed.take(now) if ongoing is None else ongoing.take(feed, now)
        if chunk:
            await response.write(chunk)
            conn.bytes_sent += len(chunk)
        await asyncio.sleep(TICK)


def _fired(state: ProviderState, conn: Connection, kind: FaultKind) -> None:
    state.registry.mark_fault(conn, kind.value)
    log.info("stream %s connection %s: %s fault fires", conn.stream_id, conn.conn_id, kind.value)


async def _wait_gone(conn: Connection) -> None:
    while not conn.client_gone():  # noqa: ASYNC110 - see _before_headers
        await asyncio.sleep(POLL)


async def _during_stream(
    state: ProviderState,
    conn: Connection,
    response: web.StreamResponse,
    feed: _Feed,
    slot: FaultSlot,
) -> str:
    fault = slot.fault
    kind = fault.kind
    _fired(state, conn, kind)
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
        # A few bytes every 0.25 s: never silent for long, far below real time.
        pending = b""
        step = max(1, fault.rate // 4)
        while not conn.client_gone():
            while len(pending) < step:
                pending += feed.take(size=4 * TS_PACKET)
            await response.write(pending[:step])
            conn.bytes_sent += step
            pending = pending[step:]
            await asyncio.sleep(0.25)
        return conn.kill_reason or "client_closed_during_drip"
    # GARBAGE: random bytes at the stream's byte rate.
    rng = random.Random(conn.conn_id)
    per_tick = max(1, int(feed.clip.byte_rate * TICK))
    while not conn.client_gone():
        chunk = rng.randbytes(per_tick)
        await response.write(chunk)
        conn.bytes_sent += len(chunk)
        await asyncio.sleep(TICK)
    return conn.kill_reason or "client_closed_during_garbage"

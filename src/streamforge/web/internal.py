"""Routes the nodes of a cluster call on each other (never Plex or a browser).

``GET /internal/relay/{channel_id}?ts=…&sig=…`` streams this node's session of
the channel to another node (see :mod:`streamforge.streaming.relay`): the
request joins the session's fan-out like any viewer, so the channel keeps
one provider connection however many nodes watch it. The signature is the
HMAC-SHA256 of ``"<channel id>:<ts>"`` under the cluster secret, compared in
constant time and valid for a minute. 404 outside cluster mode or when this
node does not play the channel from its own upstream; 403 for a bad
signature.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from streamforge.runtime import Runtime
from streamforge.streaming.fanout import FanoutReader
from streamforge.streaming.relay import relay_secret, verify
from streamforge.streaming.session import ChannelSession
from streamforge.web.deps import get_runtime

router = APIRouter(include_in_schema=False)


async def _relay_body(session: ChannelSession, reader: FanoutReader) -> AsyncIterator[bytes]:
    try:
        async for chunk in reader:
            yield chunk
    finally:
        session.leave(reader)


@router.get("/internal/relay/{channel_id}")
async def relay(
    channel_id: int, request: Request, runtime: Runtime = Depends(get_runtime)
) -> Response:
    secret = relay_secret(runtime.settings) if runtime.cluster is not None else None
    if secret is None:
        return JSONResponse({"error": "not a cluster node"}, status_code=404)
    query = request.query_params
    if not verify(secret, channel_id, query.get("ts"), query.get("sig")):
        return JSONResponse({"error": "bad or expired relay signature"}, status_code=403)
    session = runtime.streams.relay_source(channel_id)
    if session is None:
        return JSONResponse({"error": f"channel {channel_id} is not played here"}, status_code=404)
    reader = session.join()
    return StreamingResponse(
        _relay_body(session, reader),
        media_type="video/mp2t",
        headers={"Cache-Control": "no-cache, no-store"},
    )

"""What Plex, Jellyfin, Emby and IPTV players request — open, no admin auth.

HDHomeRun emulation (``/discover.json``, ``/lineup*.json``, ``/lineup.post``,
``/device.xml``), the M3U playlist, the XMLTV guide and the tuner URLs
``/auto/v{GuideNumber}``. Unknown query parameters (Jellyfin's
``?transcode=``) are ignored everywhere. No answer ever contains a provider
host, username or password: channels are published only by their
StreamForge proxy URL.

The database is read on its worker threads (``Database.run``); a guide that
is not cached yet streams from a generator Starlette iterates in its thread
pool, so no request reads the database or renders XML on the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from streamforge.outputs import catalog
from streamforge.outputs.guide_cache import guide_version, render
from streamforge.outputs.hdhomerun import (
    LineupChannel,
    TunerIdentity,
    device_xml,
    discover_json,
    lineup_entry,
    lineup_status_json,
    stream_url,
)
from streamforge.outputs.identity import tuner_identity
from streamforge.outputs.m3u import M3UChannel, m3u_entry, m3u_header
from streamforge.outputs.xmltv_writer import gzip_chunks
from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime

router = APIRouter(tags=["plex"])


def base_url(request: Request, runtime: Runtime) -> str:
    """The public base URL: the setting, else the address the request came in on."""
    if runtime.settings.base_url:
        return runtime.settings.base_url
    return str(request.base_url).rstrip("/")


@router.get("/discover.json")
async def discover(request: Request, runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    identity = await _identity(request, runtime)
    return JSONResponse(discover_json(identity))


@router.get("/lineup_status.json")
async def lineup_status() -> JSONResponse:
    return JSONResponse(lineup_status_json())


async def _identity(request: Request, runtime: Runtime) -> TunerIdentity:
    return await runtime.db.run(
        tuner_identity, runtime.db, runtime.settings, base_url(request, runtime)
    )


async def _lineup_channels(runtime: Runtime) -> list[catalog.LineupRow]:
    return await runtime.db.run(catalog.lineup, runtime.db)


@router.get("/lineup.json")
async def lineup(request: Request, runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    base = base_url(request, runtime)
    entries = [
        lineup_entry(base, LineupChannel(row.guide_number, row.name, hd=row.hd))
        for row in await _lineup_channels(runtime)
    ]
    return JSONResponse(entries)


@router.post("/lineup.post")
async def lineup_post(request: Request) -> Response:
    scan = request.query_params.get("scan", "start")
    if scan not in {"start", "abort"}:
        return JSONResponse({"error": "scan must be start or abort"}, status_code=400)
    return Response(status_code=200)


@router.get("/device.xml")
@router.get("/capability")
async def device(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    identity = await _identity(request, runtime)
    return Response(device_xml(identity), media_type="application/xml")


@router.get("/playlist.m3u")
@router.get("/playlist.m3u8")
async def playlist(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    base = base_url(request, runtime)
    parts = [m3u_header(base)]
    for row in await _lineup_channels(runtime):
        parts.append(
            m3u_entry(
                M3UChannel(
                    name=row.name,
                    url=stream_url(base, row.guide_number),
                    number=row.guide_number,
                    tvg_id=row.epg_id,
                    logo=row.icon or "",
                    group=row.group,
                )
            )
        )
    return Response("".join(parts), media_type="audio/x-mpegurl")


async def _guide_response(runtime: Runtime, *, gzipped: bool) -> Response:
    rows = await _lineup_channels(runtime)
    cache = runtime.catalog.guide_cache
    version = await runtime.db.run(guide_version, runtime.db, rows)
    kind = "epg.xml.gz" if gzipped else "epg.xml"
    media_type = "application/gzip" if gzipped else "application/xml; charset=utf-8"
    headers = {"ETag": f'"{version}"'}
    if gzipped:
        headers["Content-Disposition"] = 'attachment; filename="epg.xml.gz"'
    cached = cache.cached(kind, version)
    if cached is not None:
        return FileResponse(cached, media_type=media_type, headers=headers)
    chunks = render(runtime.db, rows)
    if gzipped:
        chunks = gzip_chunks(chunks)
    return StreamingResponse(
        cache.tee(kind, version, chunks), media_type=media_type, headers=headers
    )


@router.get("/epg.xml")
@router.get("/xmltv.xml")
async def epg(runtime: Runtime = Depends(get_runtime)) -> Response:
    return await _guide_response(runtime, gzipped=False)


@router.get("/epg.xml.gz")
async def epg_gz(runtime: Runtime = Depends(get_runtime)) -> Response:
    return await _guide_response(runtime, gzipped=True)

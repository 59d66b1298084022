"""What Plex, Jellyfin, Emby and IPTV players request — open, no admin auth.

HDHomeRun emulation (``/discover.json``, ``/lineup*.json``, ``/lineup.post``,
``/device.xml``), the M3U playlist, the XMLTV guide and the tuner URLs
``/auto/v{GuideNumber}``. Unknown query parameters (Jellyfin's
``?transcode=``) are ignored everywhere. No answer ever contains a provider
host, username or password: channels are published only by their
StreamForge proxy URL.

Every device of :mod:`streamforge.outputs.devices` has the same documents
under ``/devices/N/``; the root HDHomeRun documents are device 1's, while
the root playlist and guide carry every device's channels (for players that
take one playlist). An unknown device answers 404.

The database is read on its worker threads (``Database.run``); a guide that
is not cached yet streams from a generator Starlette iterates in its thread
pool, so no request reads the database or renders XML on the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from streamforge.outputs import catalog
from streamforge.outputs.devices import Device, DevicePlan, current_plan
from streamforge.outputs.guide_cache import device_guide_prefix, guide_version, render
from streamforge.outputs.hdhomerun import (
    LineupChannel,
    TunerIdentity,
    device_xml,
    discover_json,
    lineup_entry,
    lineup_status_json,
    stream_url,
)
from streamforge.outputs.identity import device_auth, for_node, tuner_count
from streamforge.outputs.m3u import M3UChannel, m3u_entry, m3u_header
from streamforge.outputs.xmltv_writer import gzip_chunks
from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime

router = APIRouter(tags=["plex"])
device_router = APIRouter(prefix="/devices/{number}", tags=["plex"])


def base_url(request: Request, runtime: Runtime) -> str:
    """The public base URL: the setting, else the address the request came in on."""
    if runtime.settings.base_url:
        return runtime.settings.base_url.rstrip("/")
    return str(request.base_url).rstrip("/")


async def device_of(runtime: Runtime, number: int) -> tuple[DevicePlan, Device]:
    """The current split and device ``number`` of it, else a 404."""
    plan = await current_plan(runtime.db, runtime.settings)
    device = plan.device(number)
    if device is None:
        raise HTTPException(404, f"no device {number}")
    return plan, device


def _identity_of(runtime: Runtime, device: Device, base: str) -> TunerIdentity:
    db, settings = runtime.db, runtime.settings
    identity = TunerIdentity(
        device_id=device.device_id,
        base_url=device.base_url(base),
        tuner_count=tuner_count(db, settings),
        device_auth=device_auth(db),
        friendly_name=device.friendly_name(settings),
    )
    return for_node(identity, runtime.node_id)


async def _identity(request: Request, runtime: Runtime, number: int) -> TunerIdentity:
    _plan, device = await device_of(runtime, number)
    return await runtime.db.run(_identity_of, runtime, device, base_url(request, runtime))


# -- HDHomeRun documents ---------------------------------------------------------------
async def _discover(request: Request, runtime: Runtime, number: int) -> JSONResponse:
    return JSONResponse(discover_json(await _identity(request, runtime, number)))


async def _lineup(request: Request, runtime: Runtime, number: int) -> JSONResponse:
    plan, device = await device_of(runtime, number)
    base = device.base_url(base_url(request, runtime))
    entries = [
        lineup_entry(base, LineupChannel(row.guide_number, row.name, hd=row.hd))
        for row in plan.rows(number)
    ]
    return JSONResponse(entries)


async def _device_xml(request: Request, runtime: Runtime, number: int) -> Response:
    identity = await _identity(request, runtime, number)
    return Response(device_xml(identity), media_type="application/xml")


def _lineup_post(request: Request) -> Response:
    scan = request.query_params.get("scan", "start")
    if scan not in {"start", "abort"}:
        return JSONResponse({"error": "scan must be start or abort"}, status_code=400)
    return Response(status_code=200)


@router.get("/discover.json")
async def discover(request: Request, runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    return await _discover(request, runtime, 1)


@device_router.get("/discover.json")
async def device_discover(
    number: int, request: Request, runtime: Runtime = Depends(get_runtime)
) -> JSONResponse:
    return await _discover(request, runtime, number)


@router.get("/lineup_status.json")
async def lineup_status() -> JSONResponse:
    return JSONResponse(lineup_status_json())


@device_router.get("/lineup_status.json")
async def device_lineup_status(
    number: int, runtime: Runtime = Depends(get_runtime)
) -> JSONResponse:
    await device_of(runtime, number)
    return JSONResponse(lineup_status_json())


@router.get("/lineup.json")
async def lineup(request: Request, runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    return await _lineup(request, runtime, 1)


@device_router.get("/lineup.json")
async def device_lineup(
    number: int, request: Request, runtime: Runtime = Depends(get_runtime)
) -> JSONResponse:
    return await _lineup(request, runtime, number)


@router.post("/lineup.post")
async def lineup_post(request: Request) -> Response:
    return _lineup_post(request)


@device_router.post("/lineup.post")
async def device_lineup_post(
    number: int, request: Request, runtime: Runtime = Depends(get_runtime)
) -> Response:
    await device_of(runtime, number)
    return _lineup_post(request)


@router.get("/device.xml")
@router.get("/capability")
async def device(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    return await _device_xml(request, runtime, 1)


@device_router.get("/device.xml")
@device_router.get("/capability")
async def device_device_xml(
    number: int, request: Request, runtime: Runtime = Depends(get_runtime)
) -> Response:
    return await _device_xml(request, runtime, number)


# -- playlist and guide -----------------------------------------------------------------
def _playlist(stream_base: str, guide_base: str, rows: tuple[catalog.LineupRow, ...]) -> Response:
    parts = [m3u_header(guide_base)]
    for row in rows:
        parts.append(
            m3u_entry(
                M3UChannel(
                    name=row.name,
                    url=stream_url(stream_base, row.guide_number),
                    number=row.guide_number,
                    tvg_id=row.epg_id,
                    logo=row.icon or "",
                    group=row.group,
                )
            )
        )
    return Response("".join(parts), media_type="audio/x-mpegurl")


@router.get("/playlist.m3u")
@router.get("/playlist.m3u8")
async def playlist(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    base = base_url(request, runtime)
    rows = await runtime.db.run(catalog.lineup, runtime.db)
    return _playlist(base, base, tuple(rows))


@device_router.get("/playlist.m3u")
@device_router.get("/playlist.m3u8")
async def device_playlist(
    number: int, request: Request, runtime: Runtime = Depends(get_runtime)
) -> Response:
    plan, device = await device_of(runtime, number)
    base = base_url(request, runtime)
    return _playlist(device.base_url(base), device.own_url(base), plan.rows(number))


async def _guide_response(
    runtime: Runtime, rows: list[catalog.LineupRow], *, gzipped: bool, prefix: str = ""
) -> Response:
    cache = runtime.catalog.guide_cache
    version = await runtime.db.run(guide_version, runtime.db, rows)
    kind = prefix + ("epg.xml.gz" if gzipped else "epg.xml")
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


async def _whole_guide(runtime: Runtime, *, gzipped: bool) -> Response:
    rows = await runtime.db.run(catalog.lineup, runtime.db)
    return await _guide_response(runtime, rows, gzipped=gzipped)


async def _device_guide(runtime: Runtime, number: int, *, gzipped: bool) -> Response:
    plan, _device = await device_of(runtime, number)
    rows = list(plan.rows(number))
    return await _guide_response(runtime, rows, gzipped=gzipped, prefix=device_guide_prefix(number))


@router.get("/epg.xml")
@router.get("/xmltv.xml")
async def epg(runtime: Runtime = Depends(get_runtime)) -> Response:
    return await _whole_guide(runtime, gzipped=False)


@router.get("/epg.xml.gz")
async def epg_gz(runtime: Runtime = Depends(get_runtime)) -> Response:
    return await _whole_guide(runtime, gzipped=True)


@device_router.get("/epg.xml")
@device_router.get("/xmltv.xml")
async def device_epg(number: int, runtime: Runtime = Depends(get_runtime)) -> Response:
    return await _device_guide(runtime, number, gzipped=False)


@device_router.get("/epg.xml.gz")
async def device_epg_gz(number: int, runtime: Runtime = Depends(get_runtime)) -> Response:
    return await _device_guide(runtime, number, gzipped=True)

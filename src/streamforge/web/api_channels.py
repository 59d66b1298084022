"""``/api/v1/channels``, ``/api/v1/match`` and ``/api/v1/setup``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from streamforge.outputs.setup_urls import setup_urls
from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime, require_admin

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_admin)], tags=["channels"])


class ChannelPatch(BaseModel):
    is_enabled: bool | None = None
    guide_number: str | None = None


class MappingIn(BaseModel):
    xtream_channel_id: int
    position: int | None = None


class OrderIn(BaseModel):
    order: list[int]


@router.get("/channels", summary="Guide channels (filter by search, enabled, mapped)")
def list_channels(
    runtime: Runtime = Depends(get_runtime),
    search: str | None = Query(None),
    enabled: bool | None = Query(None),
    mapped: bool | None = Query(None),
) -> list[dict[str, Any]]:
    return [
        v.as_dict() for v in runtime.channels.all(search=search, enabled=enabled, mapped=mapped)
    ]


@router.get("/channels/{ref}", summary="One channel with its streams in failover order")
def get_channel(ref: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    view = runtime.channels.get(ref).as_dict()
    breakers = {b["xtream_channel_id"]: b for b in runtime.streams.breaker_states_sync()}
    for mapping in view["mappings"]:
        mapping["breaker"] = breakers.get(mapping["xtream_channel_id"], {"state": "closed"})
    return view


@router.patch("/channels/{ref}", summary="Enable/disable a channel or set its GuideNumber")
def patch_channel(
    ref: str, body: ChannelPatch, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    view = runtime.channels.get(ref)
    if body.guide_number is not None:
        view = runtime.channels.set_number(f"#{view.id}", body.guide_number)
    if body.is_enabled is not None:
        view = runtime.channels.set_enabled(f"#{view.id}", body.is_enabled)
    return runtime.channels.get(f"#{view.id}").as_dict()


@router.post("/channels/{ref}/mappings", summary="Map a provider stream (manual)")
def add_mapping(
    ref: str, body: MappingIn, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    return runtime.channels.map_add(ref, body.xtream_channel_id, body.position).as_dict()


@router.delete("/channels/{ref}/mappings/{xtream_channel_id}", summary="Unmap a stream")
def remove_mapping(
    ref: str, xtream_channel_id: int, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    return runtime.channels.map_remove(ref, xtream_channel_id).as_dict()


@router.put("/channels/{ref}/order", summary="Set the failover order (every stream once)")
def reorder(ref: str, body: OrderIn, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    return runtime.channels.reorder(ref, body.order).as_dict()


@router.post("/channels/{ref}/primary/{xtream_channel_id}", summary="Make a stream primary")
def set_primary(
    ref: str, xtream_channel_id: int, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    return runtime.channels.set_primary(ref, xtream_channel_id).as_dict()


@router.get("/channels/{ref}/suggestions", summary="Unmapped streams ranked by name score")
def suggestions(
    ref: str, runtime: Runtime = Depends(get_runtime), limit: int = Query(20, ge=1, le=100)
) -> list[dict[str, Any]]:
    view = runtime.channels.get(ref)
    return runtime.matching.suggestions(view.id, limit)


@router.post("/match", summary="Run automatic matching now (manual mappings are kept)")
async def run_match(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    summary = await asyncio.to_thread(runtime.matching.run)
    return summary.as_dict()


@router.get("/setup", summary="What to enter in Plex, Jellyfin/Emby and IPTV players")
def setup(request: Request, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    return {**setup_urls(runtime.settings), "request_base": str(request.base_url).rstrip("/")}

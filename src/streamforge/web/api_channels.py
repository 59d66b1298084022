"""``/api/v1/channels``, ``/api/v1/match`` and ``/api/v1/setup``.

Database work runs on the database's threads (``Database.run`` for reads,
``Database.write`` for writes), never on the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StrictInt, model_validator

from streamforge import guide_number
from streamforge.admin_views import breakers_by_stream
from streamforge.errors import InvalidInput
from streamforge.matching.channels import StreamRef
from streamforge.outputs.setup_urls import setup_urls
from streamforge.runtime import Runtime
from streamforge.web.deps import ID_MAX, DbId, get_runtime, require_admin

_RowId = Annotated[StrictInt, Field(ge=1, le=ID_MAX)]

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_admin)], tags=["channels"])


class ChannelPatch(BaseModel):
    is_enabled: bool | None = None
    guide_number: str | None = None
    time_offset_minutes: int | None = None


class HealthPatch(BaseModel):
    """A channel's media judgement; only the fields given change (a ``*_seconds`` of
    null goes back to the global setting)."""

    audio_only: bool | None = None
    black: bool | None = None
    frozen: bool | None = None
    silence: bool | None = None
    black_seconds: float | None = None
    frozen_seconds: float | None = None
    silence_seconds: float | None = None


class MappingIn(BaseModel):
    """The stream to map: ``stream`` as users name it (``alpha/106``, or ``106`` where one
    account has it), or the ``xtream_channel_id`` row id of a listing."""

    stream: str | None = None
    xtream_channel_id: DbId | None = None
    position: Annotated[int, Field(ge=0, le=10_000)] | None = None

    @model_validator(mode="after")
    def _one_stream(self) -> MappingIn:
        if (self.stream is None) == (self.xtream_channel_id is None):
            raise ValueError("give either stream (e.g. alpha/106) or xtream_channel_id")
        return self

    @property
    def target(self) -> StreamRef:
        return self.stream if self.stream is not None else int(self.xtream_channel_id or 0)


class OrderIn(BaseModel):
    """Every mapped stream once, best first: references (``"alpha/106"``) or row ids."""

    order: Annotated[
        list[Annotated[StrictInt, Field(ge=1, le=ID_MAX)] | str], Field(max_length=10_000)
    ]


def _path_stream(stream: str) -> StreamRef:
    """A stream named in a URL path: ``alpha/106`` (a reference) or digits (a row id)."""
    if not stream.isdigit():
        return stream
    if int(stream) > ID_MAX:
        raise InvalidInput(f"xtream_channel_id must be at most {ID_MAX}")
    return int(stream)


@router.get("/channels", summary="Guide channels (filter by search, enabled, mapped)")
async def list_channels(
    runtime: Runtime = Depends(get_runtime),
    search: str | None = Query(None),
    enabled: bool | None = Query(None),
    mapped: bool | None = Query(None),
) -> list[dict[str, Any]]:
    found = await runtime.db.run(
        runtime.channels.all, search=search, enabled=enabled, mapped=mapped
    )
    return [v.as_dict() for v in found]


@router.get("/channels/{ref}", summary="One channel with its streams in failover order")
async def get_channel(ref: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    breakers = breakers_by_stream(runtime.streams.breaker_states())
    return await runtime.views.channel(ref, breakers=breakers)


@router.patch(
    "/channels/{ref}",
    summary="Enable/disable a channel, set its GuideNumber or its guide time offset (minutes)",
)
async def patch_channel(
    ref: str, body: ChannelPatch, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    channels = runtime.channels
    if body.guide_number is not None:
        guide_number.parse(body.guide_number)  # 422 before looking anything up

    def change() -> dict[str, Any]:
        view = channels.get(ref)
        if body.guide_number is not None:
            view = channels.set_number(f"#{view.id}", body.guide_number)
        if body.is_enabled is not None:
            view = channels.set_enabled(f"#{view.id}", body.is_enabled)
        if body.time_offset_minutes is not None:
            view = channels.set_time_offset(f"#{view.id}", body.time_offset_minutes)
        return channels.get(f"#{view.id}").as_dict()

    result = await runtime.db.write(change)
    if body.time_offset_minutes is not None:
        await runtime.catalog.render_guide()
    return result


@router.get("/channels/{ref}/health", summary="The channel's media judgement")
async def get_health(ref: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    judgement = await runtime.db.run(runtime.channels.health, ref)
    return judgement.as_dict()


@router.patch(
    "/channels/{ref}/health",
    summary="Radio channel, switch checks off, override thresholds (seconds; null: the setting)",
)
async def patch_health(
    ref: str, body: HealthPatch, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True)

    def change() -> dict[str, Any]:
        return runtime.channels.set_health(ref, **given).as_dict()

    return await runtime.db.write(change)


@router.post("/channels/{ref}/mappings", summary="Map a provider stream (manual)")
async def add_mapping(
    ref: str, body: MappingIn, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    view = await runtime.db.write(runtime.channels.map_add, ref, body.target, body.position)
    return view.as_dict()


@router.delete("/channels/{ref}/mappings/{stream:path}", summary="Unmap a stream")
async def remove_mapping(
    ref: str, stream: str, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    target = _path_stream(stream)
    return (await runtime.db.write(runtime.channels.map_remove, ref, target)).as_dict()


@router.put("/channels/{ref}/order", summary="Set the failover order (every stream once)")
async def reorder(
    ref: str, body: OrderIn, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    return (await runtime.db.write(runtime.channels.reorder, ref, body.order)).as_dict()


@router.post("/channels/{ref}/primary/{stream:path}", summary="Make a stream primary")
async def set_primary(
    ref: str, stream: str, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    target = _path_stream(stream)
    return (await runtime.db.write(runtime.channels.set_primary, ref, target)).as_dict()


@router.get("/channels/{ref}/suggestions", summary="Unmapped streams ranked by name score")
async def suggestions(
    ref: str, runtime: Runtime = Depends(get_runtime), limit: int = Query(20, ge=1, le=100)
) -> list[dict[str, Any]]:
    view = await runtime.db.run(runtime.channels.get, ref)
    return await runtime.views.suggestions(view.id, limit)


@router.post("/match", summary="Run automatic matching now (manual mappings are kept)")
async def run_match(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    summary = await runtime.db.write(runtime.matching.run)
    return summary.as_dict()


@router.get("/setup", summary="What to enter in Plex, Jellyfin/Emby and IPTV players")
async def setup(request: Request, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    return {**setup_urls(runtime.settings), "request_base": str(request.base_url).rstrip("/")}

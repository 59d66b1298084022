"""``/api/v1/epg``: guide sources.

An import started here runs through ``CatalogUpdates.refresh_guide`` like
every other, so the catalogue hook (re-match, guide re-render) follows it.
Database work runs on the database's threads, never on the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime, require_admin

router = APIRouter(prefix="/api/v1/epg", dependencies=[Depends(require_admin)])


class SourceIn(BaseModel):
    name: str
    url: str | None = None
    file: str | None = None
    from_account: str | None = None
    priority: int = 0
    refresh: bool = True


class SourcePatch(BaseModel):
    priority: int | None = None
    time_offset_minutes: int | None = None


@router.get("", summary="Guide sources")
async def list_sources(runtime: Runtime = Depends(get_runtime)) -> list[dict[str, Any]]:
    return [view.as_dict() for view in await runtime.db.run(runtime.epg.all)]


@router.post("", status_code=201, summary="Add a guide source (and import it)")
async def add_source(body: SourceIn, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    view = await runtime.db.write(
        runtime.epg.add,
        body.name,
        url=body.url,
        file=body.file,
        from_account=body.from_account,
        priority=body.priority,
    )
    result: dict[str, Any] = {"source": view.as_dict()}
    if body.refresh:
        result["import"] = (await runtime.catalog.refresh_guide(body.name)).report
        result["source"] = (await runtime.db.run(runtime.epg.get, body.name)).as_dict()
    return result


@router.patch("/{name}", summary="Set a guide source's priority or time offset (minutes)")
async def patch_source(
    name: str, body: SourcePatch, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    epg = runtime.epg

    def change() -> dict[str, Any]:
        view = epg.get(name)
        if body.priority is not None:
            view = epg.set_priority(name, body.priority)
        if body.time_offset_minutes is not None:
            view = epg.set_offset(name, body.time_offset_minutes)
        return view.as_dict()

    result = await runtime.db.write(change)
    await runtime.catalog.render_guide()
    return result


@router.post("/{name}/refresh", summary="Re-import a guide source now")
async def refresh_source(name: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    return (await runtime.catalog.refresh_guide(name)).report


@router.delete("/{name}", status_code=204, summary="Remove a guide source")
async def remove_source(name: str, runtime: Runtime = Depends(get_runtime)) -> None:
    await runtime.db.write(runtime.epg.remove, name)

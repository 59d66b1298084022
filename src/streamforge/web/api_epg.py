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
    refresh: bool = True


@router.get("", summary="Guide sources")
async def list_sources(runtime: Runtime = Depends(get_runtime)) -> list[dict[str, Any]]:
    return [view.as_dict() for view in await runtime.db.run(runtime.epg.all)]


@router.post("", status_code=201, summary="Add a guide source (and import it)")
async def add_source(body: SourceIn, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    view = await runtime.db.write(
        runtime.epg.add, body.name, url=body.url, file=body.file, from_account=body.from_account
    )
    result: dict[str, Any] = {"source": view.as_dict()}
    if body.refresh:
        result["import"] = (await runtime.catalog.refresh_guide(body.name)).report
        result["source"] = (await runtime.db.run(runtime.epg.get, body.name)).as_dict()
    return result


@router.post("/{name}/refresh", summary="Re-import a guide source now")
async def refresh_source(name: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    return (await runtime.catalog.refresh_guide(name)).report


@router.delete("/{name}", status_code=204, summary="Remove a guide source")
async def remove_source(name: str, runtime: Runtime = Depends(get_runtime)) -> None:
    await runtime.db.write(runtime.epg.remove, name)

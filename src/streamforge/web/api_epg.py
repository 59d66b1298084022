"""``/api/v1/epg``: guide sources."""

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
def list_sources(runtime: Runtime = Depends(get_runtime)) -> list[dict[str, Any]]:
    return [view.as_dict() for view in runtime.epg.all()]


@router.post("", status_code=201, summary="Add a guide source (and import it)")
async def add_source(body: SourceIn, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    view = runtime.epg.add(body.name, url=body.url, file=body.file, from_account=body.from_account)
    result: dict[str, Any] = {"source": view.as_dict()}
    if body.refresh:
        result["import"] = await runtime.epg.refresh(body.name)
        result["source"] = runtime.epg.get(body.name).as_dict()
    return result


@router.post("/{name}/refresh", summary="Re-import a guide source now")
async def refresh_source(name: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    return await runtime.epg.refresh(name)


@router.delete("/{name}", status_code=204, summary="Remove a guide source")
def remove_source(name: str, runtime: Runtime = Depends(get_runtime)) -> None:
    runtime.epg.remove(name)

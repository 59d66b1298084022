"""``/api/v1/devices``: the virtual HDHomeRun devices and which channels they carry.

See :mod:`streamforge.outputs.devices` for the rules. Reads and writes run on
the database's threads (``Database.run`` / ``Database.write``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from streamforge.errors import NotFoundError
from streamforge.outputs import devices as dev
from streamforge.outputs.setup_urls import public_base_url
from streamforge.runtime import Runtime
from streamforge.web.deps import get_runtime, require_admin

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_admin)], tags=["devices"])


class DeviceIn(BaseModel):
    name: str | None = Field(None, max_length=100)
    rule: str = dev.CHANNELS
    match: str | None = Field(None, max_length=300)


class DevicePatch(BaseModel):
    name: str | None = Field(None, max_length=100)
    rule: str | None = None
    match: str | None = Field(None, max_length=300)


class ChannelsIn(BaseModel):
    guide_numbers: list[str]


def _base(request: Request, runtime: Runtime) -> str:
    if runtime.settings.base_url:
        return public_base_url(runtime.settings)
    return str(request.base_url).rstrip("/")


async def _listing(request: Request, runtime: Runtime) -> list[dict[str, Any]]:
    plan = await dev.current_plan(runtime.db, runtime.settings)
    return dev.device_summaries(plan, runtime.settings, _base(request, runtime))


def _one(rows: list[dict[str, Any]], number: int) -> dict[str, Any]:
    return next(row for row in rows if row["number"] == number)


@router.get("/devices", summary="The virtual HDHomeRun devices with their URLs")
async def list_devices(
    request: Request, runtime: Runtime = Depends(get_runtime)
) -> list[dict[str, Any]]:
    return await _listing(request, runtime)


@router.get("/devices/{number}/channels", summary="The GuideNumbers on one device")
async def device_channels(number: int, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    plan = await dev.current_plan(runtime.db, runtime.settings)
    if plan.device(number) is None:
        raise NotFoundError(f"no device {number}")
    return {
        "number": number,
        "channels": [
            {"guide_number": r.guide_number, "name": r.name, "group": r.group}
            for r in plan.rows(number)
        ],
    }


@router.post("/devices", status_code=201, summary="Add a device (group, category or hand-picked)")
async def add_device(
    body: DeviceIn, request: Request, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    device = await runtime.db.write(
        dev.add_device,
        runtime.db,
        runtime.settings,
        name=body.name,
        rule=body.rule,
        match=body.match,
    )
    await request.app.state.device_ports.open_new()  # its own port, without a restart
    return _one(await _listing(request, runtime), device.number)


@router.patch("/devices/{number}", summary="Rename a device or change its rule")
async def patch_device(
    number: int, body: DevicePatch, request: Request, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    await runtime.db.write(
        dev.update_device,
        runtime.db,
        runtime.settings,
        number,
        name=body.name,
        rule=body.rule,
        match=body.match,
    )
    return _one(await _listing(request, runtime), number)


@router.post("/devices/{number}/channels", summary="Hand-pick channels onto a device")
async def assign(
    number: int, body: ChannelsIn, request: Request, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    await runtime.db.write(
        dev.assign_channels, runtime.db, runtime.settings, number, body.guide_numbers
    )
    return _one(await _listing(request, runtime), number)


@router.delete("/devices/channels", summary="Undo hand-picking: channels follow the rules")
async def release(
    body: ChannelsIn, request: Request, runtime: Runtime = Depends(get_runtime)
) -> list[dict[str, Any]]:
    await runtime.db.write(dev.release_channels, runtime.db, runtime.settings, body.guide_numbers)
    return await _listing(request, runtime)


@router.delete("/devices/{number}", summary="Remove a device (not device 1)")
async def remove(
    number: int, request: Request, runtime: Runtime = Depends(get_runtime)
) -> list[dict[str, Any]]:
    await runtime.db.write(dev.remove_device, runtime.db, runtime.settings, number)
    await request.app.state.device_ports.open_new()  # closes its own port
    return await _listing(request, runtime)

"""``/api/v1/accounts``: provider accounts and their channel sync.

Database work runs on the database's threads (``Database.run`` for reads,
``Database.write`` for writes), never on the event loop. A sync started here
runs through ``SyncJobs`` like every other, so the catalogue hook (re-match,
guide re-render) follows it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from streamforge.runtime import Runtime
from streamforge.web.deps import Priority, get_runtime, require_admin

router = APIRouter(prefix="/api/v1/accounts", dependencies=[Depends(require_admin)])


class AccountIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    server_url: str
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)
    user_agent: str | None = None
    priority: Priority = 0
    test: bool = True
    check: bool = False
    """Ask the panel first and store nothing unless it accepts the account (the UI does)."""


class AccountPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    server_url: str | None = None
    username: str | None = None
    password: str | None = None
    user_agent: str | None = None
    priority: Priority | None = None
    is_active: bool | None = None


class AccountProbe(BaseModel):
    server_url: str
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)
    user_agent: str | None = None


@router.get("", summary="All accounts (passwords never included, usernames masked)")
async def list_accounts(runtime: Runtime = Depends(get_runtime)) -> list[dict[str, Any]]:
    return [view.as_dict() for view in await runtime.db.run(runtime.accounts.all)]


@router.post("", status_code=201, summary="Add an account and test it")
async def add_account(body: AccountIn, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    result = await runtime.accounts.add(
        body.name,
        server_url=body.server_url,
        username=body.username,
        password=body.password,
        user_agent=body.user_agent,
        priority=body.priority,
        test=body.test,
        check=body.check,
    )
    return {"ok": result.ok, "message": result.message, "account": result.account.as_dict()}


@router.post("/probe", summary="Test credentials without storing anything")
async def probe_account(
    body: AccountProbe, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    result = await runtime.accounts.probe(
        server_url=body.server_url,
        username=body.username,
        password=body.password,
        user_agent=body.user_agent,
    )
    return result


@router.get("/{name}", summary="One account")
async def get_account(name: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    return (await runtime.db.run(runtime.accounts.get, name)).as_dict()


@router.patch("/{name}", summary="Change settings, password, or enable/disable")
async def patch_account(
    name: str, body: AccountPatch, runtime: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    view = await runtime.db.write(
        runtime.accounts.update,
        name,
        new_name=body.name,
        server_url=body.server_url,
        username=body.username,
        password=body.password,
        user_agent=body.user_agent,
        priority=body.priority,
    )
    if body.is_active is not None:
        view = await runtime.db.write(runtime.accounts.set_active, view.name, body.is_active)
    return view.as_dict()


@router.delete("/{name}", status_code=204, summary="Remove an account and its channels")
async def delete_account(name: str, runtime: Runtime = Depends(get_runtime)) -> None:
    await runtime.db.write(runtime.accounts.remove, name)


@router.post("/{name}/test", summary="Ask the panel for the account's state")
async def check_account(name: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    result = await runtime.accounts.test(name)
    return {"ok": result.ok, "message": result.message, "account": result.account.as_dict()}


@router.post("/{name}/sync", status_code=202, summary="Start a channel sync")
async def start_sync(name: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    await runtime.db.run(runtime.accounts.get, name)
    return runtime.sync_jobs.start(name).as_dict()


@router.get("/{name}/sync", summary="Status of the account's last sync")
async def sync_status(name: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    await runtime.db.run(runtime.accounts.get, name)
    return runtime.sync_jobs.status(name).as_dict()

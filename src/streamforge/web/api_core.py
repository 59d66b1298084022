"""``/api/v1``: status, events and settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query

from streamforge import __version__
from streamforge.events import LEVELS
from streamforge.live_settings import EDITABLE, SettingsRejected, shown_settings
from streamforge.runtime import Runtime
from streamforge.settings import documented_settings
from streamforge.web.deps import ID_MAX, get_runtime, require_admin

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_admin)])


def node_state(runtime: Runtime) -> dict[str, Any]:
    """This node in its cluster, for ``/healthz``, the status API and the dashboard
    (``{"cluster": False}`` on a single node). Reads no database and no Redis."""
    cluster = runtime.cluster
    if cluster is None:
        return {"cluster": False}
    return {
        "cluster": True,
        "node": {
            "id": cluster.identity.node_id,
            "name": cluster.identity.name,
            "instance": cluster.identity.instance,
            "leader": cluster.leader.is_leader,
            "redis_ok": cluster.health.up,
            "leases": len(cluster.slots.confirmed()),
            "owned_channels": list(cluster.owners.owned),
        },
    }


@router.get("/status", summary="Version, database, credential backend and cluster node")
async def status(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    return {
        "version": __version__,
        "database": runtime.db.engine.dialect.name,
        "credential_backend": runtime.credentials.backend,
        **node_state(runtime),
    }


@router.get("/events", summary="The event log, newest first")
async def events(
    runtime: Runtime = Depends(get_runtime),
    level: str | None = Query(None, description=f"at least this level: {', '.join(LEVELS)}"),
    category: str | None = Query(None, description="e.g. stream, account, epg, system"),
    channel_id: int | None = Query(None, ge=1, le=ID_MAX, description="guide channel id"),
    since: datetime | None = Query(None, description="ISO 8601; without a zone: UTC"),
    until: datetime | None = Query(None, description="ISO 8601; without a zone: UTC"),
    limit: int = Query(200, ge=1, le=5000),
) -> list[dict[str, Any]]:
    if level is not None and level not in LEVELS:
        raise HTTPException(422, f"level: use one of {', '.join(LEVELS)}")
    return await runtime.views.events(
        level=level,
        category=category,
        channel_id=channel_id,
        since=_as_utc(since),
        until=_as_utc(until),
        limit=limit,
    )


def _as_utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get("/settings", summary="Settings in force and what each one means")
async def settings(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    values = shown_settings(runtime.settings)
    docs = documented_settings()
    return {
        "values": values,
        "documentation": {k: v for k, v in docs.items() if not k.endswith("ADMIN_PASSWORD")},
    }


@router.patch(
    "/settings",
    summary=f"Change settings at run time ({', '.join(EDITABLE)}); saved across restarts",
)
async def change_settings(
    changes: dict[str, Any] = Body(..., examples=[{"recovery_period": 60}]),
    runtime: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    try:
        change = await runtime.apply_settings(changes, origin="through the API")
    except SettingsRejected as exc:
        raise HTTPException(422, str(exc)) from None
    return change.as_dict()

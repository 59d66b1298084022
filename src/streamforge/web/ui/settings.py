"""The Settings page and saving settings from it.

Which settings may change at run time, and when each applies, is
:mod:`streamforge.live_settings`; a change goes through
:meth:`Runtime.apply_settings <streamforge.runtime.Runtime.apply_settings>`,
the same method the API's ``PATCH /api/v1/settings`` uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from streamforge.live_settings import EDITABLE, WHEN_APPLIED, SettingsRejected, shown_settings
from streamforge.runtime import Runtime
from streamforge.settings import Settings, documented_settings
from streamforge.web.deps import get_runtime, require_admin
from streamforge.web.ui.common import json_object, render, require_page_session
from streamforge.web.ui.sessions import UiSession

router = APIRouter(include_in_schema=False)

#: How the Settings page names each setting: (label, unit). The one table of
#: labels; a setting missing here reads as its name in words.
LABELS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "data_dir": ("Data directory", ""),
        "database_url": ("Database URL", ""),
        "keyring": ("Use the OS keyring", ""),
        "host": ("Listen address", ""),
        "port": ("HTTP port", ""),
        "base_url": ("Public base URL", ""),
        "admin_password": ("Admin password", ""),
        "discovery_enabled": ("Answer HDHomeRun discovery", ""),
        "discovery_port": ("Discovery port (UDP)", ""),
        "ssdp_enabled": ("Answer SSDP", ""),
        "tuner_count": ("Tuners advertised", ""),
        "device_name": ("Device name in Plex", ""),
        "account_sync_interval": ("Channel sync interval", "s"),
        "epg_refresh_interval": ("Guide refresh interval", "s"),
        "epg_days_back": ("Guide days back", "days"),
        "epg_days_ahead": ("Guide days ahead", "days"),
        "match_threshold": ("Match threshold", "0 to 1"),
        "connect_timeout": ("Connect timeout", "s"),
        "header_timeout": ("Response header timeout", "s"),
        "stall_timeout": ("Stall timeout", "s"),
        "failover_budget": ("Failover time budget", "s"),
        "recovery_period": ("Recovery period", "s"),
        "probe_timeout": ("Upgrade probe timeout", "s"),
        "breaker_threshold": ("Failures before a stream is set aside", ""),
        "breaker_cooldown": ("First breaker cool-down", "s"),
        "breaker_max_cooldown": ("Longest breaker cool-down", "s"),
        "session_linger": ("Keep the stream open after the last viewer", "s"),
        "client_buffer_bytes": ("Buffer per session", "bytes"),
        "user_agent": ("User-Agent for providers", ""),
        "event_retention_days": ("Keep events for", "days"),
        "event_max_rows": ("Most events kept", ""),
    }
)


def label(name: str) -> str:
    """``stall_timeout`` → ``Stall timeout (s)``."""
    text, unit = LABELS.get(name, (name.replace("_", " ").capitalize(), ""))
    return f"{text} ({unit})" if unit else text


def _field_docs() -> dict[str, str]:
    return {k.removeprefix("STREAMFORGE_").lower(): v for k, v in documented_settings().items()}


@router.get("/ui/settings", response_class=HTMLResponse)
async def settings_page(
    request: Request,
    session: UiSession = Depends(require_page_session),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    values = shown_settings(runtime.settings)
    docs = _field_docs()
    saved = await runtime.views.saved_settings()
    rows = [
        {
            "name": k,
            "label": label(k),
            "value": v,
            "doc": docs.get(k, ""),
            "editable": k in EDITABLE,
            "live": EDITABLE.get(k, False),
            "when": WHEN_APPLIED.get(k, ""),
            "saved": k in saved,
            "saved_value": saved.get(k),
            "kind": type(Settings.model_fields[k].default).__name__
            if k in Settings.model_fields
            else "str",
        }
        for k, v in values.items()
    ]
    return await render(request, "settings", session, rows=rows)


@router.post("/ui/settings", dependencies=[Depends(require_admin)])
async def save_settings(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    body = await json_object(request)
    try:
        change = await runtime.apply_settings(body, origin="in the UI")
    except SettingsRejected as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    return JSONResponse(change.as_dict())

"""``streamforge plex-urls`` and ``streamforge sessions``."""

from __future__ import annotations

import json

import typer

from streamforge.cli.common import (
    console,
    fail,
    one_line_errors,
    open_runtime,
    prompt_secret,
    settings,
)


@one_line_errors
def plex_urls(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What to type into Plex, Jellyfin/Emby and IPTV players — for every device."""
    from streamforge.outputs.setup_urls import device_setup_urls, setup_urls

    config = settings()
    urls = setup_urls(config)
    with open_runtime() as runtime:
        devices = device_setup_urls(runtime.db, runtime.settings)
    if as_json:
        console.print_json(json.dumps({**urls, "devices": devices}))
        return
    console.print(
        f"[bold]Plex[/] (Live TV & DVR → set up → enter address): {urls['plex']}", highlight=False
    )
    console.print(f"[bold]Jellyfin/Emby tuner[/] (HDHomeRun): {urls['hdhomerun']}", highlight=False)
    console.print(f"[bold]M3U playlist[/] (every channel): {urls['m3u']}", highlight=False)
    console.print(f"[bold]XMLTV guide[/] (every channel): {urls['xmltv']}", highlight=False)
    if len(devices) > 1:
        console.print(
            f"\n[bold]{len(devices)} devices[/] (Plex takes about "
            f"{config.channels_per_device} channels per device): add each one to Plex",
            highlight=False,
        )
    for d in devices:
        u = d["urls"]
        also = f" (also {u['path']})" if d["port"] is not None else ""
        console.print(
            f"  device {d['number']} {d['name']} ({d['device_id']}, {d['channel_count']} channels):"
            f" address {u['base']}{also}  guide {u['xmltv']}  playlist {u['m3u']}",
            highlight=False,
            soft_wrap=True,
        )


@one_line_errors
def sessions(
    url: str | None = typer.Option(None, help="StreamForge base URL (default: from settings)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Live channel sessions of the running server."""
    import httpx
    from rich.table import Table

    config = settings()
    base = url or f"http://127.0.0.1:{config.port}"
    password = config.admin_password or prompt_secret("Admin password")
    try:
        answer = httpx.get(f"{base}/api/v1/sessions", auth=("admin", password), timeout=5)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach StreamForge at {base}: {type(exc).__name__}") from None
    if answer.status_code != 200:
        raise fail(f"{base} answered {answer.status_code}: {answer.text[:200]}")
    rows = answer.json()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(
        "channel", "stream", "account", "quality", "clients", "kbit/s", "failovers", "uptime"
    )
    for r in rows:
        table.add_row(
            f"{r['guide_number']} {r['channel']}",
            r["stream"] or "—",
            r["account"] or "—",
            r["quality"] or "—",
            str(r["clients"]),
            str(r["bitrate_kbps"]),
            str(r["failovers"]),
            f"{r['uptime_s']:.0f}s",
        )
    console.print(table if rows else "no live sessions")

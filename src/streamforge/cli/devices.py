"""``streamforge device list | add | assign | rename | release | remove``:
the virtual HDHomeRun devices (see :mod:`streamforge.outputs.devices`)."""

from __future__ import annotations

import json
from typing import Any

import typer

from streamforge.cli.common import console, fail, one_line_errors, open_runtime

app = typer.Typer(
    help="Virtual HDHomeRun devices: the lineup split for Plex's per-device channel cap.",
    no_args_is_help=True,
)


def _split_numbers(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _print(rows: list[dict[str, Any]], as_json: bool, cap: int) -> None:
    from rich.table import Table

    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("device", "name", "DeviceID", "takes", "channels", "GuideNumbers", "address")
    for r in rows:
        count = f"{r['channel_count']}" + (f" (over {cap}!)" if r["over_limit"] else "")
        span = f"{r['first']}-{r['last']}" if r["first"] is not None else "—"
        table.add_row(
            str(r["number"]), r["name"], r["device_id"], r["takes"], count, span, r["urls"]["base"]
        )
    console.print(table)


def _rule(group: str | None, category: str | None, auto: bool) -> tuple[str, str | None]:
    from streamforge.outputs import devices as dev

    chosen = [x for x in (group is not None, category is not None, auto) if x]
    if len(chosen) > 1:
        raise fail("give at most one of --group, --category, --auto", 2)
    if group is not None:
        return dev.GROUP, group
    if category is not None:
        return dev.CATEGORY, category
    return (dev.AUTO if auto else dev.CHANNELS), None


@app.command("list")
@one_line_errors
def device_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every device with its DeviceID, what it takes, its channels and address."""
    from streamforge.outputs.setup_urls import device_setup_urls

    with open_runtime() as runtime:
        rows = device_setup_urls(runtime.db, runtime.settings)
        cap = runtime.settings.channels_per_device
    _print(rows, as_json, cap)


@app.command("add")
@one_line_errors
def device_add(
    name: str | None = typer.Option(None, help="FriendlyName (default: 'StreamForge N')."),
    group: str | None = typer.Option(None, help="Take every channel of this channel group."),
    category: str | None = typer.Option(None, help="Take every channel of this provider category."),
    auto: bool = typer.Option(False, "--auto", help="Take new channels by GuideNumber ranges."),
    channels: str | None = typer.Option(None, help="Hand-pick these GuideNumbers (1,2,5)."),
) -> None:
    """Add a device. Without --group/--category/--auto it takes only hand-picked channels."""
    from streamforge.outputs import devices as dev
    from streamforge.outputs.setup_urls import device_setup_urls

    rule, match = _rule(group, category, auto)
    with open_runtime() as runtime:
        device = dev.add_device(runtime.db, runtime.settings, name=name, rule=rule, match=match)
        if channels:
            picked = _split_numbers(channels)
            dev.assign_channels(runtime.db, runtime.settings, device.number, picked)
        rows = device_setup_urls(runtime.db, runtime.settings)
    row = next(r for r in rows if r["number"] == device.number)
    console.print(
        f"device {device.number} ({row['name']}, {row['device_id']}): {row['channel_count']} "
        f"channels; add it to Plex at {row['urls']['base']}",
        highlight=False,
    )


@app.command("assign")
@one_line_errors
def device_assign(
    number: int = typer.Argument(..., help="The device number (N of /devices/N/)."),
    channels: str | None = typer.Option(None, help="Hand-pick these GuideNumbers (1,2,5)."),
    group: str | None = typer.Option(None, help="Make the device take this channel group."),
    category: str | None = typer.Option(None, help="Make it take this provider category."),
    auto: bool = typer.Option(False, "--auto", help="Make it take GuideNumber ranges."),
    name: str | None = typer.Option(None, help="Rename the device ('' restores the default)."),
) -> None:
    """Put channels on a device, or change what it takes, or rename it."""
    from streamforge.outputs import devices as dev
    from streamforge.outputs.setup_urls import device_setup_urls

    with open_runtime() as runtime:
        if group is not None or category is not None or auto:
            rule, match = _rule(group, category, auto)
            dev.update_device(runtime.db, runtime.settings, number, rule=rule, match=match)
        if name is not None:
            dev.update_device(runtime.db, runtime.settings, number, name=name)
        if channels:
            dev.assign_channels(runtime.db, runtime.settings, number, _split_numbers(channels))
        rows = device_setup_urls(runtime.db, runtime.settings)
        cap = runtime.settings.channels_per_device
    _print(rows, False, cap)


@app.command("release")
@one_line_errors
def device_release(
    channels: str = typer.Option(..., help="GuideNumbers to stop hand-picking (1,2,5)."),
) -> None:
    """Undo hand-picking: the channels follow the device rules again."""
    from streamforge.outputs import devices as dev
    from streamforge.outputs.setup_urls import device_setup_urls

    with open_runtime() as runtime:
        dev.release_channels(runtime.db, runtime.settings, _split_numbers(channels))
        rows = device_setup_urls(runtime.db, runtime.settings)
        cap = runtime.settings.channels_per_device
    _print(rows, False, cap)


@app.command("remove")
@one_line_errors
def device_remove(number: int = typer.Argument(..., help="The device number.")) -> None:
    """Remove a device (not device 1); its channels go where new channels go."""
    from streamforge.outputs import devices as dev
    from streamforge.outputs.setup_urls import device_setup_urls

    with open_runtime() as runtime:
        dev.remove_device(runtime.db, runtime.settings, number)
        rows = device_setup_urls(runtime.db, runtime.settings)
        cap = runtime.settings.channels_per_device
    console.print(f"device {number} removed; remove it in Plex too", highlight=False)
    _print(rows, False, cap)

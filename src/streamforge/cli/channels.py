"""``streamforge channel …``, ``map …``, ``match``: guide channels and their streams."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from streamforge.cli.common import (
    console,
    one_line_errors,
    open_database,
    open_runtime,
    retry_locked,
)

if TYPE_CHECKING:
    from streamforge.matching.channels import ChannelView

channel_app = typer.Typer(help="Guide channels (what Plex sees).", no_args_is_help=True)
map_app = typer.Typer(help="Provider streams behind a guide channel.", no_args_is_help=True)

REF_HELP = "GuideNumber, XMLTV id, or #id."
STREAM_HELP = "ACCOUNT/STREAM_ID, e.g. alpha/106 (or the stream id alone where one account has it)."


def _print_channel(view: ChannelView) -> None:
    from rich.table import Table

    state = "enabled" if view.is_enabled else "disabled"
    console.print(
        f"[bold]{view.guide_number or '—'}[/] {view.name}  ({view.xmltv_id}, #{view.id}, {state})",
        highlight=False,
    )
    table = Table("prio", "stream", "name", "quality", "confidence", "how")
    for m in view.mappings:
        table.add_row(
            f"{m.stream_priority}{' *' if m.is_primary else ''}",
            m.ref + ("" if m.account_active else " (account inactive)"),
            m.stream_name,
            m.quality,
            f"{m.match_confidence:.2f}",
            "manual" if m.is_manual else "auto",
        )
    console.print(table)


@channel_app.command("list")
@one_line_errors
def channel_list(
    search: str | None = typer.Option(None, "--search", "-s", help="Name, id or number."),
    enabled: bool | None = typer.Option(None, "--enabled/--disabled", help="Filter by state."),
    mapped: bool | None = typer.Option(None, "--mapped/--unmapped", help="Filter by streams."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List guide channels with their GuideNumber and stream count."""
    from rich.table import Table

    from streamforge.events import EventLog
    from streamforge.matching.channels import ChannelService

    with open_database() as (_config, db):
        views = ChannelService(db, EventLog(db)).all(search=search, enabled=enabled, mapped=mapped)
    if as_json:
        console.print_json(json.dumps([v.as_dict() for v in views]))
        return
    table = Table("number", "name", "xmltv id", "streams", "enabled")
    for v in views:
        table.add_row(
            v.guide_number or "—",
            v.name,
            v.xmltv_id,
            str(v.stream_count),
            "yes" if v.is_enabled else "no",
        )
    console.print(table)


@channel_app.command("show")
@one_line_errors
def channel_show(ref: str = typer.Argument(..., help=REF_HELP)) -> None:
    """Show a channel and its streams in failover order."""
    with open_runtime() as runtime:
        _print_channel(runtime.channels.get(ref))


@channel_app.command("enable")
@one_line_errors
def channel_enable(ref: str = typer.Argument(..., help=REF_HELP)) -> None:
    """Publish the channel to Plex."""
    with open_runtime() as runtime:
        view = runtime.channels.set_enabled(ref, True)
    console.print(f"{view.name} enabled as {view.guide_number}", highlight=False)


@channel_app.command("disable")
@one_line_errors
def channel_disable(ref: str = typer.Argument(..., help=REF_HELP)) -> None:
    """Hide the channel from Plex (its mappings are kept)."""
    with open_runtime() as runtime:
        view = runtime.channels.set_enabled(ref, False)
    console.print(f"{view.name} disabled", highlight=False)


@channel_app.command("number")
@one_line_errors
def channel_number(
    ref: str = typer.Argument(..., help=REF_HELP),
    number: str = typer.Argument(..., help="New GuideNumber, e.g. 101 or 5.1."),
) -> None:
    """Set the channel's GuideNumber."""
    with open_runtime() as runtime:
        view = retry_locked(runtime.channels.set_number, ref, number)
    console.print(f"{view.name} is now {view.guide_number}", highlight=False)


@channel_app.command("health")
@one_line_errors
def channel_health(
    ref: str = typer.Argument(..., help=REF_HELP),
    radio: bool | None = typer.Option(
        None, "--radio/--tv", help="Audio only: never fail over for the picture."
    ),
    black: bool | None = typer.Option(None, "--black/--no-black", help="Black picture check."),
    frozen: bool | None = typer.Option(None, "--frozen/--no-frozen", help="Frozen picture check."),
    silence: bool | None = typer.Option(None, "--silence/--no-silence", help="Silence check."),
    black_seconds: float | None = typer.Option(None, help="Black threshold (s) for this channel."),
    frozen_seconds: float | None = typer.Option(
        None, help="Frozen threshold (s) for this channel."
    ),
    silence_seconds: float | None = typer.Option(
        None, help="Silence threshold (s) for this channel."
    ),
    defaults: bool = typer.Option(
        False, "--defaults", help="Back to the global thresholds (before other options)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show or change how the channel's media is judged (no option: show)."""
    from rich.table import Table

    changes: dict[str, object] = {}
    if defaults:
        changes = {
            "audio_only": False,
            "black": True,
            "frozen": True,
            "silence": True,
            "black_seconds": None,
            "frozen_seconds": None,
            "silence_seconds": None,
        }
    for key, value in (
        ("audio_only", radio),
        ("black", black),
        ("frozen", frozen),
        ("silence", silence),
        ("black_seconds", black_seconds),
        ("frozen_seconds", frozen_seconds),
        ("silence_seconds", silence_seconds),
    ):
        if value is not None:
            changes[key] = value
    with open_runtime() as runtime:
        if changes:
            judgement = runtime.channels.set_health(ref, **changes)  # type: ignore[arg-type]
        else:
            judgement = runtime.channels.health(ref)
        settings = runtime.settings
    data = judgement.as_dict()
    if as_json:
        console.print_json(json.dumps(data))
        return
    kind = "radio (audio only: the picture is not judged)" if judgement.audio_only else "TV"
    console.print(f"{ref}: {kind}", highlight=False)
    table = Table("check", "on", "threshold")
    for label, on, own, default in (
        ("black picture", judgement.black, judgement.black_seconds, settings.black_seconds),
        ("frozen picture", judgement.frozen, judgement.frozen_seconds, settings.frozen_seconds),
        ("silent audio", judgement.silence, judgement.silence_seconds, settings.silence_seconds),
    ):
        threshold = f"{own:g} s" if own is not None else f"{default:g} s (setting)"
        table.add_row(label, "yes" if on else "no", threshold)
    console.print(table)
    console.print(
        f"behind live after {settings.live_lag_limit:g} s of lag (STREAMFORGE_LIVE_LAG_LIMIT)",
        highlight=False,
    )


@channel_app.command("offset", context_settings={"ignore_unknown_options": True})
@one_line_errors
def channel_offset(
    ref: str = typer.Argument(..., help=REF_HELP),
    minutes: int = typer.Argument(..., help="Minutes added to its programme times (e.g. 30)."),
) -> None:
    """Shift this channel's programme times in the guide (on top of its sources' offsets)."""
    with open_runtime() as runtime:
        view = runtime.channels.set_time_offset(ref, minutes)
    console.print(
        f"{view.name} guide times shifted by {view.time_offset_minutes:+d} min", highlight=False
    )


@map_app.command("add")
@one_line_errors
def map_add(
    ref: str = typer.Argument(..., help=REF_HELP),
    stream: str = typer.Argument(..., help=STREAM_HELP),
    position: int | None = typer.Option(None, help="Place in the order (0 = primary)."),
) -> None:
    """Map a provider stream to a channel (manual: matching never changes it)."""
    with open_runtime() as runtime:
        _print_channel(runtime.channels.map_add(ref, stream, position))


@map_app.command("remove")
@one_line_errors
def map_remove(
    ref: str = typer.Argument(..., help=REF_HELP),
    stream: str = typer.Argument(..., help=STREAM_HELP),
) -> None:
    """Remove a stream from a channel."""
    with open_runtime() as runtime:
        _print_channel(runtime.channels.map_remove(ref, stream))


@map_app.command("reorder")
@one_line_errors
def map_reorder(
    ref: str = typer.Argument(..., help=REF_HELP),
    streams: list[str] = typer.Argument(
        ..., help="Every mapped stream (alpha/106, or 106), best first (see `channel show`)."
    ),
) -> None:
    """Set the failover order of a channel's streams."""
    with open_runtime() as runtime:
        _print_channel(runtime.channels.reorder(ref, streams))


@map_app.command("primary")
@one_line_errors
def map_primary(
    ref: str = typer.Argument(..., help=REF_HELP),
    stream: str = typer.Argument(..., help=f"The stream to play first: {STREAM_HELP}"),
) -> None:
    """Make a stream the channel's primary."""
    with open_runtime() as runtime:
        _print_channel(runtime.channels.set_primary(ref, stream))


@one_line_errors
def match() -> None:
    """Map provider streams to guide channels automatically (manual mappings are kept)."""
    with open_runtime() as runtime:
        summary = retry_locked(runtime.matching.run)
    console.print(
        f"{summary.mapped_streams} of {summary.streams} streams mapped onto "
        f"{summary.channels_with_streams} channels ({summary.channels_with_backups} with "
        f"backups); {summary.unmatched} unmatched; {summary.manual_kept} manual mappings kept",
        highlight=False,
    )

"""``streamforge epg …``: XMLTV guide sources."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import typer

from streamforge.cli.common import (
    confirm,
    console,
    err_console,
    fail,
    one_line_errors,
    open_runtime,
)
from streamforge.errors import StreamForgeError

if TYPE_CHECKING:
    from rich.progress import TaskID

    from streamforge.runtime import Runtime

app = typer.Typer(help="XMLTV guide sources.", no_args_is_help=True)


@app.command("add")
@one_line_errors
def add(
    name: str = typer.Argument(..., help="A name for the guide source."),
    url: str | None = typer.Option(None, "--url", help="Download the guide from this URL."),
    file: str | None = typer.Option(None, "--file", help="Read the guide from this file."),
    from_account: str | None = typer.Option(
        None, "--from-account", help="Use this account's own xmltv.php."
    ),
    refresh: bool = typer.Option(True, help="Import it right away."),
    priority: int = typer.Option(
        0, "--priority", help="Lower is preferred where several guides list a channel."
    ),
) -> None:
    """Add a guide source (gzip, xz or plain XMLTV, detected from the content) and import
    it: a source that does not import is not kept (--no-refresh keeps it unchecked)."""
    with open_runtime() as runtime:
        runtime.epg.add(name, url=url, file=file, from_account=from_account, priority=priority)
        if not refresh:
            console.print(f"guide source {name!r} added", highlight=False)
            return
        if _refresh(runtime, [name]):
            runtime.epg.remove(name)
            raise fail(f"guide source {name!r} not saved")
        console.print(f"guide source {name!r} added", highlight=False)


@app.command("list")
@one_line_errors
def list_sources(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List guide sources."""
    from rich.table import Table

    with open_runtime() as runtime:
        views = runtime.epg.all()
    if as_json:
        console.print_json(json.dumps([v.as_dict() for v in views]))
        return
    table = Table(
        "name",
        "priority",
        "offset",
        "kind",
        "where",
        "channels",
        "last refresh",
        "programmes",
        "error",
    )
    for v in views:
        table.add_row(
            v.name,
            str(v.priority),
            f"{v.time_offset_minutes:+d} min" if v.time_offset_minutes else "",
            v.kind,
            v.account or v.location or "",
            str(v.channel_count),
            f"{v.last_refreshed_at:%Y-%m-%d %H:%M}" if v.last_refreshed_at else "never",
            str(v.last_report.get("programmes", "")),
            v.last_error or "",
        )
    console.print(table)


def _refresh(runtime: Runtime, names: list[str]) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    failures = 0
    for name in names:
        with Progress(
            TextColumn(f"{name}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(name, total=None)

            def progress(
                done: int, total: int | None, task_id: TaskID = task, ui: Progress = bar
            ) -> None:
                ui.update(task_id, completed=done, total=total)

            try:
                summary = asyncio.run(runtime.catalog.refresh_guide(name, progress)).report
            except StreamForgeError as exc:
                err_console.print(
                    f"[bold red]error:[/] {name}: {exc}", highlight=False, soft_wrap=True
                )
                failures += 1
                continue
        skipped = summary["skipped"]
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())) or "none"
        console.print(
            f"{name}: {summary['channels']} channels, {summary['programmes']} programmes "
            f"(skipped: {detail}) in {summary['seconds']} s",
            highlight=False,
        )
    return failures


@app.command("refresh")
@one_line_errors
def refresh(
    name: str | None = typer.Argument(None, help="Source to refresh (default all)."),
) -> None:
    """Re-import guide sources now (a failure keeps the guide already stored), then re-match."""
    with open_runtime() as runtime:
        names = [name] if name else [v.name for v in runtime.epg.all() if v.is_active]
        if not names:
            raise fail("no guide sources; add one with `streamforge epg add`")
        failures = _refresh(runtime, names)
    if failures:
        raise typer.Exit(1)


@app.command("remove")
@one_line_errors
def remove(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Remove a guide source with its programmes, and its channels no other guide lists."""
    if not yes:
        confirm(f"Remove guide source {name!r} (and its channels no other guide lists)?")
    with open_runtime() as runtime:
        runtime.epg.remove(name)
    console.print(f"guide source {name!r} removed", highlight=False)


@app.command("priority")
@one_line_errors
def priority(
    name: str = typer.Argument(..., help="The guide source."),
    value: int = typer.Argument(..., help="Lower is preferred (0 is the default)."),
) -> None:
    """Set which guide wins where several list the same channel (lower is preferred)."""
    with open_runtime() as runtime:
        view = runtime.epg.set_priority(name, value)
    console.print(f"guide source {view.name!r} has priority {view.priority}", highlight=False)


@app.command("offset", context_settings={"ignore_unknown_options": True})
@one_line_errors
def offset(
    name: str = typer.Argument(..., help="The guide source."),
    minutes: int = typer.Argument(..., help="Minutes added to its programme times (e.g. -60)."),
) -> None:
    """Shift a guide source's programme times (for feeds in the wrong time zone)."""
    with open_runtime() as runtime:
        view = runtime.epg.set_offset(name, minutes)
    console.print(
        f"guide source {view.name!r} times shifted by {view.time_offset_minutes:+d} min",
        highlight=False,
    )

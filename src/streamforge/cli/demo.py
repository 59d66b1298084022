"""``streamforge demo``: StreamForge against the built-in mock provider, in one command.

See :mod:`streamforge.demo` for what runs; this module only parses options,
prints the addresses and the generated admin password, and runs the loop.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import typer

from streamforge.cli.common import console, one_line_errors

#: Seconds on a backup before going back to the primary (short, to see it happen);
#: :data:`streamforge.demo.DEMO_RECOVERY_PERIOD` (a test keeps the two equal).
DEMO_RECOVERY_PERIOD = 20.0

log = logging.getLogger(__name__)


def _announce(info: dict[str, Any]) -> None:
    urls = info["urls"]
    console.print("\n[bold green]StreamForge demo is running.[/]", highlight=False, soft_wrap=True)
    console.print(f"  Web UI:          {info['ui']}", highlight=False, soft_wrap=True)
    if info["password"]:
        console.print(
            f"  Admin password:  [bold]{info['password']}[/]", highlight=False, soft_wrap=True
        )
    else:
        console.print(
            "  Admin password:  the one in STREAMFORGE_ADMIN_PASSWORD",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"  Plex device:     {urls['plex']}", highlight=False, soft_wrap=True)
    console.print(f"  M3U playlist:    {urls['m3u']}", highlight=False, soft_wrap=True)
    console.print(f"  XMLTV guide:     {urls['xmltv']}", highlight=False, soft_wrap=True)
    console.print(f"  Mock provider:   {info['provider']}", highlight=False, soft_wrap=True)
    console.print(f"  Data directory:  {info['data_dir']}", highlight=False, soft_wrap=True)
    console.print(f"  Command line:    {info['cli']}", highlight=False, soft_wrap=True)
    matching = info["setup"]["matching"]
    console.print(
        f"  Channels:        {matching['channels_with_streams']} with streams, "
        f"{matching['channels_with_backups']} with backups",
        highlight=False,
    )
    if info["watch"]:
        console.print(
            "\nTry it: play the channel with\n"
            f"  mpv {info['watch']}     (or: vlc {info['watch']})\n"
            "then open Live in the web UI, kill the playing stream in the demo panel and "
            "watch the failover on the timeline. Ctrl-C stops the demo.",
            highlight=False,
            soft_wrap=True,
        )


@one_line_errors
def demo(
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Keep the demo's data here (default: ~/.cache/streamforge/demo, kept across runs).",
    ),
    host: str = typer.Option("127.0.0.1", help="Bind address (0.0.0.0 to reach it from Plex)."),
    port: int | None = typer.Option(None, help="HTTP port (default 5004)."),
    recovery_period: float = typer.Option(
        DEMO_RECOVERY_PERIOD, help="Seconds on a backup before going back to the primary."
    ),
) -> None:
    """Run StreamForge against a built-in mock provider and watch failover happen."""
    from streamforge.cli.main import serving_log
    from streamforge.demo import data_directory, demo_settings, run_demo
    from streamforge.interpreter import tune_for_serving

    serving_log()
    tune_for_serving()
    with data_directory(data_dir) as directory:
        settings = demo_settings(directory, host=host, port=port, recovery_period=recovery_period)
        try:
            asyncio.run(run_demo(settings, announce=_announce))
        except KeyboardInterrupt:
            log.info("demo stopped")

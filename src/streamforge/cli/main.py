"""``streamforge``: serve, migrate, read events, manage the admin password.

Feature areas add their own sub-commands (accounts, guides, channels, the
mock provider, …) from their own modules; this module only assembles them.

Assembling the app imports typer, rich and the ``cli`` modules only (each
command imports what it needs when it runs), so ``--version`` and ``--help``
answer at once. ``mock-provider`` lives in :mod:`streamforge.mockprovider`,
whose package pulls in PyAV and NumPy: it is listed by name and help text and
loaded only when invoked (:class:`_RootGroup`).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from types import MappingProxyType

import typer
from typer import _click
from typer.core import TyperGroup

from streamforge import __version__
from streamforge.cli import accounts, channels, cluster, demo, devices, epg, session, setup
from streamforge.cli.common import (
    console,
    fail,
    one_line_errors,
    open_database,
    open_runtime,
    read_secret,
    settings,
)

LEVELS = ("debug", "info", "warning", "error")
"""Event levels, lowest first (:data:`streamforge.events.LEVELS`; a test keeps them equal)."""

SERVER_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
COMMAND_LOG_FORMAT = "%(levelname)s: %(message)s"

#: Sub-command groups loaded on use: name -> (module, attribute, one-line help).
LAZY_GROUPS = MappingProxyType(
    {
        "mock-provider": (
            "streamforge.mockprovider.cli",
            "app",
            "A fault-injecting mock Xtream Codes panel serving real MPEG-TS.",
        ),
    }
)


def _load_group(name: str) -> _click.Command:
    module, attribute, _help = LAZY_GROUPS[name]
    command = typer.main.get_command(getattr(importlib.import_module(module), attribute))
    command.name = name
    return command


class _RootGroup(TyperGroup):
    """The root group: :data:`LAZY_GROUPS` are listed from their help text and
    imported only when a command line names them."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return [*super().list_commands(ctx), *LAZY_GROUPS]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        lazy = LAZY_GROUPS.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        return TyperGroup(name=cmd_name, help=lazy[2], short_help=lazy[2])

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        if args and args[0] in LAZY_GROUPS:
            return args[0], _load_group(args[0]), args[1:]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="streamforge",
    help="StreamForge: IPTV provider accounts + XMLTV guides as an HDHomeRun tuner for Plex, "
    "with seamless automatic stream failover.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_RootGroup,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
admin_app = typer.Typer(help="The admin password for the web UI and API.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(accounts.app, name="account")
app.add_typer(epg.app, name="epg")
app.add_typer(channels.channel_app, name="channel")
app.add_typer(channels.map_app, name="map")
app.add_typer(devices.app, name="device")
app.add_typer(session.app, name="session")
app.add_typer(cluster.cluster_app, name="cluster")
app.add_typer(cluster.secret_app, name="secret")
app.command("match")(channels.match)
app.command("plex-urls")(setup.plex_urls)
app.command("sessions")(setup.sessions)
app.command("demo")(demo.demo)


def _version(value: bool) -> None:
    if value:
        console.print(f"streamforge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
) -> None:
    """StreamForge command line."""
    # Commands print their result; the process log (events, sync steps) is for
    # -v. `serve` and `demo` log at INFO as servers do (see serving_log()).
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format=SERVER_LOG_FORMAT if verbose else COMMAND_LOG_FORMAT,
    )
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)


@app.command()
@one_line_errors
def serve(
    host: str | None = typer.Option(None, help="Bind address (default 0.0.0.0)."),
    port: int | None = typer.Option(None, help="HTTP port (default 5004)."),
) -> None:
    """Start StreamForge: tuner emulation, playlist, guide, streams, API and UI."""
    from streamforge.runtime import Runtime
    from streamforge.server import run

    serving_log()
    config = settings(host=host, port=port)
    runtime = Runtime.build(config)
    runtime.restore_saved_settings()
    generated = runtime.auth.ensure_password()
    if generated:
        console.print(
            f"[bold]Admin password (shown once, only its hash is stored):[/] {generated}",
            highlight=False,
        )
    console.print(f"StreamForge {__version__} listening on http://{config.host}:{config.port}")
    run(runtime, host=config.host, port=config.port)


@db_app.command("upgrade")
@one_line_errors
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    from streamforge.db.engine import Database
    from streamforge.db.migrate import upgrade

    config = settings()
    config.ensure_data_dir()
    database = Database(config.effective_database_url)
    try:
        revision = upgrade(database.engine)
    finally:
        database.dispose()
    console.print(f"database at revision {revision}")


@app.command()
@one_line_errors
def events(
    level: str | None = typer.Option(None, help=f"At least this level: {', '.join(LEVELS)}."),
    category: str | None = typer.Option(None, help="Only this category (stream, account, …)."),
    channel: int | None = typer.Option(None, help="Only events of this guide channel id."),
    limit: int = typer.Option(50, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """Show the event log."""
    if level is not None and level not in LEVELS:
        raise fail(f"--level: use one of {', '.join(LEVELS)}", 2)
    from streamforge.events import EventLog

    with open_database() as (_config, db):
        found = EventLog(db).query(level=level, category=category, channel_id=channel, limit=limit)
    for event in found:
        if as_json:
            console.print_json(json.dumps(event.as_dict()))
        else:
            details = json.dumps(event.details, ensure_ascii=False) if event.details else ""
            console.print(
                f"{event.timestamp:%Y-%m-%d %H:%M:%S} {event.level.upper():7} "
                f"{event.category:8} {event.message} {details}",
                highlight=False,
                soft_wrap=True,
            )


@admin_app.command("set-password")
@one_line_errors
def admin_set_password(
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the new password from standard input."
    ),
) -> None:
    """Set the admin password (stored as an Argon2 hash)."""
    password = read_secret(
        "New admin password",
        stdin=password_stdin,
        env_value=os.environ.get("STREAMFORGE_NEW_ADMIN_PASSWORD"),
    )
    with open_runtime() as runtime:
        try:
            runtime.auth.set_password(password)
        except ValueError as exc:
            raise fail(str(exc)) from None
    console.print("admin password updated")


def serving_log() -> None:
    """Servers (``serve``, ``demo``) log at INFO at least, with timestamps, as they
    always have (other commands print warnings only, as one short line)."""
    root_logger = logging.getLogger()
    if root_logger.getEffectiveLevel() > logging.INFO:
        root_logger.setLevel(logging.INFO)
    for handler in root_logger.handlers:
        formatter = handler.formatter
        if formatter is not None and formatter._fmt == COMMAND_LOG_FORMAT:
            handler.setFormatter(logging.Formatter(SERVER_LOG_FORMAT))


def main() -> None:
    app()

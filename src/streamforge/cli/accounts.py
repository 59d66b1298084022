"""``streamforge account …``: provider accounts and channel sync."""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING

import typer

from streamforge.cli.common import (
    confirm,
    console,
    err_console,
    fail,
    one_line_errors,
    open_database,
    open_runtime,
    prompt_secret,
)

if TYPE_CHECKING:
    from rich.progress import TaskID

    from streamforge.xtream.accounts import AccountView

app = typer.Typer(help="Xtream Codes provider accounts.", no_args_is_help=True)


def _password(stdin: bool, plain: str | None, *, required: bool) -> str | None:
    if plain:
        err_console.print(
            "[yellow]warning:[/] --password is visible to other users in `ps`; prefer "
            "--password-stdin or STREAMFORGE_ACCOUNT_PASSWORD"
        )
        return plain
    if stdin:
        value = typer.get_text_stream("stdin").readline().rstrip("\r\n")
        if not value:
            raise fail("no password on standard input")
        return value
    env = os.environ.get("STREAMFORGE_ACCOUNT_PASSWORD")
    if env:
        return env
    if not required:
        return None
    return prompt_secret("Provider password")


def _print_view(view: AccountView) -> None:
    for key, value in view.as_dict().items():
        console.print(f"[bold]{key:>22}[/]  {value if value is not None else '—'}", highlight=False)


@app.command("add")
@one_line_errors
def add(
    name: str = typer.Argument(..., help="A name for the account, e.g. 'main'."),
    server: str = typer.Option(..., "--server", help="Panel URL, e.g. http://provider:8080."),
    username: str = typer.Option(..., "--username", help="Provider username."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
    password: str | None = typer.Option(
        None, "--password", help="The password as an argument (visible in `ps`; avoid)."
    ),
    user_agent: str | None = typer.Option(None, help="User-Agent for this panel."),
    priority: int = typer.Option(0, help="Preference among accounts (lower is preferred)."),
    no_check: bool = typer.Option(
        False,
        "--no-check",
        "--no-test",
        help="Save without asking the panel (e.g. it is down right now).",
    ),
) -> None:
    """Add a provider account once the panel accepts it (wrong password, dead port or
    not an Xtream panel: nothing is saved; --no-check saves anyway)."""
    secret = _password(password_stdin, password, required=True)
    assert secret is not None
    with open_runtime() as runtime:
        result = asyncio.run(
            runtime.accounts.add(
                name,
                server_url=server,
                username=username,
                password=secret,
                user_agent=user_agent,
                priority=priority,
                test=not no_check,
                check=not no_check,
            )
        )
    if result.ok:
        console.print(f"account {name!r} added: {result.message}", highlight=False)
    else:
        err_console.print(
            f"[yellow]warning:[/] account {name!r} added, but: {result.message}", highlight=False
        )


@app.command("list")
@one_line_errors
def list_accounts(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List accounts with their status and limits."""
    from rich.table import Table

    from streamforge.credentials import CredentialStore
    from streamforge.events import EventLog
    from streamforge.xtream.accounts import AccountService

    with open_database() as (config, db):
        # Listing opens no password: the keyring is not even probed.
        credentials = CredentialStore(config.data_dir, use_keyring=False)
        service = AccountService(db, credentials, EventLog(db), default_user_agent="")
        views = service.all()
    if as_json:
        console.print_json(json.dumps([v.as_dict() for v in views]))
        return
    table = Table("name", "server", "status", "active", "expires", "conns", "channels", "error")
    for v in views:
        table.add_row(
            v.name,
            v.server_url,
            v.status,
            "yes" if v.is_active else "no",
            f"{v.exp_date:%Y-%m-%d}" if v.exp_date else "—",
            str(v.max_connections),
            str(v.channel_count),
            v.last_error or "",
        )
    console.print(table)


@app.command("show")
@one_line_errors
def show(name: str) -> None:
    """Show one account."""
    with open_runtime() as runtime:
        _print_view(runtime.accounts.get(name))


@app.command("test")
@one_line_errors
def test(name: str) -> None:
    """Ask the panel for the account's status, expiry and connection limit."""
    with open_runtime() as runtime:
        result = asyncio.run(runtime.accounts.test(name))
    if not result.ok:
        raise fail(result.message)
    console.print(result.message, highlight=False)


@app.command("update")
@one_line_errors
def update(
    name: str,
    new_name: str | None = typer.Option(None, "--name", help="Rename the account."),
    server: str | None = typer.Option(None, "--server", help="New panel URL."),
    username: str | None = typer.Option(None, "--username", help="New username."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read a new password from standard input."
    ),
    user_agent: str | None = typer.Option(None, help="New User-Agent ('' for the default)."),
    priority: int | None = typer.Option(None, help="New preference (lower is preferred)."),
) -> None:
    """Change an account's settings or password."""
    secret = _password(password_stdin, None, required=False) if password_stdin else None
    with open_runtime() as runtime:
        view = runtime.accounts.update(
            name,
            new_name=new_name,
            server_url=server,
            username=username,
            password=secret,
            user_agent=user_agent,
            priority=priority,
        )
    console.print(f"account {view.name!r} updated", highlight=False)


@app.command("enable")
@one_line_errors
def enable(name: str) -> None:
    """Use the account for streaming again."""
    with open_runtime() as runtime:
        runtime.accounts.set_active(name, True)
    console.print(f"account {name!r} enabled", highlight=False)


@app.command("disable")
@one_line_errors
def disable(name: str) -> None:
    """Stop using the account for streaming (its channels are kept)."""
    with open_runtime() as runtime:
        runtime.accounts.set_active(name, False)
    console.print(f"account {name!r} disabled", highlight=False)


@app.command("remove")
@one_line_errors
def remove(
    name: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an account, its channels and their mappings."""
    if not yes:
        confirm(f"Remove account {name!r}, its channels and mappings?")
    with open_runtime() as runtime:
        runtime.accounts.remove(name)
    console.print(f"account {name!r} removed", highlight=False)


@app.command("sync")
@one_line_errors
def sync(
    name: str | None = typer.Argument(None, help="Account to sync."),
    all_accounts: bool = typer.Option(False, "--all", help="Sync every active account."),
) -> None:
    """Fetch the account's live channels (a failure keeps the previous list), then re-match."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if not name and not all_accounts:
        raise fail("name an account or use --all", 2)
    with open_runtime() as runtime:
        names = [name] if name else [v.name for v in runtime.accounts.all() if v.is_active]
        failures = 0
        for account in names:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task(f"{account}: connecting", total=1)

                def report(
                    stage: str,
                    done: int,
                    total: int,
                    task_id: TaskID = task,
                    label: str = account,
                    ui: Progress = bar,
                ) -> None:
                    ui.update(
                        task_id,
                        description=f"{label}: {stage}",
                        completed=done,
                        total=max(total, 1),
                    )

                # The same path as the API's and the scheduler's syncs: the
                # catalogue hook (re-match, guide re-render) follows a success.
                result = asyncio.run(runtime.sync_jobs.run(account, report))
            if result is None:
                error = runtime.sync_jobs.status(account).error
                err_console.print(f"[bold red]error:[/] {error}", highlight=False)
                failures += 1
                continue
            console.print(result.summary(), highlight=False)
    if failures:
        raise typer.Exit(1)

"""Shared CLI plumbing: settings, the runtime, one-line errors.

Start time matters at a prompt: importing this module (and every ``cli``
module) pulls in typer and rich only. What a command needs — the runtime, the
database, the services — is imported when the command runs:
:func:`open_runtime` builds the whole runtime (commands that change things),
:func:`open_database` only the database, for read-only commands that build
the one service they read from.

A command may run while ``streamforge serve`` (or another command) writes to
the same SQLite file. A write that meets ``database is locked`` after the
driver's own busy timeout is retried with back-off (:func:`retry_locked`), and
if the database stays locked — or any database error escapes a command — the
command ends with one line and exit status 1, never a traceback.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from streamforge.errors import StreamForgeError

if TYPE_CHECKING:
    from streamforge.db.engine import Database
    from streamforge.runtime import Runtime
    from streamforge.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

NO_TERMINAL_HINT = "no terminal to ask for the password: pipe it in with --password-stdin"
_REVISION_RE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED_RE = re.compile(r"[\"']([^\"']+)[\"']")


#: Waits (seconds) between attempts of a write that found the database locked.
LOCK_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
#: How :func:`retry_locked` waits between attempts.
pause: Callable[[float], None] = time.sleep


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (or "busy")."""
    sa_exc = sys.modules.get("sqlalchemy.exc")  # loaded whenever a database error can exist
    if sa_exc is None or not isinstance(exc, sa_exc.OperationalError):
        return False
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def retry_locked(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` (one transaction), tried again while the database is locked."""
    from sqlalchemy.exc import OperationalError

    for delay in LOCK_RETRY_DELAYS:
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            if not is_locked(exc):
                raise
            err_console.print(
                f"the database is busy (another StreamForge is writing); retrying in {delay:g} s",
                highlight=False,
            )
            pause(delay)
    return fn(*args, **kwargs)


def _database_message(exc: BaseException) -> str | None:
    """One line for a database error escaping a command (None: not a database error)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")  # loaded whenever a database error can exist
    if sa_exc is None or not isinstance(exc, sa_exc.DBAPIError):
        return None
    first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc).__name__
    if is_locked(exc):
        return (
            f"the database stayed locked ({first}): another StreamForge is writing; "
            "try again in a moment"
        )
    return f"database error: {first}"


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn StreamForge errors into a one-line message and exit status 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except StreamForgeError as exc:
            raise fail(str(exc)) from None
        except Exception as exc:
            message = _database_message(exc)
            if message is None:
                raise  # not a database error: not ours to shorten
            raise fail(message) from None

    return wrapper


def settings(**overrides: Any) -> Settings:
    from streamforge.settings import load_settings

    return load_settings(**overrides)


@contextmanager
def open_runtime(**overrides: Any) -> Iterator[Runtime]:
    """Build the runtime (migrating the database) and close it afterwards."""
    from streamforge.runtime import Runtime

    runtime = Runtime.build(settings(**overrides))
    try:
        yield runtime
    finally:
        runtime.close()


def head_revisions(versions: Path) -> set[str]:
    """The head revision ids of the migration scripts in ``versions``, read from their
    ``revision`` / ``down_revision`` lines (no Alembic import: it costs a second)."""
    known: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        for key, value in _REVISION_RE.findall(script.read_text(encoding="utf-8")):
            ids = set(_QUOTED_RE.findall(value))
            (known if key == "revision" else parents).update(ids)
    return known - parents


def _schema_is_current(db: Database) -> bool:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    import streamforge.db

    heads = head_revisions(Path(streamforge.db.__file__).parent / "migrations" / "versions")
    try:
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            stamped = {str(row[0]) for row in rows}
    except SQLAlchemyError:
        return False  # no such table yet, or unreadable: the full upgrade says why
    return bool(heads) and stamped == heads


@contextmanager
def open_database(**overrides: Any) -> Iterator[tuple[Settings, Database]]:
    """Settings and the database, migrated if it is not at the newest schema yet;
    for read-only commands (cheaper than :func:`open_runtime`)."""
    from streamforge.db.engine import Database

    config = settings(**overrides)
    config.ensure_data_dir()
    db = Database(config.effective_database_url)
    try:
        if not _schema_is_current(db):
            from streamforge.db.migrate import upgrade

            upgrade(db.engine)
        yield config, db
    finally:
        db.dispose()


def read_secret(prompt: str, *, stdin: bool, env_value: str | None) -> str:
    """A secret from stdin, the environment, or an interactive prompt (never argv)."""
    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif env_value:
        value = env_value
    else:
        value = prompt_secret(prompt)
    if not value:
        raise fail("no password given")
    return value


def confirm(question: str) -> None:
    """Ask before a removal; without a terminal to ask on, say to pass ``--yes``."""
    if not sys.stdin.isatty():
        raise fail("no terminal to confirm on: add --yes to remove without asking")
    typer.confirm(question, abort=True)


def prompt_secret(prompt: str) -> str:
    """Ask for a secret on the terminal; without one, say how to pass it instead."""
    if not sys.stdin.isatty():
        raise fail(NO_TERMINAL_HINT)
    return str(typer.prompt(prompt, hide_input=True))

"""Shared CLI plumbing: settings, the runtime, one-line errors.

A command may run while ``streamforge serve`` (or another command) writes to
the same SQLite file. A write that meets ``database is locked`` after the
driver's own busy timeout is retried with back-off (:func:`retry_locked`), and
if the database stays locked — or any database error escapes a command — the
command ends with one line and exit status 1, never a traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import DBAPIError, OperationalError

from streamforge.errors import StreamForgeError
from streamforge.runtime import Runtime
from streamforge.settings import load_settings

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

#: Waits (seconds) between attempts of a write that found the database locked.
LOCK_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
#: How :func:`retry_locked` waits between attempts.
pause: Callable[[float], None] = time.sleep


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (or "busy")."""
    if not isinstance(exc, OperationalError):
        return False
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def retry_locked(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` (one transaction), tried again while the database is locked."""
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


def _database_message(exc: DBAPIError) -> str:
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
        except DBAPIError as exc:
            raise fail(_database_message(exc)) from None

    return wrapper


@contextmanager
def open_runtime(**overrides: Any) -> Iterator[Runtime]:
    """Build the runtime (migrating the database) and close it afterwards."""
    runtime = Runtime.build(load_settings(**overrides))
    try:
        yield runtime
    finally:
        runtime.close()


def read_secret(prompt: str, *, stdin: bool, env_value: str | None) -> str:
    """A secret from stdin, the environment, or an interactive prompt (never argv)."""
    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif env_value:
        value = env_value
    else:
        value = typer.prompt(prompt, hide_input=True)
    if not value:
        raise fail("no password given")
    return value

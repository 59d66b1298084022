"""Shared CLI plumbing: settings, the runtime, one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from streamforge.errors import StreamForgeError
from streamforge.runtime import Runtime
from streamforge.settings import load_settings

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)


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

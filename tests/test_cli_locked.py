"""`database is locked`: command-line writers wait their turn, and when the
database stays locked they end with one line — never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamforge.cli import common
from streamforge.cli.main import app
from streamforge.db import engine
from streamforge.mockprovider import MockProviderThread
from streamforge.runtime import Runtime


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> Path:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    # Short waits so that a held lock is met quickly; the behaviour is the same.
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(common, "LOCK_RETRY_DELAYS", (0.1, 0.2, 0.4))
    return runtime.settings.data_dir / "streamforge.db"


@contextmanager
def write_lock(path: Path, released: threading.Event) -> Iterator[None]:
    """Another writer holds the database's write lock until ``released`` is set."""
    held = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("BEGIN IMMEDIATE")
            held.set()
            released.wait(30)
            connection.execute("COMMIT")
        finally:
            connection.close()

    thread = threading.Thread(target=hold, name="lock-holder")
    thread.start()
    assert held.wait(10)
    try:
        yield
    finally:
        released.set()
        thread.join(10)


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_match_waits_for_the_other_writer(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()
    waits: list[float] = []

    def pause_then_release(seconds: float) -> None:
        # The other writer finishes while match backs off for the first time.
        waits.append(seconds)
        released.set()
        time.sleep(seconds)

    monkeypatch.setattr(common, "pause", pause_then_release)
    with write_lock(cli_env, released):
        result = CliRunner().invoke(app, ["match"])
    assert waits[:1] == [0.1]
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "the database is busy" in result.output
    assert "streams mapped onto" in result.output


def test_a_database_that_stays_locked_is_one_line(cli_env: Path) -> None:
    with write_lock(cli_env, threading.Event()):
        result = CliRunner().invoke(app, ["match"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in _lines(result.output) if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "the database stayed locked (database is locked)" in errors[0]
    assert "Traceback" not in result.output


def test_sync_match_and_guide_refresh_at_once(
    runtime: Runtime, mock_provider_thread: MockProviderThread, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(STREAMFORGE_DATA_DIR=str(runtime.settings.data_dir), STREAMFORGE_KEYRING="false")
    cli = [sys.executable, "-m", "streamforge"]

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], env=env, capture_output=True, text=True, input=stdin, timeout=120
        )

    for name in ("alpha", "beta"):
        added = run(
            "account",
            "add",
            name,
            "--server",
            mock_provider_thread.base_url,
            "--username",
            name,
            "--password-stdin",
            stdin=f"{name}-secret\n",
        )
        assert added.returncode == 0, added.stdout + added.stderr
    guide = run("epg", "add", "guide", "--from-account", "alpha")
    assert guide.returncode == 0, guide.stdout + guide.stderr
    for _round in range(3):
        procs = [
            subprocess.Popen(
                [*cli, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for args in (["account", "sync", "--all"], ["match"], ["epg", "refresh"], ["match"])
        ]
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert "Traceback" not in out, out
            if proc.returncode != 0:
                errors = [line for line in _lines(out) if line.startswith("error:")]
                assert len(errors) == 1, out

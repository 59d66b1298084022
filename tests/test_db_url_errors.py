"""A malformed or unusable STREAMFORGE_DATABASE_URL stops start-up with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamforge.cli.main import app
from streamforge.db.engine import Database, redact_url
from streamforge.db.migrate import upgrade
from streamforge.errors import ConfigError, DatabaseError
from tests.netutil import free_port

PASSWORD = "s3cr3t-Pw"


def _unreachable_postgres(port: int | None = None) -> str:
    # Nothing listens on a just-freed loopback port: the connection is refused.
    port = free_port() if port is None else port
    return f"postgresql+psycopg://sfuser:{PASSWORD}@127.0.0.1:{port}/streamforge"


def _not_a_database(tmp_path: Path) -> str:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an SQLite database file, not even close" * 100)
    return f"sqlite:///{junk}"


BAD_URLS: dict[str, tuple[Callable[[Path], str], str]] = {
    "unreachable": (lambda _tmp: _unreachable_postgres(), "Connection refused"),
    "not a url": (lambda _tmp: "notaurl://", "must be a sqlite:/// or postgresql+psycopg:// URL"),
    "missing dir": (
        lambda _tmp: "sqlite:////nonexistent/dir/x.db",
        "cannot open the SQLite database /nonexistent/dir/x.db (No such file or directory)",
    ),
    "bad port": (
        lambda _tmp: f"postgresql+psycopg://sfuser:{PASSWORD}@127.0.0.1:notaport/x",
        "is not a valid database URL",
    ),
    "unknown driver": (
        lambda _tmp: f"postgresql+nosuchdriver://sfuser:{PASSWORD}@127.0.0.1/x",
        "cannot be used",
    ),
    "not a database": (_not_a_database, "file is not a database"),
}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    monkeypatch.setenv("STREAMFORGE_DISCOVERY_ENABLED", "false")
    monkeypatch.setenv("STREAMFORGE_SSDP_ENABLED", "false")
    return data_dir


@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve", "--host", "127.0.0.1"]])
@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_bad_database_url_is_one_line(
    cli_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    case: str,
) -> None:
    make_url, expected = BAD_URLS[case]
    monkeypatch.setenv("STREAMFORGE_DATABASE_URL", make_url(tmp_path))
    if command[0] == "serve":
        command = [*command, "--port", str(free_port())]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: STREAMFORGE_DATABASE_URL: ")
    assert expected in lines[0]
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output


def test_serve_process_stops_with_one_line(tmp_path: Path) -> None:
    """The real process: only the one error line on stderr, no traceback, no password."""
    db_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        STREAMFORGE_DATA_DIR=str(tmp_path / "data"),
        STREAMFORGE_KEYRING="false",
        STREAMFORGE_DATABASE_URL=_unreachable_postgres(db_port),
    )
    port = str(free_port())
    proc = subprocess.run(
        [sys.executable, "-m", "streamforge", "serve", "--host", "127.0.0.1", "--port", port],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: STREAMFORGE_DATABASE_URL: cannot use the database "
        f"postgresql+psycopg://sfuser:***@127.0.0.1:{db_port}/streamforge: connection failed: "
        f'connection to server at "127.0.0.1", port {db_port} failed: Connection refused'
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:p@127.0.0.1:1/x", "postgresql+psycopg://u:***@127.0.0.1:1/x"),
        ("postgresql+psycopg://u:p@ss@host/x", "postgresql+psycopg://u:***@host/x"),
        (
            "postgresql+psycopg://u:p%40ss@host:notaport/x",
            "postgresql+psycopg://u:***@host:notaport/x",
        ),
        ("postgresql+psycopg://u@host/x", "postgresql+psycopg://u@host/x"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("notaurl://", "notaurl://"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^STREAMFORGE_DATABASE_URL: .*not a valid"):
        Database(f"postgresql+psycopg://u:{PASSWORD}@h:notaport/x")
    with pytest.raises(DatabaseError, match=r"^STREAMFORGE_DATABASE_URL: cannot open the SQLite"):
        Database("sqlite:////nonexistent/dir/x.db")
    db = Database(_unreachable_postgres())
    try:
        with pytest.raises(DatabaseError, match="Connection refused") as info:
            upgrade(db.engine)
        assert PASSWORD not in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        db.dispose()

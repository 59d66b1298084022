from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamforge import __version__
from streamforge.admin_auth import AdminAuth
from streamforge.cli.main import app
from streamforge.runtime import Runtime
from streamforge.settings import load_settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    return data_dir


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"streamforge {__version__}"


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "db", "events", "admin"):
        assert command in result.output


def test_db_upgrade(cli_env: Path) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "database at revision" in result.output
    assert (cli_env / "streamforge.db").exists()


def test_bad_setting_is_one_line(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFORGE_PORT", "99999")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: STREAMFORGE_PORT: Input should be less than or equal to 65535"]


def test_events_json(cli_env: Path) -> None:
    rt = Runtime.build(load_settings())
    rt.events.record("warning", "stream", "failover", {"reason": "stall"}, channel_id=2)
    rt.events.record("info", "account", "synced")
    rt.close()
    result = CliRunner().invoke(app, ["events", "--category", "stream", "--json"])
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.output)
    assert parsed["message"] == "failover"
    assert parsed["details"] == {"reason": "stall"}
    bad = CliRunner().invoke(app, ["events", "--level", "loud"])
    assert bad.exit_code == 2


def test_admin_set_password(cli_env: Path) -> None:
    result = CliRunner().invoke(
        app, ["admin", "set-password", "--password-stdin"], input="a-good-password\n"
    )
    assert result.exit_code == 0, result.output
    rt = Runtime.build(load_settings())
    try:
        assert AdminAuth(rt.db).verify("a-good-password")
    finally:
        rt.close()
    short = CliRunner().invoke(app, ["admin", "set-password", "--password-stdin"], input="x\n")
    assert short.exit_code == 1
    assert "at least 8 characters" in short.output

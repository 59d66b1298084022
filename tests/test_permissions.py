"""The data dir is private: 0700, and every file StreamForge writes there 0600."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from streamforge.filemodes import tighten
from streamforge.outputs.identity import device_id
from streamforge.runtime import Runtime
from streamforge.settings import load_settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _modes(directory: Path) -> dict[str, int]:
    """Mode of the directory ('.') and of everything below it."""
    found = {".": _mode(directory)}
    for path in directory.rglob("*"):
        found[str(path.relative_to(directory))] = _mode(path)
    return found


def _exercise(rt: Runtime) -> None:
    """Writes that touch every file StreamForge keeps in the data dir."""
    rt.auth.set_password("a-good-password")
    rt.credentials.seal("provider-secret")  # creates credential.key
    device_id(rt.db)
    rt.events.record("info", "account", "permissions test")
    assert rt.events.flush()


def _build(data_dir: Path) -> Runtime:
    return Runtime.build(load_settings(data_dir=data_dir, keyring=False))


def test_fresh_data_dir_is_private(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data_dir = tmp_path / "fresh" / "streamforge"
    with caplog.at_level(logging.WARNING):
        rt = _build(data_dir)
        try:
            _exercise(rt)
            with rt.db.engine.connect() as connection:
                assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            # While the runtime holds connections, SQLite keeps its WAL and SHM files.
            assert (data_dir / "streamforge.db-wal").exists()
            assert (data_dir / "streamforge.db-shm").exists()
            modes = _modes(data_dir)
        finally:
            rt.close()
    assert {"streamforge.db", "credential.key"} <= set(modes)
    assert modes.pop(".") == 0o700
    assert modes == dict.fromkeys(modes, 0o600)
    assert "tightened permissions" not in caplog.text


def test_existing_loose_data_dir_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "old"
    rt = _build(data_dir)
    _exercise(rt)
    rt.close()
    # As an older StreamForge (or a restore from backup) left it.
    (data_dir / "streamforge.db-wal").write_bytes(b"")
    (data_dir / "notes.txt").write_text("left by the user")
    for path in [data_dir, *data_dir.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    with caplog.at_level(logging.WARNING, logger="streamforge.filemodes"):
        rt = _build(data_dir)
    try:
        _exercise(rt)
        assert rt.credentials.open(rt.credentials.seal("still works")) == "still works"
        modes = _modes(data_dir)
    finally:
        rt.close()
    assert modes.pop(".") == 0o700
    assert modes == dict.fromkeys(modes, 0o600)
    notices = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in ("", "/streamforge.db", "/streamforge.db-wal", "/credential.key", "/notes.txt"):
        line = f"tightened permissions of {data_dir}{name} to "
        assert any(n.startswith(line) for n in notices), (line, notices)
    assert all("\n" not in n for n in notices)
    # Nothing left to tighten: a second start is silent.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streamforge.filemodes"):
        load_settings(data_dir=data_dir).ensure_data_dir()
    assert caplog.records == []


def test_database_outside_the_data_dir_is_private(tmp_path: Path) -> None:
    elsewhere = tmp_path / "db-elsewhere"
    elsewhere.mkdir()
    database = elsewhere / "sf.db"
    rt = Runtime.build(
        load_settings(
            data_dir=tmp_path / "data", keyring=False, database_url=f"sqlite:///{database}"
        )
    )
    try:
        _exercise(rt)
        files = sorted(elsewhere.iterdir())
        assert database in files
        assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}
    finally:
        rt.close()


def test_tighten_keeps_owner_bits_and_skips_symlinks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    target = tmp_path / "target"
    target.write_text("x")
    target.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="streamforge.filemodes"):
        assert tighten(script)
        assert not tighten(link)
        assert not tighten(tmp_path / "missing")
        assert not tighten(script)  # already private
    assert _mode(script) == 0o700
    assert _mode(target) == 0o644
    assert [r.getMessage() for r in caplog.records] == [
        f"tightened permissions of {script} to 0700"
    ]

from __future__ import annotations

import logging
import stat
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest

from streamforge.credentials import KEY_FILE_NAME, CredentialStore
from streamforge.db.models import Account
from streamforge.errors import CredentialError
from streamforge.runtime import Runtime

SECRET = "pr0vider-S3cret-Pässword"


def test_round_trip_and_key_file_mode(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path, use_keyring=False)
    blob = store.seal(SECRET)
    assert SECRET.encode() not in blob
    assert store.open(blob) == SECRET
    mode = stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode)
    assert mode == 0o600
    # a second store on the same dir reads the same key
    assert CredentialStore(tmp_path, use_keyring=False).open(blob) == SECRET
    # the same password seals differently each time (random nonce)
    assert store.seal(SECRET) != blob


def test_loose_key_file_is_tightened_on_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CredentialStore(tmp_path / "fresh", use_keyring=False)
    blob = store.seal(SECRET)
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
    key = tmp_path / "fresh" / KEY_FILE_NAME
    key.chmod(0o644)  # e.g. restored from a backup
    with caplog.at_level(logging.WARNING, logger="streamforge.filemodes"):
        assert CredentialStore(tmp_path / "fresh", use_keyring=False).open(blob) == SECRET
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"tightened permissions of {key} to 0600" in caplog.text


def test_wrong_key_raises_credential_error(tmp_path: Path) -> None:
    blob = CredentialStore(tmp_path / "a", use_keyring=False).seal(SECRET)
    other = CredentialStore(tmp_path / "b", use_keyring=False)
    other.seal("something else")  # creates b's own key
    with pytest.raises(CredentialError, match="cannot be decrypted") as info:
        other.open(blob)
    assert SECRET not in str(info.value)


def test_missing_key_and_corrupt_blob(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path, use_keyring=False)
    blob = store.seal(SECRET)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(CredentialError, match="corrupt"):
        store.open(tampered)
    with pytest.raises(CredentialError, match="unknown format"):
        store.open(b"garbage")
    (tmp_path / KEY_FILE_NAME).unlink()
    with pytest.raises(CredentialError, match="missing"):
        store.open(blob)


def test_password_is_not_in_the_sqlite_file(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        s.add(
            Account(
                name="prov",
                server_url="http://p.example",
                username="user1",
                password_encrypted=runtime.credentials.seal(SECRET),
            )
        )
    runtime.db.dispose()
    db_file = runtime.settings.data_dir / "streamforge.db"
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob("streamforge.db*"))
    assert b"user1" in raw  # the file really holds the account …
    assert SECRET.encode() not in raw  # … but not its password
    assert SECRET.encode("utf-16-le") not in raw


class _MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-process keyring backend standing in for the desktop's secret service."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.items:
            raise keyring.errors.PasswordDeleteError(username)
        del self.items[(service, username)]


def test_keyring_backend_when_one_is_usable(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    memory = _MemoryKeyring()
    keyring.set_keyring(memory)
    try:
        store = CredentialStore(tmp_path, use_keyring=True)
        assert store.backend == "keyring"
        blob = store.seal(SECRET)
        assert SECRET.encode() not in blob
        assert list(memory.items.values()) == [SECRET]
        assert store.open(blob) == SECRET
        assert not (tmp_path / KEY_FILE_NAME).exists()  # no key file needed
        store.forget(blob)
        assert memory.items == {}
        with pytest.raises(CredentialError, match="missing from the OS keyring"):
            store.open(blob)
        assert CredentialStore(tmp_path, use_keyring=False).backend == "aes-256-gcm"
    finally:
        keyring.set_keyring(previous)

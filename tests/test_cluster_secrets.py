"""The pieces of a cluster that need no Redis: the shared secret key and its
fingerprint, key rotation, relay signatures, node DeviceIDs, UI sessions in
the database (all on a real SQLite file)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from pathlib import Path

import pytest

from streamforge.credentials import (
    FINGERPRINT_STATE_KEY,
    CredentialStore,
    KeyMismatchError,
    check_fingerprint,
    key_fingerprint,
)
from streamforge.errors import ConfigError, CredentialError
from streamforge.outputs.device_id import is_valid_device_id, node_device_id
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from streamforge.state import get_state, rotate_secret_key
from streamforge.streaming.relay import SIGNATURE_WINDOW, sign, signed_query, verify
from streamforge.web.ui.sessions import TOUCH_EVERY, UiSessions


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def test_secret_key_setting_is_checked_and_read_from_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^STREAMFORGE_SECRET_KEY: .*32 bytes in base64"):
        load_settings(data_dir=tmp_path, secret_key="c2hvcnQ=")
    key = _key()
    path = tmp_path / "key"
    path.write_text(key + "\n")
    from_file = load_settings(data_dir=tmp_path, secret_key_file=path)
    assert from_file.shared_secret_key() == base64.b64decode(key)
    assert load_settings(data_dir=tmp_path).shared_secret_key() is None
    with pytest.raises(ConfigError, match="not both"):
        load_settings(data_dir=tmp_path, secret_key=key, secret_key_file=path)


def test_fingerprint_is_stored_at_first_use_and_a_wrong_key_is_refused(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    store = CredentialStore(tmp_path, use_keyring=False, shared_key=key)
    saved: list[str] = []
    assert check_fingerprint(None, store, saved.append) == key_fingerprint(key)
    assert saved == [key_fingerprint(key)]
    assert check_fingerprint(saved[0], store, saved.append) == saved[0]
    other = CredentialStore(tmp_path, use_keyring=False, shared_key=secrets.token_bytes(32))
    with pytest.raises(KeyMismatchError) as refused:
        check_fingerprint(saved[0], other, saved.append)
    assert str(refused.value) == (
        "this node's secret key does not match the cluster's: "
        f"fingerprint {other.fingerprint}, expected {saved[0]}"
    )
    keyless = CredentialStore(tmp_path, use_keyring=False)
    with pytest.raises(KeyMismatchError, match="no STREAMFORGE_SECRET_KEY"):
        check_fingerprint(saved[0], keyless, saved.append)
    assert len(key_fingerprint(key)) == 16


async def test_rotation_reseals_every_password_in_one_go(tmp_path: Path) -> None:
    first = _key()
    settings = load_settings(data_dir=tmp_path, keyring=False, secret_key=first)
    runtime = Runtime.build(settings)
    try:
        for name in ("one", "two"):
            result = await runtime.accounts.add(
                name, server_url="http://127.0.0.1:9", username=name, password=f"{name}-pw",
                test=False,
            )  # fmt: skip
            assert result.ok
        fresh = secrets.token_bytes(32)
        new = CredentialStore(tmp_path, shared_key=fresh)
        assert rotate_secret_key(runtime.db, runtime.credentials, new) == 2
        assert get_state(runtime.db, FINGERPRINT_STATE_KEY) == key_fingerprint(fresh)
    finally:
        runtime.close()
    with pytest.raises(KeyMismatchError):
        Runtime.build(settings)
    rotated = Runtime.build(load_settings(data_dir=tmp_path, keyring=False,
                                          secret_key=base64.b64encode(fresh).decode()))  # fmt: skip
    try:
        access = rotated.accounts.stream_access({v.id for v in rotated.accounts.all()})
        assert len(access) == 2
        assert all(not isinstance(entry, str) for entry in access.values())
    finally:
        rotated.close()


def test_rotation_leaves_everything_as_it_was_when_a_secret_cannot_be_opened(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path, keyring=False, secret_key=_key())
    runtime = Runtime.build(settings)
    try:
        before = get_state(runtime.db, FINGERPRINT_STATE_KEY)
        wrong = CredentialStore(tmp_path, shared_key=secrets.token_bytes(32))
        asyncio.run(
            runtime.accounts.add(
                "one", server_url="http://127.0.0.1:9", username="u", password="pw", test=False
            )
        )
        with pytest.raises(CredentialError):
            rotate_secret_key(runtime.db, wrong, CredentialStore(tmp_path, shared_key=b"k" * 32))
        assert get_state(runtime.db, FINGERPRINT_STATE_KEY) == before
    finally:
        runtime.close()


def test_relay_signatures() -> None:
    secret = b"s" * 32
    query = dict(part.split("=") for part in signed_query(secret, 7, now=1000).split("&"))
    assert verify(secret, 7, query["ts"], query["sig"], now=1000)
    assert verify(secret, 7, query["ts"], query["sig"], now=1000 + SIGNATURE_WINDOW)
    assert not verify(secret, 7, query["ts"], query["sig"], now=1001 + SIGNATURE_WINDOW)
    assert not verify(secret, 8, query["ts"], query["sig"], now=1000)
    assert not verify(b"t" * 32, 7, query["ts"], query["sig"], now=1000)
    assert not verify(secret, 7, query["ts"], None, now=1000)
    assert not verify(secret, 7, "x", sign(secret, 7, 1000), now=1000)


def test_each_node_gets_its_own_valid_stable_device_id() -> None:
    base = "1053C0CA"
    ids = {node_device_id(base, secrets.token_hex(8)) for _ in range(50)}
    assert len(ids) == 50
    assert all(is_valid_device_id(i) for i in ids)
    assert node_device_id(base, "00aa11bb22cc33dd") == node_device_id(base, "00aa11bb22cc33dd")
    assert node_device_id(base, None) == base


def test_ui_sessions_in_the_database_are_shared_and_expire(runtime: Runtime) -> None:
    now = [1000.0]
    one = UiSessions(db=runtime.db, idle_timeout=300.0, clock=lambda: now[0])
    other = UiSessions(db=runtime.db, idle_timeout=300.0, clock=lambda: now[0])
    session = one.create()
    seen = other.get(session.token)
    assert seen is not None
    assert seen.csrf == session.csrf
    now[0] += TOUCH_EVERY + 50  # read: the idle timer is written back
    assert other.valid(session.token)
    now[0] += 250  # within the timeout of the written-back time only
    assert one.valid(session.token)
    now[0] += 301
    assert not one.valid(session.token)
    assert len(other) == 0
    fresh = one.create()
    other.revoke(fresh.token)
    assert one.get(fresh.token) is None

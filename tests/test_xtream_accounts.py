"""AccountService against the mock provider over real sockets and the real
SQLite file: add, test, probe, update, enable/disable, remove; the password is
never returned, never stored in plain text, and the async paths do their
database work off the event loop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select

from streamforge.db.models import Account, XtreamChannel
from streamforge.errors import ConfigError, ConflictError, NotFoundError
from streamforge.mockprovider import MockProvider
from streamforge.runtime import Runtime

SECRET = "alpha-secret"


@contextmanager
def statement_threads(runtime: Runtime) -> Iterator[list[str]]:
    """Names of the threads every SQL statement ran on, while the block runs."""
    seen: list[str] = []

    def record(*_args: Any) -> None:
        seen.append(threading.current_thread().name)

    event.listen(runtime.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", record)


async def _add(runtime: Runtime, provider: MockProvider, name: str = "alpha") -> None:
    result = await runtime.accounts.add(
        name, server_url=provider.base_url, username="alpha", password=SECRET
    )
    assert result.ok, result.message


async def test_add_tests_and_stores_the_panel_state(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    result = await runtime.accounts.add(
        " alpha ",
        server_url=mock_provider.base_url + "/",
        username="alpha",
        password=SECRET,
        priority=2,
    )
    assert result.ok, result.message
    assert result.message.startswith("ok: Active, 2 connection(s), expires ")
    view = runtime.accounts.get("alpha")
    assert (view.name, view.priority, view.server_url) == ("alpha", 2, mock_provider.base_url)
    assert (view.status, view.max_connections, view.last_error) == ("Active", 2, None)
    assert view.last_checked_at is not None
    assert view.allowed_output_formats
    assert [a.name for a in runtime.accounts.all()] == ["alpha"]
    assert runtime.events.flush()
    messages = [e.message for e in runtime.events.query(category="account")]
    assert "account 'alpha' added" in messages
    assert "account 'alpha' checked: Active" in messages


async def test_add_without_test_and_bad_input(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    untested = await runtime.accounts.add(
        "later", server_url=mock_provider.base_url, username="alpha", password=SECRET, test=False
    )
    assert (untested.ok, untested.message) == (True, "added (not tested)")
    assert untested.account.last_checked_at is None
    with pytest.raises(ConflictError):
        await runtime.accounts.add(
            "later", server_url=mock_provider.base_url, username="x", password="y"
        )
    for kwargs, match in (
        ({"server_url": "ftp://x", "username": "u", "password": "p"}, "server URL"),
        ({"server_url": "http://u:p@x", "username": "u", "password": "p"}, "own fields"),
        ({"server_url": "http://x", "username": "", "password": "p"}, "username"),
    ):
        with pytest.raises(ConfigError, match=match):
            await runtime.accounts.add("new", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name"):
        await runtime.accounts.add(" ", server_url="http://x", username="u", password="p")
    assert [a.name for a in runtime.accounts.all()] == ["later"]


async def test_wrong_password_and_expired(runtime: Runtime, mock_provider: MockProvider) -> None:
    wrong = await runtime.accounts.add(
        "bad", server_url=mock_provider.base_url, username="alpha", password="nope"
    )
    assert not wrong.ok
    assert "wrong username or password" in wrong.message
    assert "\n" not in wrong.message
    assert "nope" not in wrong.message
    assert wrong.account.status == "AuthFailed"
    assert not wrong.account.streamable
    expired = await runtime.accounts.add(
        "old", server_url=mock_provider.base_url, username="expired", password="expired-secret"
    )
    assert not expired.ok
    assert expired.account.status == "Expired"
    assert not expired.account.streamable
    assert runtime.events.flush()
    failed = runtime.events.query(category="account", level="warning")
    assert {e.details["account"] for e in failed} == {"bad"}


async def test_unreachable_server_is_stored_as_failing(runtime: Runtime) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await runtime.accounts.add(
        "offline", server_url=f"http://127.0.0.1:{port}", username="u", password="p"
    )
    assert not result.ok
    assert result.account.last_error
    assert runtime.accounts.get("offline").name == "offline"


async def test_a_failed_test_keeps_the_stored_state(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    await _add(runtime, mock_provider)
    good = runtime.accounts.get("alpha")
    runtime.accounts.update("alpha", password="not-it")
    result = await runtime.accounts.test("alpha")
    assert not result.ok
    after = result.account
    assert after.status == "AuthFailed"
    assert after.last_error == result.message
    assert (after.max_connections, after.exp_date) == (good.max_connections, good.exp_date)
    runtime.accounts.update("alpha", password=SECRET)
    again = await runtime.accounts.test("alpha")
    assert again.ok
    assert (again.account.status, again.account.last_error) == ("Active", None)


async def test_probe_stores_nothing(runtime: Runtime, mock_provider: MockProvider) -> None:
    ok = await runtime.accounts.probe(
        server_url=mock_provider.base_url, username="alpha", password=SECRET
    )
    assert ok["ok"] is True
    assert (ok["status"], ok["max_connections"]) == ("Active", 2)
    bad = await runtime.accounts.probe(
        server_url=mock_provider.base_url, username="alpha", password="nope"
    )
    assert bad["ok"] is False
    assert "nope" not in str(bad)
    assert SECRET not in str(ok)
    assert runtime.accounts.all() == []


async def test_enable_disable_update_remove(runtime: Runtime, mock_provider: MockProvider) -> None:
    await _add(runtime, mock_provider)
    await runtime.channel_sync.sync("alpha")
    assert not runtime.accounts.set_active("alpha", False).streamable
    assert runtime.accounts.set_active("alpha", True).streamable
    renamed = runtime.accounts.update("alpha", new_name="main", priority=3, user_agent="Kodi/20")
    assert (renamed.name, renamed.priority, renamed.user_agent) == ("main", 3, "Kodi/20")
    assert runtime.accounts.update("main", user_agent="").user_agent is None
    runtime.accounts.update("main", password=SECRET)
    assert (await runtime.accounts.test("main")).ok
    runtime.accounts.remove("main")
    with pytest.raises(NotFoundError):
        runtime.accounts.get("main")
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(XtreamChannel)) == 0


async def test_rename_clash_and_unknown_account(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    await _add(runtime, mock_provider, "alpha")
    await _add(runtime, mock_provider, "second")
    with pytest.raises(ConflictError):
        runtime.accounts.update("second", new_name="alpha")
    with pytest.raises(ConfigError, match="server URL"):
        runtime.accounts.update("second", server_url="nonsense")
    assert runtime.accounts.get("second").server_url == mock_provider.base_url
    for call in (
        lambda: runtime.accounts.get("nobody"),
        lambda: runtime.accounts.set_active("nobody", True),
        lambda: runtime.accounts.remove("nobody"),
    ):
        with pytest.raises(NotFoundError, match="nobody"):
            call()
    with pytest.raises(NotFoundError):
        await runtime.accounts.test("nobody")


async def test_the_password_is_never_returned_nor_stored_plain(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    await _add(runtime, mock_provider)
    view = runtime.accounts.get("alpha")
    shown = [repr(view), str(view.as_dict()), repr(runtime.accounts.all())]
    assert view.as_dict()["username"] == view.username_masked == "al•ha"
    access = runtime.accounts.stream_access({view.id})[view.id]
    shown.append(repr(access))
    assert repr(access) == "StreamAccess(<redacted>)"
    for text in shown:
        assert SECRET not in text
    with runtime.db.session() as s:
        blob = s.scalar(select(Account.password_encrypted).where(Account.name == "alpha"))
    assert blob is not None
    assert SECRET.encode() not in blob
    # Changing the password re-seals it: a new blob, the old one forgotten.
    runtime.accounts.update("alpha", password="another-secret")
    with runtime.db.session() as s:
        resealed = s.scalar(select(Account.password_encrypted).where(Account.name == "alpha"))
    assert resealed != blob
    assert b"another-secret" not in (resealed or b"")
    assert runtime.events.flush()
    for entry in runtime.events.query(limit=1000):
        assert SECRET not in str(entry.as_dict())
        assert "another-secret" not in str(entry.as_dict())


async def test_add_and_test_run_their_database_work_off_the_loop(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    loop_thread = threading.current_thread().name
    with statement_threads(runtime) as seen:
        await _add(runtime, mock_provider)
        await runtime.accounts.test("alpha")
        assert runtime.events.flush()
    assert seen
    assert loop_thread not in seen
    assert any(name.startswith("db-write") for name in seen)
    assert any(name.startswith("db-read") for name in seen)

"""Accounts and channel sync together (add, test, sync) and the accounts API,
against the mock provider over real sockets with the real SQLite database.
AccountService alone is tested in test_xtream_accounts.py, ChannelSync alone in
test_xtream_sync.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from streamforge.db.models import Account, XtreamChannel
from streamforge.errors import (
    ConflictError,
)
from streamforge.mockprovider import MockProvider
from streamforge.runtime import Runtime


def _channels(runtime: Runtime, account: str) -> dict[int, str]:
    with runtime.db.session() as s:
        rows = s.execute(
            select(XtreamChannel.stream_id, XtreamChannel.name)
            .join(Account, Account.id == XtreamChannel.account_id)
            .where(Account.name == account)
        ).all()
    return {sid: name for sid, name in rows}


async def test_add_test_and_sync(runtime: Runtime, mock_provider: MockProvider) -> None:
    result = await runtime.accounts.add(
        "alpha", server_url=mock_provider.base_url, username="alpha", password="alpha-secret"
    )
    assert result.ok, result.message
    view = result.account
    assert (view.status, view.max_connections, view.streamable) == ("Active", 2, True)
    assert view.exp_date is not None
    assert view.username_masked == "al•ha"
    report = await runtime.channel_sync.sync("alpha")
    assert (report.streams, report.added, report.categories) == (6, 6, 4)
    stored = _channels(runtime, "alpha")
    assert stored[101] == "UK: BBC One FHD"
    with runtime.db.session() as s:
        q = s.scalar(select(XtreamChannel.qualities).where(XtreamChannel.stream_id == 106))
    assert q["tier"] == "UHD"
    assert q["category"] == "UK | 4K"
    again = await runtime.channel_sync.sync("alpha")
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 6, 0)
    with pytest.raises(ConflictError):
        await runtime.accounts.add(
            "alpha", server_url=mock_provider.base_url, username="x", password="y"
        )


def test_accounts_api_never_shows_the_password(
    admin: TestClient, mock_provider_thread: object
) -> None:
    base = mock_provider_thread.base_url  # type: ignore[attr-defined]
    created = admin.post(
        "/api/v1/accounts",
        json={"name": "alpha", "server_url": base, "username": "alpha", "password": "alpha-secret"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["ok"] is True
    probe = admin.post(
        "/api/v1/accounts/probe", json={"server_url": base, "username": "alpha", "password": "nope"}
    )
    assert probe.json()["ok"] is False
    listing = admin.get("/api/v1/accounts")
    one = admin.get("/api/v1/accounts/alpha")
    for answer in (created, listing, one, probe):
        assert "alpha-secret" not in answer.text
        assert "nope" not in answer.text
    assert one.json()["username"] == "al•ha"
    sync = admin.post("/api/v1/accounts/alpha/sync")
    assert sync.status_code == 202
    assert admin.get("/api/v1/accounts/nobody").status_code == 404
    bad = admin.post(
        "/api/v1/accounts",
        json={"name": "x", "server_url": "ftp://x", "username": "u", "password": "p"},
    )
    assert bad.status_code == 400
    assert "server URL" in bad.json()["error"]

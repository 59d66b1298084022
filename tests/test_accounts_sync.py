"""Accounts and channel sync against the mock provider over real sockets,
with the real SQLite database."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from streamforge.db.models import Account, XtreamChannel
from streamforge.errors import (
    AccountExpiredError,
    ConflictError,
    NotFoundError,
    ProviderBadResponse,
)
from streamforge.mockprovider import Catalog, MediaLibrary, MockProvider
from streamforge.mockprovider.faults import ApiQuirk
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
    with pytest.raises(AccountExpiredError, match=r"[Ee]xpired"):
        await runtime.channel_sync.sync("old")


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


async def test_provider_failure_keeps_the_previous_list(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    await runtime.accounts.add(
        "alpha", server_url=mock_provider.base_url, username="alpha", password="alpha-secret"
    )
    await runtime.channel_sync.sync("alpha")
    before = _channels(runtime, "alpha")
    for kind in ("malformed_json", "html", "empty"):
        mock_provider.add_quirk(ApiQuirk(kind, targets=frozenset({"get_live_streams"})))
        with pytest.raises(ProviderBadResponse) as info:
            await runtime.channel_sync.sync("alpha")
        assert "\n" not in str(info.value)
        assert "alpha-secret" not in str(info.value)
        mock_provider.clear_quirks()
        assert _channels(runtime, "alpha") == before
    assert runtime.events.flush()
    assert runtime.events.query(category="account", level="error")


async def test_dropped_streams_lose_their_mappings_manual_ones_stay(
    runtime: Runtime, mock_media: MediaLibrary
) -> None:
    full = Catalog.demo()
    async with MockProvider(full, host="127.0.0.1", port=0, media=mock_media) as mp:
        await runtime.accounts.add(
            "alpha", server_url=mp.base_url, username="alpha", password="alpha-secret"
        )
        await runtime.channel_sync.sync("alpha")
        xml_path = Path(runtime.settings.data_dir) / "guide.xml"
        xml_path.write_bytes(
            b'<?xml version="1.0"?><tv><channel id="bbcone.uk"><display-name>BBC One'
            b"</display-name></channel></tv>"
        )
        runtime.epg.add("g", file=str(xml_path))
        await runtime.epg.refresh("g")
        runtime.matching.run()
        view = runtime.channels.get("bbcone.uk")
        ids = {m.stream_id: m.xtream_channel_id for m in view.mappings}
        assert set(ids) == {101, 102, 106}
        runtime.channels.set_primary("bbcone.uk", ids[102])  # a manual choice
    fewer = dataclasses.replace(
        full,
        streams=tuple(s for s in full.streams if s.stream_id not in {101, 106}),
        accounts=tuple(
            dataclasses.replace(a, stream_ids=frozenset({102, 103, 104, 105}))
            if a.username == "alpha"
            else a
            for a in full.accounts
        ),
    )
    async with MockProvider(fewer, host="127.0.0.1", port=0, media=mock_media) as mp:
        runtime.accounts.update("alpha", server_url=mp.base_url)
        report = await runtime.channel_sync.sync("alpha")
    assert report.removed == 2
    assert report.mappings_removed == 2
    after = runtime.channels.get("bbcone.uk")
    assert [m.stream_id for m in after.mappings] == [102]
    assert after.mappings[0].is_manual
    assert runtime.events.flush()
    lost = runtime.events.query(category="mapping", level="warning")
    assert {e.details["stream"] for e in lost} == {"UK: BBC One FHD", "UK: BBC One 4K"}


async def test_enable_disable_update_remove(runtime: Runtime, mock_provider: MockProvider) -> None:
    await runtime.accounts.add(
        "alpha", server_url=mock_provider.base_url, username="alpha", password="alpha-secret"
    )
    await runtime.channel_sync.sync("alpha")
    assert not runtime.accounts.set_active("alpha", False).streamable
    assert runtime.accounts.set_active("alpha", True).streamable
    renamed = runtime.accounts.update("alpha", new_name="main", priority=3, user_agent="Kodi/20")
    assert (renamed.name, renamed.priority, renamed.user_agent) == ("main", 3, "Kodi/20")
    runtime.accounts.update("main", password="alpha-secret")
    assert (await runtime.accounts.test("main")).ok
    runtime.accounts.remove("main")
    with pytest.raises(NotFoundError):
        runtime.accounts.get("main")
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(XtreamChannel)) == 0


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

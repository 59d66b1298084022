"""ChannelSync against the mock provider over real sockets and the real SQLite
file: one transaction on the database's writer thread, dropped streams' mappings
removed and logged, manual mappings kept, a provider failure keeps the previous
list, and no database work on the event loop."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from streamforge.db.models import Account, XtreamChannel
from streamforge.errors import AccountExpiredError, ProviderBadResponse
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


@contextmanager
def database_activity(runtime: Runtime) -> Iterator[dict[str, list[str]]]:
    """Thread names of every statement and of every commit while the block runs."""
    seen: dict[str, list[str]] = {"statements": [], "commits": []}

    def statement(*_args: Any) -> None:
        seen["statements"].append(threading.current_thread().name)

    def commit(*_args: Any) -> None:
        seen["commits"].append(threading.current_thread().name)

    event.listen(runtime.db.engine, "before_cursor_execute", statement)
    event.listen(runtime.db.engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", statement)
        event.remove(runtime.db.engine, "commit", commit)


async def _add(runtime: Runtime, base_url: str) -> None:
    result = await runtime.accounts.add(
        "alpha", server_url=base_url, username="alpha", password="alpha-secret"
    )
    assert result.ok, result.message


async def test_one_transaction_on_the_writer_and_nothing_on_the_loop(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    await _add(runtime, mock_provider.base_url)
    assert runtime.events.flush()
    stages: list[str] = []
    loop_thread = threading.current_thread().name
    with database_activity(runtime) as seen:
        report = await runtime.channel_sync.sync(
            "alpha", lambda stage, _done, _total: stages.append(stage)
        )
    assert (report.streams, report.added, report.categories) == (6, 6, 4)
    assert loop_thread not in seen["statements"]
    # Exactly one transaction wrote: the store, on the writer thread.
    writer_commits = [name for name in seen["commits"] if name.startswith("db-write")]
    assert len(writer_commits) == 1
    assert stages[:3] == ["account", "categories", "streams"]
    assert stages[-1] == "done"
    assert "store" in stages
    with runtime.db.session() as s:
        synced = s.scalar(select(Account.last_synced_at).where(Account.name == "alpha"))
    assert synced is not None


async def test_resync_counts_unchanged_and_changed(
    runtime: Runtime, mock_media: MediaLibrary
) -> None:
    full = Catalog.demo()
    async with MockProvider(full, host="127.0.0.1", port=0, media=mock_media) as mp:
        await _add(runtime, mp.base_url)
        await runtime.channel_sync.sync("alpha")
        again = await runtime.channel_sync.sync("alpha")
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 6, 0)
    renamed = dataclasses.replace(
        full,
        streams=tuple(
            dataclasses.replace(s, name="UK: BBC One HD (new)") if s.stream_id == 102 else s
            for s in full.streams
        ),
    )
    async with MockProvider(renamed, host="127.0.0.1", port=0, media=mock_media) as mp:
        runtime.accounts.update("alpha", server_url=mp.base_url)
        changed = await runtime.channel_sync.sync("alpha")
    assert (changed.added, changed.updated, changed.unchanged, changed.removed) == (0, 1, 5, 0)
    assert _channels(runtime, "alpha")[102] == "UK: BBC One HD (new)"


async def test_provider_failure_keeps_the_previous_list(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    await _add(runtime, mock_provider.base_url)
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


async def test_disabled_and_expired_accounts_keep_their_channels(
    runtime: Runtime, mock_provider: MockProvider
) -> None:
    await _add(runtime, mock_provider.base_url)
    await runtime.channel_sync.sync("alpha")
    before = _channels(runtime, "alpha")
    runtime.accounts.set_active("alpha", False)
    with pytest.raises(AccountExpiredError, match="disabled"):
        await runtime.channel_sync.sync("alpha")
    assert _channels(runtime, "alpha") == before
    expired = await runtime.accounts.add(
        "old", server_url=mock_provider.base_url, username="expired", password="expired-secret"
    )
    assert not expired.ok
    with pytest.raises(AccountExpiredError, match=r"[Ee]xpired"):
        await runtime.channel_sync.sync("old")
    assert _channels(runtime, "old") == {}


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

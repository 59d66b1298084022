"""The way back on a one-connection account: the backup holds the account's only
connection, so the session swaps (break-before-make) to the healed primary —
never two connections at the provider, and a short gap for the viewer."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from streamforge.mockprovider import MockProvider
from streamforge.mockprovider.faults import Fault
from tests.mockfixtures import cc_errors
from tests.streamharness import StreamClient, stack, wait_until, whole_packets


async def test_a_backup_on_the_same_one_connection_account_swaps_back_to_the_primary(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with (
        stack(tmp_path, mock_provider, recovery_period=3.0) as s,
        aiohttp.ClientSession() as http,
    ):
        # Both streams on beta, which allows one connection.
        number = s.order("bbcone.uk", [("beta", 201), ("beta", 203)])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 1000)
        mock_provider.set_fault(201, Fault("eof", times=1))
        events = s.runtime.events

        def kinds() -> dict[str, dict[str, object]]:
            assert events.flush()
            return {str(e.details.get("kind")): e.details for e in events.query(category="stream")}

        await wait_until(lambda: "failover" in kinds(), within=10)
        assert kinds()["failover"]["to_stream_name"] == "|DE| DAS ERSTE"
        await wait_until(lambda: "upgrade" in kinds(), within=15)
        upgrade = kinds()["upgrade"]
        assert upgrade["mode"] == "swap"
        assert upgrade["to_stream_name"] == "|UK| BBC ONE SD"
        assert float(upgrade["viewer_gap_ms"]) < 1500  # type: ignore[arg-type]
        before = len(client.data)
        await client.wait_bytes(before + 188 * 1000)
        assert not client.ended.is_set()
        await client.stop()
        # The panel enforces beta's one connection on open sockets: an overlap
        # would have been refused (or, in kill-oldest mode, killed the viewer's).
        stats = mock_provider.stats()
        assert stats.closes(reason="limit_refused", account="beta") == []
        assert stats.closes(reason="kicked", account="beta") == []
        assert stats.opens(account="beta") == 3  # primary, backup, primary again
        data = bytes(client.data[: len(client.data) // 188 * 188])
        assert whole_packets(data)
        assert cc_errors(data) == 0
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)

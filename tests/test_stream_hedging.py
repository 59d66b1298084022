"""Hedged failover rounds against the mock provider over real sockets: a backup
that hangs never costs the viewer the channel while a healthy stream remains.

The primary ends; the first backup (same account, its one connection) hangs in
one of the ways real panels do; the third stream, on another account, is
healthy. The viewer's response must stay open and continue on the third stream
within the hedge delay plus its time to first byte — never after the 2 s budget
gave up on it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from streamforge.mockprovider import MockProvider
from streamforge.mockprovider.faults import Fault
from tests.mockfixtures import cc_errors
from tests.streamharness import StreamClient, stack, wait_until, whole_packets

PRIMARY, HANGING, HEALTHY = ("alpha", 101), ("alpha", 102), ("beta", 201)


@pytest.mark.parametrize(
    ("hang", "loser_reason"),
    [
        (Fault("slow_headers", delay=30.0), "hung"),  # accepts, answers nothing
        (Fault("stall", after=0.0), "hung"),  # headers, then nothing
        (Fault("drip", after=0.0, rate=8), "hung"),  # headers, then a trickle
    ],
    ids=["no-headers", "headers-then-nothing", "headers-then-trickle"],
)
async def test_a_hanging_backup_is_hedged_onto_the_healthy_stream(
    tmp_path: Path, mock_provider: MockProvider, hang: Fault, loser_reason: str
) -> None:
    async with (
        stack(tmp_path, mock_provider, hedge_delay=0.4) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [PRIMARY, HANGING, HEALTHY])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 300)
        mock_provider.set_fault(102, hang)
        fault_at = asyncio.get_running_loop().time()
        mock_provider.set_fault(101, Fault("eof"))
        events = s.runtime.events

        def failover() -> dict[str, object] | None:
            assert events.flush()
            found = [
                e.details
                for e in events.query(category="stream")
                if e.details.get("kind") == "failover"
            ]
            return found[0] if found else None

        await wait_until(lambda: failover() is not None, within=10)
        before = len(client.data)
        await client.wait_bytes(before + 188 * 500)
        assert not client.ended.is_set()
        details = failover()
        assert details is not None
        assert details["to_account"] == "beta"
        assert details["hedges"] == 1
        assert [f["reason"] for f in details["failures"]] == [loser_reason]  # type: ignore[union-attr]
        assert details["within_budget"] is True
        # What the viewer saw: no wait anywhere near the old 2 s give-up.
        assert client.longest_gap(since=fault_at) < 1.5
        session = s.runtime.streams.sessions[0]
        assert session.last_gap_ms is not None
        assert session.last_gap_ms < 1500
        # The hanging backup is closed at once; one connection per account.
        await mock_provider.wait_for(lambda st: st.open_connections(stream_id=102) == 0)
        stats = mock_provider.stats()
        assert stats.open_connections(stream_id=201) == 1
        data = bytes(client.data[: len(client.data) // 188 * 188])
        assert whole_packets(data)
        assert cc_errors(data) == 0
        await client.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)

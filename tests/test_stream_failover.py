"""Failover against the mock provider over real sockets: one unbroken client
response across every kind of provider failure."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from streamforge.mockprovider import MockProvider
from streamforge.mockprovider.faults import Fault
from tests.mockfixtures import cc_errors
from tests.streamharness import StreamClient, stack, wait_until, whole_packets

PRIMARY, BACKUP, SECOND_BACKUP = ("alpha", 101), ("alpha", 102), ("beta", 201)


def _stream_events(runtime: object) -> list[dict[str, object]]:
    events = runtime.events  # type: ignore[attr-defined]
    assert events.flush()
    return [
        e.details | {"message": e.message, "level": e.level}
        for e in events.query(category="stream")
    ]


async def test_tune_streams_valid_ts(tmp_path: Path, mock_provider: MockProvider) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 2000)
        assert client.status == 200
        assert client.headers["Content-Type"] == "video/mp2t"
        assert "Content-Length" not in client.headers
        data = bytes(client.data[: len(client.data) // 188 * 188])
        assert whole_packets(data)
        assert mock_provider.stats().open_connections(stream_id=101) == 1
        await client.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault("eof", after=0.8), "end_of_stream"),
        (Fault("reset", after=0.8), "read_error"),
        (Fault("stall", after=0.8), "stall"),
        (Fault("garbage", after=0.8), "invalid_content"),
    ],
)
async def test_mid_stream_failover(
    tmp_path: Path, mock_provider: MockProvider, fault: Fault, reason: str
) -> None:
    async with (
        stack(tmp_path, mock_provider, stall_timeout=1.0) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 500)
        mock_provider.set_fault(101, fault)
        await wait_until(
            lambda: any(e.get("reason") == reason for e in _stream_events(s.runtime)), within=10
        )
        before = len(client.data)
        await client.wait_bytes(before + 188 * 1000)
        assert not client.ended.is_set()
        await mock_provider.wait_for(lambda st: st.open_connections(stream_id=102) == 1)
        events = [e for e in _stream_events(s.runtime) if e.get("reason") == reason]
        failover = events[0]
        assert failover["from_stream"] == "UK: BBC One FHD"
        assert failover["to_stream"] == "UK: BBC One HD"
        assert failover["from_account"] == "alpha"
        assert failover["guide_number"] == number
        assert isinstance(failover["gap_ms"], int)
        data = bytes(client.data[: len(client.data) // 188 * 188])
        assert whole_packets(data)
        assert cc_errors(data) == 0
        await client.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)

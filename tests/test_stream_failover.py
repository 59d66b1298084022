"""Failover against the mock provider over real sockets: one unbroken client
response across every kind of provider failure."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
import pytest

from streamforge.mockprovider import MockProvider
from streamforge.mockprovider.faults import Fault
from tests.mockfixtures import cc_errors
from tests.streamharness import StreamClient, stack, wait_until, whole_packets

PRIMARY, BACKUP, SECOND_BACKUP = ("alpha", 101), ("alpha", 102), ("beta", 201)
ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:test-admin-password").decode()}


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
        await client.wait_bytes(188 * 300)
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
        (Fault("stall", after=0.8), "behind_live"),
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
        await client.wait_bytes(188 * 300)
        mock_provider.set_fault(101, fault)
        await wait_until(
            lambda: any(e.get("reason") == reason for e in _stream_events(s.runtime)), within=10
        )
        before = len(client.data)
        await client.wait_bytes(before + 188 * 500)
        assert not client.ended.is_set()
        await mock_provider.wait_for(lambda st: st.open_connections(stream_id=102) == 1)
        events = [e for e in _stream_events(s.runtime) if e.get("reason") == reason]
        failover = events[0]
        assert failover["from_stream_name"] == "UK: BBC One FHD"
        assert failover["to_stream_name"] == "UK: BBC One HD"
        assert (failover["from_stream"], failover["to_stream"]) == ("alpha/101", "alpha/102")
        assert (failover["from_stream_id"], failover["to_stream_id"]) == (101, 102)
        assert failover["from_account"] == "alpha"
        assert failover["guide_number"] == number
        assert isinstance(failover["gap_ms"], int)
        data = bytes(client.data[: len(client.data) // 188 * 188])
        assert whole_packets(data)
        assert cc_errors(data) == 0
        await client.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault("refuse"), "connection_error"),
        (Fault("status", status=404), "http_error"),
        (Fault("html"), "invalid_content"),
        (Fault("empty"), "invalid_content"),
        # Hedged: the next stream is opened alongside after hedge_delay and wins,
        # so the primary is closed as hung long before its header timeout.
        (Fault("slow_headers", delay=5.0), "hung"),
    ],
)
async def test_tune_time_failover(
    tmp_path: Path, mock_provider: MockProvider, fault: Fault, reason: str
) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        mock_provider.set_fault(101, fault)
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 300)
        assert client.status == 200
        await mock_provider.wait_for(lambda st: st.open_connections(stream_id=102) == 1)
        (event,) = [e for e in _stream_events(s.runtime) if e.get("reason") == reason]
        assert event["to_stream_name"] == "UK: BBC One HD"
        assert event["to_stream"] == "alpha/102"
        assert event["phase"] == "tune"
        await client.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)


async def test_account_level_failure_skips_the_accounts_other_streams(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        mock_provider.set_fault(101, Fault("status", status=403))
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 300)
        await mock_provider.wait_for(lambda st: st.open_connections(stream_id=201) == 1)
        stats = mock_provider.stats()
        assert stats.opens(stream_id=102) == 0  # alpha's other stream was skipped
        (event,) = [e for e in _stream_events(s.runtime) if e.get("to_stream")]
        assert event["reason"] == "credential_error"
        assert event["to_account"] == "beta"
        assert [k["stream_name"] for k in event["skipped"]] == ["UK: BBC One HD"]
        assert [k["stream"] for k in event["skipped"]] == ["alpha/102"]
        await client.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)


async def test_priority_order_across_accounts(tmp_path: Path, mock_provider: MockProvider) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [SECOND_BACKUP, PRIMARY, BACKUP])
        mock_provider.set_fault(201, Fault("status", status=500))
        mock_provider.set_fault(101, Fault("status", status=502))
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 300)
        opens = [e.stream_id for e in mock_provider.stats().events if e.event == "open"]
        assert opens[:3] == [201, 101, 102]
        await client.stop()


async def test_upgrade_back_to_the_primary(tmp_path: Path, mock_provider: MockProvider) -> None:
    async with (
        stack(tmp_path, mock_provider, recovery_period=1.5) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 300)
        mock_provider.set_fault(101, Fault("eof", after=0.0, times=1))
        await mock_provider.wait_for(lambda st: st.open_connections(stream_id=102) == 1)
        await wait_until(
            lambda: any(
                e.get("kind") == "upgrade" or "upgrade" in str(e.get("message"))
                for e in _stream_events(s.runtime)
            ),
            within=15,
        )
        await mock_provider.wait_for(
            lambda st: (
                st.open_connections(stream_id=101) == 1 and st.open_connections(stream_id=102) == 0
            )
        )
        before = len(client.data)
        await client.wait_bytes(before + 188 * 300)
        data = bytes(client.data[: len(client.data) // 188 * 188])
        assert whole_packets(data)
        assert cc_errors(data) == 0
        sessions = s.runtime.streams.snapshot()
        assert sessions[0]["stream"] == "UK: BBC One FHD"
        assert sessions[0]["upgrades"] == 1
        await client.stop()


async def test_all_streams_fail_ends_the_response_with_an_error_event(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 300)
        for stream_id in (102, 201):
            mock_provider.set_fault(stream_id, Fault("status", status=500))
        mock_provider.set_fault(101, Fault("reset", after=0.0))
        async with asyncio.timeout(10):
            await client.ended.wait()
        errors = [e for e in _stream_events(s.runtime) if e["level"] == "error"]
        assert len(errors) == 1
        assert errors[0]["to_stream"] is None
        assert "all streams failed" in str(errors[0]["message"])
        size = len(client.data)
        assert size % 188 == 0
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)
        assert s.runtime.streams.snapshot() == []


async def test_two_clients_share_one_upstream_and_nothing_leaks(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        first = StreamClient(http, f"{s.base_url}/auto/v{number}")
        second = StreamClient(http, f"{s.base_url}/auto/v{number}?transcode=heavy")
        first.start()
        await first.wait_bytes(188 * 100)
        second.start()
        await second.wait_bytes(188 * 300)
        assert mock_provider.stats().open_connections() == 1
        assert s.runtime.streams.snapshot()[0]["clients"] == 2
        await first.stop()
        await wait_until(lambda: s.runtime.streams.snapshot()[0]["clients"] == 1)
        assert mock_provider.stats().open_connections() == 1
        # the last client vanishes in the middle of a failover: nothing may stay open
        mock_provider.set_fault(101, Fault("stall", after=0.0))
        mock_provider.set_fault(102, Fault("slow_headers", delay=5.0))
        await mock_provider.wait_for(lambda st: st.open_connections(stream_id=102) == 1, timeout=10)
        await second.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=1.5)
        await wait_until(lambda: s.runtime.streams.snapshot() == [])
        assert s.runtime.streams.slots.snapshot() == {}


async def test_full_account_is_all_tuners_in_use(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    # Without the handover: the second tune comes from the same address (loopback).
    async with (
        stack(tmp_path, mock_provider, tune_handover=False) as s,
        aiohttp.ClientSession() as http,
    ):
        one = s.order("bbcone.uk", [SECOND_BACKUP])
        two = s.order("espn.us", [("beta", 202)])
        client = StreamClient(http, f"{s.base_url}/auto/v{one}")
        client.start()
        await client.wait_bytes(188 * 100)
        async with http.get(f"{s.base_url}/auto/v{two}") as answer:
            assert answer.status == 503
            assert answer.headers["X-HDHomeRun-Error"].startswith("805")
        assert mock_provider.stats().open_connections(account="beta") == 1
        await client.stop()


async def test_open_breakers_answer_503_without_touching_the_provider(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with (
        stack(tmp_path, mock_provider, breaker_threshold=1) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [PRIMARY])
        mock_provider.set_fault(101, Fault("status", status=500))
        async with http.get(f"{s.base_url}/auto/v{number}") as answer:
            assert answer.status == 503
            assert answer.headers["X-HDHomeRun-Error"].startswith("807")
        opened = mock_provider.stats().opens(stream_id=101)
        async with http.get(f"{s.base_url}/auto/v{number}") as answer:
            assert answer.status == 503
            assert answer.headers["X-HDHomeRun-Error"].startswith("806")
            assert "failed recently" in (await answer.json())["error"]
        assert mock_provider.stats().opens(stream_id=101) == opened
        async with http.get(f"{s.base_url}/api/v1/breakers", headers=ADMIN) as answer:
            (breaker,) = await answer.json()
        assert breaker["state"] == "open"
        events = _stream_events(s.runtime)
        assert any(e["kind"] == "breaker_open" for e in events)
        assert any(e["level"] == "error" for e in events)


async def test_sessions_api_metrics_and_quality_cap(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        client = StreamClient(http, f"{s.base_url}/auto/v{number}?quality=sd")
        client.start()
        await client.wait_bytes(188 * 300)
        assert mock_provider.stats().open_connections(stream_id=201) == 1
        async with http.get(f"{s.base_url}/api/v1/sessions", headers=ADMIN) as answer:
            (session,) = await answer.json()
        assert session["stream"] == "|UK| BBC ONE SD"
        assert session["quality"] == "sd"
        assert session["clients"] == 1
        assert session["guide_number"] == number
        assert session["bytes"] > 0
        async with http.get(f"{s.base_url}/api/v1/sessions") as answer:
            assert answer.status == 401
        async with http.get(f"{s.base_url}/metrics") as answer:
            text = await answer.text()
        assert "streamforge_sessions 1.0" in text
        assert "streamforge_clients 1.0" in text
        async with http.get(f"{s.base_url}/auto/v{number}?quality=8k") as answer:
            assert answer.status == 400
        await client.stop()


async def test_linger_keeps_the_upstream_for_quick_zapping(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    async with (
        stack(tmp_path, mock_provider, session_linger=1.0) as s,
        aiohttp.ClientSession() as http,
    ):
        number = s.order("bbcone.uk", [PRIMARY])
        first = StreamClient(http, f"{s.base_url}/auto/v{number}")
        first.start()
        await first.wait_bytes(188 * 100)
        await first.stop()
        await wait_until(lambda: s.runtime.streams.snapshot()[0]["clients"] == 0)
        again = StreamClient(http, f"{s.base_url}/auto/v{number}")
        again.start()
        await again.wait_bytes(188 * 100)
        assert mock_provider.stats().opens(stream_id=101) == 1  # the same upstream
        await again.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)


async def test_undecryptable_password_is_a_credential_error(
    tmp_path: Path, mock_provider: MockProvider
) -> None:
    from sqlalchemy import update

    from streamforge.db.models import Account

    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        number = s.order("bbcone.uk", [PRIMARY, BACKUP, SECOND_BACKUP])
        with s.runtime.db.session() as session:
            session.execute(
                update(Account).where(Account.name == "alpha").values(password_encrypted=b"bad")
            )
        client = StreamClient(http, f"{s.base_url}/auto/v{number}")
        client.start()
        await client.wait_bytes(188 * 300)
        assert mock_provider.stats().opens(account="alpha") == 0
        (event,) = [e for e in _stream_events(s.runtime) if e.get("to_stream")]
        assert event["reason"] == "credential_error"
        assert event["to_account"] == "beta"
        assert "corrupt" in str(event["failures"][0]["detail"])
        await client.stop()

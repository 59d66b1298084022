"""Mock provider runners and control surfaces: thread runner, /_control API, CLI, subprocess."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from streamforge.errors import ProviderError
from streamforge.mockprovider import (
    ApiQuirk,
    ControlClient,
    Fault,
    FaultKind,
    MediaLibrary,
    MockProviderProcess,
    MockProviderThread,
    QuirkKind,
)
from streamforge.mockprovider.cli import app, parse_fault_spec
from streamforge.mockprovider.connections import LimitMode
from streamforge.mockprovider.media import TS_PACKET


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def read_some_ts(url: str, n: int = TS_PACKET * 50) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read(n)


def test_thread_runner_serves_and_counts(mock_provider_thread: MockProviderThread) -> None:
    mp = mock_provider_thread
    data = read_some_ts(mp.stream_url(101))
    assert data[0] == 0x47
    stats = mp.wait_for(lambda s: s.open_connections() == 0 and s.total_closed == 1)
    assert stats.closes()[0].stream_id == 101
    mp.set_fault(101, Fault(FaultKind.STATUS, status=410))
    with pytest.raises(urllib.error.HTTPError) as info:
        read_some_ts(mp.stream_url(101))
    assert info.value.code == 410
    info.value.close()
    mp.recover(101)
    assert read_some_ts(mp.stream_url(101))[0] == 0x47
    mp.wait_for(lambda s: s.open_connections() == 0)


def test_control_api_round_trip(mock_provider_thread: MockProviderThread) -> None:
    mp = mock_provider_thread
    control = ControlClient(mp.base_url)
    control.set_fault(102, Fault(FaultKind.STATUS, status=404, times=1))
    faults = control.request("GET", "/faults")
    assert faults["faults"]["102"]["status"] == 404
    with pytest.raises(urllib.error.HTTPError) as info:
        read_some_ts(mp.stream_url(102))
    assert info.value.code == 404
    info.value.close()
    assert read_some_ts(mp.stream_url(102))[0] == 0x47  # times=1 used up

    control.add_quirk(ApiQuirk(QuirkKind.EMPTY))
    status, body = http_get(f"{mp.base_url}/player_api.php?username=alpha&password=alpha-secret")
    assert (status, body) == (200, b"")
    control.clear_quirks()
    status, body = http_get(f"{mp.base_url}/player_api.php?username=alpha&password=alpha-secret")
    assert json.loads(body)["user_info"]["auth"] == 1

    control.request("POST", "/accounts/alpha", {"max_connections": 5})
    assert mp.catalog.account("alpha").max_connections == 5
    control.request("POST", "/limit_mode", {"mode": "refuse_458"})
    assert mp.provider.state.registry.limit_mode is LimitMode.REFUSE_458

    stats = control.wait_for(lambda s: s.open_connections() == 0)
    assert stats.total_opened >= 2
    assert stats.closes(reason="status")

    with pytest.raises(ProviderError, match="400"):
        control.request("POST", "/streams/1/fault", {"kind": "explode"})
    with pytest.raises(ProviderError, match="404"):
        control.request("POST", "/accounts/ghost", {"status": "Banned"})
    with pytest.raises(ProviderError, match="400"):
        control.request("POST", "/accounts/alpha", {"username": "x"})


def test_control_kill(mock_provider_thread: MockProviderThread) -> None:
    mp = mock_provider_thread
    control = ControlClient(mp.base_url)
    with urllib.request.urlopen(mp.stream_url(104), timeout=5) as resp:
        resp.read(TS_PACKET)
        mp.wait_for(lambda s: s.open_connections(stream_id=104) == 1)
        assert control.kill(104) == 1
        stats = mp.wait_for(lambda s: s.open_connections() == 0)
    assert stats.closes(stream_id=104)[-1].reason == "killed"


def test_control_client_errors() -> None:
    with pytest.raises(Exception, match="http"):
        ControlClient("ftp://127.0.0.1:1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProviderError, match="unreachable"):
        ControlClient(f"http://127.0.0.1:{port}", timeout=2).stats()


def test_cli_commands_drive_a_running_provider(mock_provider_thread: MockProviderThread) -> None:
    mp = mock_provider_thread
    runner = CliRunner()
    url = ["--url", mp.base_url]
    result = runner.invoke(app, ["fault", "103", "stall", "--after", "2", *url])
    assert result.exit_code == 0, result.output
    assert mp.provider.state.board.faults()[103] == Fault(FaultKind.STALL, after=2.0)
    result = runner.invoke(app, ["recover", "103", *url])
    assert result.exit_code == 0, result.output
    assert 103 not in mp.provider.state.board.faults()
    result = runner.invoke(app, ["quirk", "html", "--target", "get_live_streams", *url])
    assert result.exit_code == 0, result.output
    assert mp.provider.state.board.quirks()[0].kind is QuirkKind.HTML
    result = runner.invoke(app, ["clear-quirks", *url])
    assert result.exit_code == 0
    assert mp.provider.state.board.quirks() == []
    read_some_ts(mp.stream_url(101))
    mp.wait_for(lambda s: s.open_connections() == 0)
    result = runner.invoke(app, ["stats", *url])
    assert result.exit_code == 0
    assert "opened 1, closed 1" in result.output
    result = runner.invoke(app, ["stats", "--json", *url])
    assert json.loads(result.output)["total_opened"] == 1
    result = runner.invoke(app, ["fault", "1", "status", "--status", "42", *url])
    assert result.exit_code == 2
    result = runner.invoke(app, ["recover", "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 1


def test_parse_fault_spec() -> None:
    assert parse_fault_spec("101:stall:after=5") == (101, Fault(FaultKind.STALL, after=5.0))
    assert parse_fault_spec("7:status:status=404:times=1") == (
        7,
        Fault(FaultKind.STATUS, status=404, times=1),
    )
    with pytest.raises(Exception, match="ID:KIND"):
        parse_fault_spec("stall")


def test_subprocess_runner(mock_media: MediaLibrary) -> None:
    with MockProviderProcess(
        ["--seed-demo", "--fault", "102:status:status=418"], cache_dir=mock_media.cache_dir
    ) as proc:
        assert proc.base_url.startswith("http://127.0.0.1:")
        assert read_some_ts(f"{proc.base_url}/live/alpha/alpha-secret/101.ts")[0] == 0x47
        with pytest.raises(urllib.error.HTTPError) as info:
            read_some_ts(f"{proc.base_url}/live/alpha/alpha-secret/102.ts")
        assert info.value.code == 418
        info.value.close()
        stats = proc.control.wait_for(lambda s: s.open_connections() == 0)
        assert stats.total_opened == 2


def test_stats_can_limit_the_event_log(mock_provider_thread: MockProviderThread) -> None:
    mp = mock_provider_thread
    for _ in range(3):
        read_some_ts(mp.stream_url(101))
    control = ControlClient(mp.base_url)
    stats = control.wait_for(lambda s: s.total_closed == 3, events=2)
    assert len(stats.events) == 2
    assert stats.events[-1].event == "close"
    assert len(control.stats(events=0).events) == 0
    assert len(control.stats().events) == 6
    with pytest.raises(ProviderError, match="400"):
        control.request("GET", "/stats?events=-1")

"""GuideNumbers: one definition, checked at every entry, and a bad stored one
never takes an output down; a periodic loop that crashes is restarted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from streamforge import guide_number
from streamforge.cli.main import app as cli_app
from streamforge.mockprovider import MockProviderThread
from streamforge.runtime import Runtime
from streamforge.tasks import TaskOwner, restarting
from streamforge.web.app import create_app
from tests.conftest import ADMIN_PASSWORD

LONG = "1" * 5000


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("1", True),
        ("5.1", True),
        ("101", True),
        ("12345678", True),
        ("5.0", True),
        ("123456789", False),
        ("²", False),
        ("١٢", False),
        ("1.2.3", False),
        ("01", False),
        ("5.01", False),
        ("0", False),
        ("", False),
        ("5.", False),
        (".5", False),
        ("5 ", False),
        ("-1", False),
        (LONG, False),
    ],
)
def test_what_a_guide_number_is(number: str, valid: bool) -> None:
    assert guide_number.is_valid(number) is valid
    assert (guide_number.explain(number) is None) is valid


def test_sort_key_orders_subchannels_and_puts_bad_numbers_last() -> None:
    numbers = ["10", "²", "2.1", "2", "1.2.3", "3", "2.0"]
    assert sorted(numbers, key=guide_number.sort_key)[:5] == ["2", "2.0", "2.1", "3", "10"]


def test_parse_strips_and_refuses_in_one_line() -> None:
    assert guide_number.parse(" 7 ") == "7"
    with pytest.raises(guide_number.InvalidGuideNumber) as info:
        guide_number.parse(LONG)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 120


def _guide(path: Path) -> None:
    channels = [
        ("bbcone.uk", "BBC One", "²"),
        ("bbctwo.uk", "BBC Two", "1.2.3"),
        ("espn.us", "ESPN", "01"),
        ("daserste.de", "Das Erste", LONG),
    ]
    body = "".join(
        f'<channel id="{cid}"><display-name>{name}</display-name><lcn>{lcn}</lcn></channel>'
        for cid, name, lcn in channels
    )
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<tv>{body}</tv>', encoding="utf-8")


@pytest.fixture
def hostile_guide(
    runtime: Runtime, mock_provider_thread: MockProviderThread, tmp_path: Path
) -> Iterator[TestClient]:
    async def setup() -> None:
        result = await runtime.accounts.add(
            "alpha",
            server_url=mock_provider_thread.base_url,
            username="alpha",
            password="alpha-secret",
        )
        assert result.ok, result.message
        await runtime.channel_sync.sync("alpha")
        guide = tmp_path / "guide.xml"
        _guide(guide)
        runtime.epg.add("guide", file=str(guide))
        summary = await runtime.epg.refresh("guide")
        assert summary["skipped"].get("invalid_lcn") == 4, summary

    asyncio.run(setup())
    runtime.matching.run()
    with TestClient(create_app(runtime)) as client:
        client.auth = ("admin", ADMIN_PASSWORD)
        yield client


def test_invalid_lcns_are_ignored_and_matching_numbers_validly(
    hostile_guide: TestClient, runtime: Runtime
) -> None:
    channels = hostile_guide.get("/api/v1/channels").json()
    numbers = [c["guide_number"] for c in channels if c["guide_number"] is not None]
    assert numbers, channels
    assert all(guide_number.is_valid(n) for n in numbers), numbers
    lineup = hostile_guide.get("/lineup.json")
    assert lineup.status_code == 200
    assert {e["GuideNumber"] for e in lineup.json()} <= set(numbers)


@pytest.mark.parametrize("bad", ["²", "1.2.3", "01", LONG, "abc"])
def test_api_refuses_a_bad_number_with_422(hostile_guide: TestClient, bad: str) -> None:
    channel = hostile_guide.get("/api/v1/channels").json()[0]
    answer = hostile_guide.patch(f"/api/v1/channels/%23{channel['id']}", json={"guide_number": bad})
    assert answer.status_code == 422, answer.text
    assert "GuideNumber" in answer.json()["error"]
    again = hostile_guide.get(f"/api/v1/channels/%23{channel['id']}").json()
    assert again["guide_number"] == channel["guide_number"]


def test_api_refuses_a_huge_channel_id(hostile_guide: TestClient) -> None:
    answer = hostile_guide.get(f"/api/v1/channels/%23{2**63}")
    assert answer.status_code == 404
    answer = hostile_guide.get("/api/v1/channels/%23²")
    assert answer.status_code == 404


def test_cli_refuses_a_bad_number_in_one_line(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    result = CliRunner().invoke(cli_app, ["channel", "number", "#1", "²"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "GuideNumber '²'" in lines[0]


def test_a_bad_stored_number_is_skipped_by_every_output(
    hostile_guide: TestClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    before = hostile_guide.get("/lineup.json").json()
    assert len(before) >= 2, before
    victim = before[0]
    # What an older StreamForge let in: written straight into the table.
    with runtime.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE xmltv_channels SET guide_number = :bad WHERE guide_number = :number"),
            {"bad": "²", "number": victim["GuideNumber"]},
        )
    with caplog.at_level(logging.WARNING, logger="streamforge.outputs.catalog"):
        lineup = hostile_guide.get("/lineup.json")
    assert lineup.status_code == 200
    assert [e["GuideNumber"] for e in lineup.json()] == [e["GuideNumber"] for e in before[1:]]
    assert "invalid GuideNumber" in caplog.text
    assert victim["GuideName"] in caplog.text
    for path in ("/playlist.m3u", "/epg.xml", "/api/v1/channels", "/xmltv.xml"):
        answer = hostile_guide.get(path)
        assert answer.status_code == 200, path
    assert "/auto/v²" not in hostile_guide.get("/playlist.m3u").text
    listed = hostile_guide.get("/api/v1/channels").json()
    assert listed[-1]["guide_number"] == "²"  # still listed for the admin to fix, last


def test_a_crashing_loop_is_restarted_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[float]:
        waits: list[float] = []
        runs = 0
        done = asyncio.Event()

        async def loop() -> None:
            nonlocal runs
            runs += 1
            if runs == 4:
                done.set()
                await asyncio.Event().wait()
            raise ValueError(f"bad value {runs}")

        owner = TaskOwner("test")
        owner.spawn(
            restarting(
                "flaky",
                loop,
                first_backoff=0.01,
                max_backoff=0.03,
                on_crash=lambda _exc, wait: waits.append(wait),
            ),
            name="flaky",
        )
        await asyncio.wait_for(done.wait(), 5)
        await owner.close()
        return waits

    with caplog.at_level(logging.ERROR, logger="streamforge.tasks"):
        waits = asyncio.run(scenario())
    assert waits == [0.01, 0.02, 0.03]
    assert "background task flaky crashed (ValueError: bad value 1); restarting" in caplog.text

"""Several guides for the same channels: one guide channel per XMLTV id,
programmes merged by source priority with gaps filled from the others, time
offsets per source and per channel — through the real database, ``/epg.xml``,
the admin API and the command line."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from streamforge.cli.main import app
from streamforge.db.models import GuideChannelSource, XmltvChannel
from streamforge.epg.merge import SourceRank, check_offset, merge
from streamforge.errors import ConfigError
from streamforge.mockprovider import MockProviderThread
from streamforge.runtime import Runtime
from streamforge.settings import load_settings

HOUR = timedelta(hours=1)
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + HOUR

CHANNELS = """
<channel id="bbcone.uk"><display-name>BBC One</display-name><lcn>101</lcn></channel>
<channel id="bbctwo.uk"><display-name>BBC Two</display-name></channel>
<channel id="espn.us"><display-name>ESPN</display-name></channel>
<channel id="daserste.de"><display-name>Das Erste</display-name></channel>
"""


def _xmltv(channels: str, programmes: list[tuple[str, int, int, str]]) -> str:
    """``programmes``: (channel, start hour, stop hour, title), hours after T0."""
    body = []
    for channel, start, stop, title in programmes:
        a, b = T0 + start * HOUR, T0 + stop * HOUR
        body.append(
            f'<programme start="{a:%Y%m%d%H%M%S} +0000" stop="{b:%Y%m%d%H%M%S} +0000" '
            f'channel="{channel}"><title>{title}</title></programme>'
        )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<tv>{channels}{"".join(body)}</tv>'


# main has BBC One at hours 0-2 and 4-5 (a gap at 2-4); backup covers 0-6 differently.
MAIN = _xmltv(CHANNELS, [("bbcone.uk", 0, 1, "Main A"), ("bbcone.uk", 1, 2, "Main B"),
                         ("bbcone.uk", 4, 5, "Main C")])  # fmt: skip
BACKUP = _xmltv(
    CHANNELS.replace(
        "BBC One</display-name>", "BBC One</display-name><display-name>BBC1</display-name>"
    ),
    [("bbcone.uk", 0, 2, "Backup long"), ("bbcone.uk", 2, 3, "Backup gap 1"),
     ("bbcone.uk", 3, 4, "Backup gap 2"), ("bbcone.uk", 4, 6, "Backup overlap"),
     ("bbctwo.uk", 0, 1, "Two from backup")],
)  # fmt: skip


def _programmes(xml: str, channel: str) -> list[tuple[str, str, str]]:
    """(start, stop, title) of one channel's programmes in an XMLTV document."""
    found = re.findall(
        r'<programme start="(\d{14}) \+0000" stop="(\d{14}) \+0000" channel="([^"]+)">'
        r"<title>([^<]*)</title>",
        xml,
    )
    return [(a, b, t) for a, b, c, t in found if c == channel]


def _hour(offset_hours: float) -> str:
    return f"{T0 + timedelta(hours=offset_hours):%Y%m%d%H%M%S}"


def _count(runtime: Runtime, model: type[XmltvChannel] | type[GuideChannelSource]) -> int:
    with runtime.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def two_guides(
    runtime: Runtime, mock_provider_thread: MockProviderThread, tmp_path: Path
) -> Runtime:
    async def setup() -> None:
        await runtime.accounts.add(
            "alpha",
            server_url=mock_provider_thread.base_url,
            username="alpha",
            password="alpha-secret",
        )
        await runtime.channel_sync.sync("alpha")
        (tmp_path / "main.xml").write_text(MAIN)
        runtime.epg.add("main", file=str(tmp_path / "main.xml"))
        await runtime.catalog.refresh_guide("main")

    asyncio.run(setup())
    return runtime


def _add_backup(runtime: Runtime, tmp_path: Path, priority: int = 10) -> None:
    (tmp_path / "backup.xml").write_text(BACKUP)
    runtime.epg.add("backup", file=str(tmp_path / "backup.xml"), priority=priority)
    asyncio.run(runtime.catalog.refresh_guide("backup"))


def test_a_second_guide_for_the_same_channels_adds_no_channels(
    two_guides: Runtime, tmp_path: Path, client: TestClient
) -> None:
    runtime = two_guides
    bbc = runtime.channels.get("bbcone.uk")
    assert bbc.guide_number is not None
    assert bbc.mappings
    before = _count(runtime, XmltvChannel)
    _add_backup(runtime, tmp_path)
    assert _count(runtime, XmltvChannel) == before == 4
    assert _count(runtime, GuideChannelSource) == 8
    after = runtime.channels.get("bbcone.uk")
    assert (after.id, after.guide_number) == (bbc.id, bbc.guide_number)
    assert [m.xtream_channel_id for m in after.mappings] == [
        m.xtream_channel_id for m in bbc.mappings
    ]
    assert {s.name: s.channel_count for s in runtime.epg.all()} == {"main": 4, "backup": 4}
    # the lineup lists each channel once
    lineup = client.get("/lineup.json").json()
    names = [row["GuideName"] for row in lineup]
    assert len(names) == len(set(names))
    # names of the best source first, the other source's extra names after
    with runtime.db.session() as s:
        row = s.scalars(select(XmltvChannel).where(XmltvChannel.xmltv_id == "bbcone.uk")).one()
        assert row.display_names == ["BBC One", "BBC1"]


def test_programmes_merge_by_priority_with_gaps_filled(
    two_guides: Runtime, tmp_path: Path, client: TestClient
) -> None:
    _add_backup(two_guides, tmp_path)
    xml = client.get("/epg.xml").text
    epg_id = "bbcone.uk"
    assert _programmes(xml, epg_id) == [
        (_hour(0), _hour(1), "Main A"),
        (_hour(1), _hour(2), "Main B"),
        (_hour(2), _hour(3), "Backup gap 1"),
        (_hour(3), _hour(4), "Backup gap 2"),
        (_hour(4), _hour(5), "Main C"),
    ]
    # the better source turned round: backup wins everywhere it has programmes
    two_guides.epg.set_priority("main", 20)
    xml = client.get("/epg.xml").text
    assert [t for _a, _b, t in _programmes(xml, epg_id)] == [
        "Backup long",
        "Backup gap 1",
        "Backup gap 2",
        "Backup overlap",
    ]


def test_removing_the_better_source_keeps_the_channel_and_its_mappings(
    two_guides: Runtime, tmp_path: Path, client: TestClient
) -> None:
    runtime = two_guides
    _add_backup(runtime, tmp_path)
    bbc = runtime.channels.get("bbcone.uk")
    runtime.epg.remove("main")
    after = runtime.channels.get("bbcone.uk")
    assert (after.id, after.guide_number, after.is_enabled) == (
        bbc.id,
        bbc.guide_number,
        bbc.is_enabled,
    )
    assert [m.mapping_id for m in after.mappings] == [m.mapping_id for m in bbc.mappings]
    assert _count(runtime, XmltvChannel) == 4
    xml = client.get("/epg.xml").text
    assert _programmes(xml, "bbcone.uk")[0][2] == "Backup long"
    # and with the last source gone, its channels go too
    runtime.epg.remove("backup")
    assert _count(runtime, XmltvChannel) == 0


def test_a_source_that_stops_listing_a_channel_drops_only_its_link(
    two_guides: Runtime, tmp_path: Path
) -> None:
    runtime = two_guides
    _add_backup(runtime, tmp_path, priority=-5)  # the better one
    (tmp_path / "backup.xml").write_text(_xmltv(CHANNELS.split('\n<channel id="bbctwo')[0], []))
    asyncio.run(runtime.epg.refresh("backup"))
    assert _count(runtime, XmltvChannel) == 4
    assert {s.name: s.channel_count for s in runtime.epg.all()} == {"backup": 1, "main": 4}


def test_source_and_channel_offsets_apply_in_epg_xml(
    two_guides: Runtime, admin: TestClient
) -> None:
    before = _programmes(admin.get("/epg.xml").text, "bbcone.uk")
    assert before[0] == (_hour(0), _hour(1), "Main A")
    answer = admin.patch("/api/v1/epg/main", json={"time_offset_minutes": -60})
    assert answer.status_code == 200, answer.text
    assert answer.json()["time_offset_minutes"] == -60
    shifted = _programmes(admin.get("/epg.xml").text, "bbcone.uk")
    assert shifted[0] == (_hour(-1), _hour(0), "Main A")
    # the channel's own offset adds to the source's
    channel = admin.patch("/api/v1/channels/bbcone.uk", json={"time_offset_minutes": 30})
    assert channel.status_code == 200, channel.text
    assert channel.json()["time_offset_minutes"] == 30
    both = _programmes(admin.get("/epg.xml").text, "bbcone.uk")
    assert both[0] == (_hour(-0.5), _hour(0.5), "Main A")
    # the rendered copy follows each change (its version names the offsets)
    cached = admin.get("/epg.xml").text
    assert _programmes(cached, "bbcone.uk") == both
    assert admin.patch("/api/v1/epg/main", json={"time_offset_minutes": 3000}).status_code == 400
    assert admin.get("/api/v1/epg").json()[0]["priority"] == 0


def test_priority_through_the_api(two_guides: Runtime, tmp_path: Path, admin: TestClient) -> None:
    _add_backup(two_guides, tmp_path)
    assert admin.patch("/api/v1/epg/backup", json={"priority": -1}).json()["priority"] == -1
    xml = admin.get("/epg.xml").text
    assert _programmes(xml, "bbcone.uk")[0][2] == "Backup long"
    assert [s["name"] for s in admin.get("/api/v1/epg").json()] == ["backup", "main"]


def test_offsets_and_priority_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
    data_dir: Path,
    mock_provider_thread: MockProviderThread,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    (tmp_path / "main.xml").write_text(MAIN)
    (tmp_path / "backup.xml").write_text(BACKUP)
    run("epg", "add", "main", "--file", str(tmp_path / "main.xml"))
    run("epg", "add", "backup", "--file", str(tmp_path / "backup.xml"), "--priority", "5")
    assert "has priority 1" in run("epg", "priority", "backup", "1")
    assert "shifted by -90 min" in run("epg", "offset", "main", "-90")
    listing = {v["name"]: v for v in json.loads(run("epg", "list", "--json"))}
    assert (listing["main"]["time_offset_minutes"], listing["backup"]["priority"]) == (-90, 1)
    assert "shifted by +15 min" in run("channel", "offset", "bbcone.uk", "15")
    bad = runner.invoke(app, ["channel", "offset", "bbcone.uk", "5000"])
    assert bad.exit_code == 1
    assert "more than a day" in bad.output
    runtime = Runtime.build(load_settings())
    try:
        views = {v.name: v for v in runtime.epg.all()}
        assert (views["backup"].priority, views["main"].time_offset_minutes) == (1, -90)
        assert runtime.channels.get("bbcone.uk").time_offset_minutes == 15
        with runtime.db.session() as s:
            assert int(s.scalar(select(func.count()).select_from(XmltvChannel)) or 0) == 4
    finally:
        runtime.close()


def test_merge_is_pure_and_ordered() -> None:
    class Row:
        def __init__(self, source: int, start: int, stop: int | None) -> None:
            self.source_id = source
            self.start = T0 + start * HOUR
            self.stop = T0 + stop * HOUR if stop is not None else None

    ranks = {1: SourceRank(0, 0), 2: SourceRank(1, 60), 3: SourceRank(2, 0, is_active=False)}
    rows = [Row(1, 0, 1), Row(1, 3, None), Row(1, 5, 6), Row(2, 0, 2), Row(2, 2, 3), Row(3, 1, 2)]
    placed = merge(rows, ranks)
    # source 2 is shifted by an hour: its 0-2 becomes 1-3 and fills the gap; its 2-3
    # becomes 3-4 and overlaps the open-ended 3-… (which lasts until 5); source 3 is off
    assert [(p.source_id, p.start) for p in placed] == [
        (1, T0),
        (2, T0 + HOUR),
        (1, T0 + 3 * HOUR),
        (1, T0 + 5 * HOUR),
    ]
    ranks[2] = SourceRank(1, 0)
    assert [(p.source_id, p.start) for p in merge(rows, ranks, 30)][1] == (
        2,
        T0 + 2 * HOUR + timedelta(minutes=30),
    )
    with pytest.raises(ConfigError):
        check_offset(-1441)

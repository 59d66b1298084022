"""Guide sources and matching persisted in the real database: staging + swap
on refresh, hostile files leave the stored guide untouched, manual mappings
survive automatic matching, GuideNumbers are stable."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from streamforge.db.models import Programme, XmltvChannel
from streamforge.errors import ConfigError, ConflictError, GuideError, NotFoundError
from streamforge.mockprovider import MockProviderThread
from streamforge.runtime import Runtime
from tests.netutil import free_port

GUIDE = """<?xml version="1.0" encoding="UTF-8"?>
<tv>
<channel id="bbcone.uk"><display-name>BBC One</display-name><lcn>101</lcn></channel>
<channel id="bbctwo.uk"><display-name>BBC Two</display-name></channel>
<channel id="espn.us"><display-name>ESPN</display-name></channel>
<channel id="daserste.de"><display-name>Das Erste</display-name></channel>
{programmes}
</tv>"""


def _programmes(n: int) -> str:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    for i in range(n):
        start = now + timedelta(hours=i)
        stop = start + timedelta(hours=1)
        out.append(
            f'<programme start="{start:%Y%m%d%H%M%S} +0000" stop="{stop:%Y%m%d%H%M%S} +0000" '
            f'channel="bbcone.uk"><title>Show {i}</title></programme>'
        )
    return "\n".join(out)


def _counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.db.session() as s:
        return (
            int(s.scalar(select(func.count()).select_from(XmltvChannel)) or 0),
            int(s.scalar(select(func.count()).select_from(Programme)) or 0),
        )


@pytest.fixture
def populated(runtime: Runtime, mock_provider_thread: MockProviderThread, tmp_path: Path) -> Path:
    async def setup() -> None:
        for name in ("alpha", "beta"):
            await runtime.accounts.add(
                name,
                server_url=mock_provider_thread.base_url,
                username=name,
                password=f"{name}-secret",
            )
            await runtime.channel_sync.sync(name)

    asyncio.run(setup())
    guide = tmp_path / "guide.xml.gz"  # gzip, detected from content
    guide.write_bytes(gzip.compress(GUIDE.format(programmes=_programmes(12)).encode()))
    runtime.epg.add("main", file=str(guide))
    summary = asyncio.run(runtime.epg.refresh("main"))
    assert (summary["channels"], summary["programmes"]) == (4, 12)
    runtime.matching.run()
    return guide


def test_matching_gives_backups_in_quality_order(populated: Path, runtime: Runtime) -> None:
    bbc = runtime.channels.get("bbcone.uk")
    assert [m.stream_id for m in bbc.mappings] == [106, 101, 102, 201]  # UHD, FHD, HD, SD
    assert [m.stream_priority for m in bbc.mappings] == [0, 1, 2, 3]
    assert [m.is_primary for m in bbc.mappings] == [True, False, False, False]
    assert bbc.guide_number == "101"  # its LCN
    assert not any(m.is_manual for m in bbc.mappings)
    assert runtime.channels.get("espn.us").stream_count == 2


def test_manual_mappings_survive_matching_and_refresh(populated: Path, runtime: Runtime) -> None:
    bbc = runtime.channels.get("bbcone.uk")
    ids = {m.stream_id: m.xtream_channel_id for m in bbc.mappings}
    runtime.channels.reorder("bbcone.uk", [ids[201], ids[101], ids[102], ids[106]])
    runtime.channels.set_number("bbcone.uk", "7")
    number_two = runtime.channels.get("bbctwo.uk").guide_number
    runtime.matching.run()
    asyncio.run(runtime.epg.refresh("main"))
    runtime.matching.run()
    after = runtime.channels.get("bbcone.uk")
    assert [m.stream_id for m in after.mappings] == [201, 101, 102, 106]
    assert all(m.is_manual for m in after.mappings)
    assert after.guide_number == "7"
    assert runtime.channels.get("bbctwo.uk").guide_number == number_two
    with pytest.raises(ConflictError):
        runtime.channels.set_number("bbctwo.uk", "7")
    with pytest.raises(ConfigError):
        runtime.channels.reorder("bbcone.uk", [ids[201]])


@pytest.mark.parametrize(
    "content",
    [
        b'<?xml version="1.0"?><!DOCTYPE tv [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<tv><channel id='x'><display-name>&b;</display-name></channel></tv>",
        b'<?xml version="1.0"?><!DOCTYPE tv [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<tv><channel id='x'><display-name>&xxe;</display-name></channel></tv>",
        GUIDE.format(programmes=_programmes(5)).encode()[:-200],
        b"this is not xml at all",
        b"",
    ],
    ids=["billion-laughs", "xxe", "truncated", "not-xml", "empty"],
)
def test_hostile_refresh_keeps_the_stored_guide(
    populated: Path, runtime: Runtime, content: bytes
) -> None:
    before = _counts(runtime)
    mappings_before = runtime.channels.get("bbcone.uk").mappings
    populated.write_bytes(content)
    with pytest.raises(GuideError) as info:
        asyncio.run(runtime.epg.refresh("main"))
    assert "\n" not in str(info.value)
    assert "root:" not in str(info.value)
    assert _counts(runtime) == before
    assert runtime.channels.get("bbcone.uk").mappings == mappings_before
    assert runtime.epg.get("main").last_error


def test_disable_enable_and_lookup(populated: Path, runtime: Runtime) -> None:
    view = runtime.channels.set_enabled("espn.us", False)
    assert not view.is_enabled
    assert runtime.channels.published(view.guide_number or "") is None
    assert runtime.channels.set_enabled(f"#{view.id}", True).is_enabled
    with pytest.raises(NotFoundError):
        runtime.channels.get("no.such.channel")
    found = runtime.channels.all(search="bbc")
    assert [v.xmltv_id for v in found] == ["bbctwo.uk", "bbcone.uk"]  # GuideNumber 1, 101


def test_channels_api(populated: Path, admin: TestClient, runtime: Runtime) -> None:
    listing = admin.get("/api/v1/channels", params={"mapped": True}).json()
    assert {c["xmltv_id"] for c in listing} == {"bbcone.uk", "bbctwo.uk", "espn.us", "daserste.de"}
    one = admin.get("/api/v1/channels/bbcone.uk").json()
    ids = [m["xtream_channel_id"] for m in one["mappings"]]
    assert one["mappings"][0]["breaker"]["state"] == "closed"
    reordered = admin.put("/api/v1/channels/bbcone.uk/order", json={"order": ids[::-1]})
    assert [m["xtream_channel_id"] for m in reordered.json()["mappings"]] == ids[::-1]
    removed = admin.delete(f"/api/v1/channels/bbcone.uk/mappings/{ids[0]}")
    assert ids[0] not in [m["xtream_channel_id"] for m in removed.json()["mappings"]]
    suggestions = admin.get("/api/v1/channels/bbcone.uk/suggestions").json()
    assert suggestions[0]["xtream_channel_id"] == ids[0]
    added = admin.post(
        "/api/v1/channels/bbcone.uk/mappings", json={"xtream_channel_id": ids[0], "position": 0}
    )
    assert added.json()["mappings"][0]["xtream_channel_id"] == ids[0]
    assert (
        admin.patch("/api/v1/channels/bbcone.uk", json={"guide_number": "5.1"}).json()[
            "guide_number"
        ]
        == "5.1"
    )
    assert admin.post("/api/v1/match").json()["mapped_streams"] >= 1
    setup = admin.get("/api/v1/setup").json()
    assert setup["m3u"].endswith("/playlist.m3u")
    assert admin.get("/api/v1/epg").json()[0]["last_report"]["programmes"] == 12


def test_url_source_downloads_through_the_provider_seam(
    runtime: Runtime, mock_provider_thread: MockProviderThread
) -> None:
    base = mock_provider_thread.base_url
    runtime.epg.add("web", url=f"{base}/xmltv.php?username=alpha&password=alpha-secret")
    summary = asyncio.run(runtime.epg.refresh("web"))
    assert summary["channels"] > 0
    assert summary["bytes"] > 0
    runtime.epg.add("gone", url=f"{base}/no/such/guide.xml?username=alpha&password=alpha-secret")
    runtime.epg.add("down", url=f"http://127.0.0.1:{free_port()}/guide.xml?password=alpha-secret")
    for name, needle in (("gone", "HTTP 404"), ("down", "failed: ")):
        with pytest.raises(GuideError) as info:
            asyncio.run(runtime.epg.refresh(name))
        assert needle in str(info.value)
        assert "alpha-secret" not in str(info.value)
        assert runtime.epg.get(name).last_error == str(info.value)

"""Plex-facing endpoints on a StreamForge configured against the mock provider:
fields, ordering, ids consistent across lineup/M3U/XMLTV, HTTP verbs, unknown
parameters, the real tv_validate_file, and no credential in any output."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from streamforge.mockprovider import MockProviderThread
from streamforge.outputs.device_id import is_valid_device_id
from streamforge.runtime import Runtime
from streamforge.web.app import create_app

DTD = Path("/usr/share/xmltv/xmltv.dtd")


def _guide(path: Path) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    fmt = "%Y%m%d%H%M%S +0000"
    tricky = [
        "News & Weather <live>",
        "Ünïcödé 🎉 emoji",
        "عربي RTL نص",
        "Dirty\x07 \x1b control",
    ]
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<tv>']
    for cid, name in (
        ("bbcone.uk", "BBC One"),
        ("bbctwo.uk", "BBC Two"),
        ("espn.us", "ESPN"),
        ("daserste.de", "Das Erste"),
    ):
        parts.append(
            f'<channel id="{cid}"><display-name>{name}</display-name>'
            f'<icon src="http://img.example/{cid}.png"/></channel>'
        )
    for cid in ("bbcone.uk", "espn.us", "daserste.de"):
        for i, title in enumerate(tricky * 2):
            start = now + timedelta(hours=i - 2)
            esc = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            esc = esc.replace("\x07", "&#7;").replace("\x1b", "")
            parts.append(
                f'<programme start="{start.strftime(fmt)}" '
                f'stop="{(start + timedelta(hours=1)).strftime(fmt)}" channel="{cid}">'
                f'<title lang="en">{esc}</title><desc>Desc of {esc}</desc>'
                f"<category>News</category>"
                f'<episode-num system="xmltv_ns">1.{i}.</episode-num><new/></programme>'
            )
    parts.append("</tv>")
    path.write_text("".join(parts).replace("&#7;", ""), encoding="utf-8")


@pytest.fixture
def configured(
    runtime: Runtime, mock_provider_thread: MockProviderThread, tmp_path: Path
) -> Iterator[tuple[TestClient, MockProviderThread]]:
    base = mock_provider_thread.base_url

    async def setup() -> None:
        for name in ("alpha", "beta"):
            result = await runtime.accounts.add(
                name, server_url=base, username=name, password=f"{name}-secret"
            )
            assert result.ok, result.message
            await runtime.channel_sync.sync(name)
        guide = tmp_path / "guide.xml"
        _guide(guide)
        runtime.epg.add("guide", file=str(guide))
        await runtime.epg.refresh("guide")

    asyncio.run(setup())
    runtime.matching.run()
    with TestClient(create_app(runtime)) as client:
        yield client, mock_provider_thread


def test_discover_and_device(
    configured: tuple[TestClient, MockProviderThread], runtime: Runtime
) -> None:
    client, _mp = configured
    d = client.get("/discover.json").json()
    for key in (
        "FriendlyName",
        "Manufacturer",
        "ModelNumber",
        "FirmwareName",
        "FirmwareVersion",
        "DeviceID",
        "DeviceAuth",
        "BaseURL",
        "LineupURL",
    ):
        assert isinstance(d[key], str), key
        assert d[key], key
    assert is_valid_device_id(d["DeviceID"])
    assert d["TunerCount"] == 3  # alpha 2 + beta 1
    assert d["BaseURL"] == "http://testserver"
    assert d["LineupURL"] == "http://testserver/lineup.json"
    # stable across restarts: a second app on the same database keeps the id
    with TestClient(create_app(runtime)) as again:
        assert again.get("/discover.json").json()["DeviceID"] == d["DeviceID"]
    status = client.get("/lineup_status.json").json()
    assert status["ScanInProgress"] == 0
    assert status["ScanPossible"] == 1
    xml = client.get("/device.xml")
    assert xml.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(xml.content)
    ns = {"u": "urn:schemas-upnp-org:device-1-0"}
    assert root.find("u:device/u:deviceType", ns).text == (  # type: ignore[union-attr]
        "urn:schemas-upnp-org:device:MediaServer:1"
    )
    assert client.get("/capability").content == xml.content


def test_lineup_fields_order_and_verbs(configured: tuple[TestClient, MockProviderThread]) -> None:
    client, _mp = configured
    lineup = client.get("/lineup.json").json()
    assert [e["GuideName"] for e in lineup] == ["BBC One", "BBC Two", "ESPN", "Das Erste"]
    numbers = [e["GuideNumber"] for e in lineup]
    assert all(isinstance(n, str) for n in numbers)
    assert numbers == sorted(numbers, key=int)
    for entry in lineup:
        assert entry["URL"] == f"http://testserver/auto/v{entry['GuideNumber']}"
        assert entry["HD"] in (0, 1)
    assert lineup[0]["HD"] == 1
    assert client.get("/lineup.json?show=found&transcode=mobile&tuning=1").json() == lineup
    assert client.post("/lineup.post?scan=start&source=Cable").status_code == 200
    assert client.post("/lineup.post?scan=abort").status_code == 200
    assert client.post("/lineup.post?scan=bogus").status_code == 400
    assert client.get("/lineup.post").status_code == 405
    assert client.post("/lineup.json").status_code == 405
    assert client.get("/auto/v999").status_code == 404


def test_ids_agree_across_lineup_m3u_and_xmltv(
    configured: tuple[TestClient, MockProviderThread],
) -> None:
    client, _mp = configured
    lineup = client.get("/lineup.json").json()
    m3u = client.get("/playlist.m3u").text
    assert m3u.startswith('#EXTM3U url-tvg="http://testserver/epg.xml"')
    assert client.get("/playlist.m3u8").text == m3u
    entries = [line for line in m3u.splitlines() if line.startswith("#EXTINF")]
    urls = [line for line in m3u.splitlines() if line.startswith("http")]
    assert urls == [e["URL"] for e in lineup]
    chnos = [line.split('tvg-chno="')[1].split('"')[0] for line in entries]
    assert chnos == [e["GuideNumber"] for e in lineup]
    tvg_ids = [line.split('tvg-id="')[1].split('"')[0] for line in entries]
    root = ET.fromstring(client.get("/epg.xml").content)
    channel_ids = [c.get("id") for c in root.findall("channel")]
    assert channel_ids == tvg_ids == ["bbcone.uk", "bbctwo.uk", "espn.us", "daserste.de"]
    for channel, entry in zip(root.findall("channel"), lineup, strict=True):
        names = [n.text for n in channel.findall("display-name")]
        assert entry["GuideName"] in names
        assert entry["GuideNumber"] in names
    titles = {p.findtext("title") for p in root.findall("programme")}
    assert "News & Weather <live>" in titles
    assert "Ünïcödé 🎉 emoji" in titles
    assert "عربي RTL نص" in titles
    # BBC Two has no programmes in the guide: placeholders keep it visible in Plex
    bbc2 = [p for p in root.findall("programme") if p.get("channel") == "bbctwo.uk"]
    assert bbc2
    assert bbc2[0].findtext("title") == "BBC Two"
    gz = client.get("/epg.xml.gz")
    assert gzip.decompress(gz.content) == client.get("/epg.xml").content


@pytest.mark.skipif(shutil.which("tv_validate_file") is None, reason="xmltv-util not installed")
def test_xmltv_output_passes_tv_validate_file(
    configured: tuple[TestClient, MockProviderThread], tmp_path: Path
) -> None:
    client, _mp = configured
    out = tmp_path / "epg.xml"
    out.write_bytes(client.get("/epg.xml").content)
    result = subprocess.run(
        ["tv_validate_file", "--dtd-file", str(DTD), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_credential_or_provider_address_in_any_output(
    configured: tuple[TestClient, MockProviderThread],
) -> None:
    client, mp = configured
    port = mp.base_url.rsplit(":", 1)[1]
    for path in (
        "/discover.json",
        "/lineup.json",
        "/lineup_status.json",
        "/device.xml",
        "/playlist.m3u",
        "/epg.xml",
    ):
        body = client.get(path).text
        for secret in ("alpha-secret", "beta-secret", "/live/alpha", "/live/beta", f":{port}"):
            assert secret not in body, (path, secret)


def test_base_url_setting_overrides_request_host(runtime: Runtime) -> None:
    from streamforge.settings import load_settings

    rt = Runtime.build(
        load_settings(
            data_dir=runtime.settings.data_dir, keyring=False, base_url="http://192.168.1.20:5004"
        )
    )
    try:
        with TestClient(create_app(rt)) as client:
            assert client.get("/discover.json").json()["BaseURL"] == "http://192.168.1.20:5004"
    finally:
        rt.close()


def test_channel_without_usable_stream_is_unpublished_and_answers_404(
    configured: tuple[TestClient, MockProviderThread], runtime: Runtime
) -> None:
    # Not in the lineup means not tunable: the tuner uses the lineup's rule.
    client, _mp = configured
    number = runtime.channels.get("espn.us").guide_number
    runtime.accounts.set_active("alpha", False)
    runtime.accounts.set_active("beta", False)
    answer = client.get(f"/auto/v{number}")
    assert answer.status_code == 404
    assert "x-hdhomerun-error" not in answer.headers
    assert client.get("/lineup.json").json() == []

"""One published-channel rule: ``/lineup.json``, the M3U, the XMLTV guide and
the tuner (``/auto/v{n}``) agree on which channels exist, against the mock
provider over real sockets.

A channel that is enabled and numbered but not published — disabled, without
streams, or whose only streams belong to an expired or disabled account — is
absent from every output and answers 404 when tuned; a published channel is
present everywhere and plays.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import aiohttp
import pytest

from streamforge.mockprovider import MockProvider
from tests.streamharness import Stack, StreamClient, stack


async def _outputs(http: aiohttp.ClientSession, base: str) -> dict[str, set[str]]:
    """The GuideNumbers each output publishes."""
    async with http.get(f"{base}/lineup.json") as answer:
        assert answer.status == 200
        lineup = {entry["GuideNumber"] for entry in await answer.json()}
    async with http.get(f"{base}/playlist.m3u") as answer:
        assert answer.status == 200
        m3u = set(re.findall(r'tvg-chno="([^"]+)"', await answer.text()))
    async with http.get(f"{base}/epg.xml") as answer:
        assert answer.status == 200
        root = ET.fromstring(await answer.read())
    channels = root.findall("channel")
    guide_ids = {c.get("id") for c in channels}
    # Every guide channel carries its GuideNumber as a display-name.
    guide = {
        name.text or ""
        for c in channels
        for name in c.findall("display-name")
        if (name.text or "").replace(".", "").isdigit()
    }
    programmed = {p.get("channel") for p in root.findall("programme")}
    assert programmed <= guide_ids
    return {"lineup": lineup, "m3u": m3u, "guide": guide}


async def _tune_status(http: aiohttp.ClientSession, base: str, number: str) -> int:
    async with http.get(f"{base}/auto/v{number}") as answer:
        return answer.status


def _unpublish(s: Stack, beta_state: str) -> dict[str, str]:
    """Leave bbcone.uk published; make the three other guide channels unpublished
    while each keeps its GuideNumber. Returns {role: GuideNumber}."""
    channels = s.runtime.channels
    published = s.order("bbcone.uk", [("alpha", 101)])
    disabled = s.guide_number("bbctwo.uk")
    channels.set_enabled("bbctwo.uk", False)
    beta_only = s.order("espn.us", [("beta", 202)])
    streamless = s.guide_number("daserste.de")
    for mapping in channels.get("daserste.de").mappings:
        channels.map_remove("daserste.de", mapping.xtream_channel_id)
    if beta_state == "disabled":
        s.runtime.accounts.set_active("beta", False)
    numbers = {
        "published": published,
        "disabled": disabled,
        "beta_only": beta_only,
        "streamless": streamless,
    }
    for ref in ("bbctwo.uk", "espn.us", "daserste.de"):
        assert channels.get(ref).guide_number in numbers.values()
    assert channels.get("espn.us").is_enabled
    assert channels.get("daserste.de").is_enabled
    assert channels.get("daserste.de").mappings == []
    return numbers


@pytest.mark.parametrize("beta_state", ["expired", "disabled"])
async def test_lineup_m3u_guide_and_tuner_agree(
    tmp_path: Path, mock_provider: MockProvider, beta_state: str
) -> None:
    async with stack(tmp_path, mock_provider) as s, aiohttp.ClientSession() as http:
        before = await _outputs(http, s.base_url)
        assert before["lineup"] == before["m3u"] == before["guide"]
        assert len(before["lineup"]) == 4

        numbers = await asyncio.to_thread(_unpublish, s, beta_state)
        if beta_state == "expired":
            mock_provider.update_account("beta", exp_date=int(time.time()) - 86400)
            result = await s.runtime.accounts.test("beta")
            assert s.runtime.accounts.get("beta").status == "Expired", result.message
        assert not s.runtime.accounts.get("beta").streamable

        after = await _outputs(http, s.base_url)
        assert after["lineup"] == after["m3u"] == after["guide"] == {numbers["published"]}

        for role in ("disabled", "beta_only", "streamless"):
            assert await _tune_status(http, s.base_url, numbers[role]) == 404, role
        assert await _tune_status(http, s.base_url, "999") == 404
        # Nothing was opened at the provider for the unpublished channels.
        assert mock_provider.stats().opens(stream_id=202) == 0

        client = StreamClient(http, f"{s.base_url}/auto/v{numbers['published']}")
        client.start()
        await client.wait_bytes(188 * 50)
        assert client.status == 200
        await client.stop()
        await mock_provider.wait_for(lambda st: not st.open, timeout=3)

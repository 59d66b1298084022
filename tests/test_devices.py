"""Several virtual HDHomeRun devices: a mock provider catalogue of 1,300
channels with a guide, served by the real server (uvicorn, UDP discovery) on
loopback; one setup shared by every check of the module. Devices 2 and 3 are
served on their own ports too (``port + 1``, ``port + 2``), and their short
BaseURLs are what discovery advertises.

The split rules themselves (hand-picked, group/category rules, stability,
overflow) are pinned on plain values through ``_split``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest

from streamforge.mockprovider import Catalog, MediaLibrary, MockProviderThread
from streamforge.mockprovider.catalog import Account, Category, GuideChannel, Stream
from streamforge.outputs import devices as dev
from streamforge.outputs.catalog import LineupRow
from streamforge.outputs.device_id import is_valid_device_id
from streamforge.outputs.discovery import DISCOVER_UDP_PORT
from streamforge.runtime import Runtime
from streamforge.server import serve_app
from streamforge.settings import load_settings
from streamforge.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.netutil import free_port

TOTAL = 1_300
EXTRA = 10
CAP = 480
DTD = Path("/usr/share/xmltv/xmltv.dtd")


def _catalog() -> Catalog:
    categories = (Category(1, "News"), Category(2, "Sports"))
    streams = tuple(
        Stream(
            stream_id=n,
            name=f"UK: Channel {n:04d} HD",
            category_id=1 if n % 2 else 2,
            epg_channel_id=f"ch{n:04d}.test",
            profile="sd",
        )
        for n in range(1, TOTAL + EXTRA + 1)
    )
    guide = tuple(GuideChannel(f"ch{n:04d}.test", f"Channel {n:04d}") for n in range(1, TOTAL + 1))
    extra = tuple(
        GuideChannel(f"ch{n:04d}.test", f"Channel {n:04d}")
        for n in range(TOTAL + 1, TOTAL + EXTRA + 1)
    )
    big = Account("big", "big-secret", max_connections=2, stream_ids=frozenset(range(1, TOTAL + 1)))
    more = Account("more", "more-secret", stream_ids=frozenset(range(TOTAL + 1, TOTAL + EXTRA + 1)))
    return Catalog((big, more), categories, streams, guide + extra)


@dataclass
class Setup:
    runtime: Runtime
    base: str
    provider: MockProviderThread
    http: httpx.Client
    discovery_bound: bool
    loop: asyncio.AbstractEventLoop
    port: int

    def own(self, number: int) -> str:
        """Device ``number``'s own-port base URL (the main one for device 1)."""
        return f"http://127.0.0.1:{self.port + number - 1}"


def _tcp_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_run(count: int) -> int:
    """A free TCP port followed by ``count - 1`` free ones (the devices' own ports)."""
    while True:
        port = free_port()
        if port + count <= 65535 and all(_tcp_free(port + i) for i in range(1, count)):
            return port


def _port_free(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _answers(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def _serving(runtime: Runtime, port: int, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """The real server (``serve_app``) on ``loop`` in a thread, until the block ends."""
    stop = asyncio.Event()
    server = threading.Thread(
        target=loop.run_until_complete,
        args=(serve_app(create_app(runtime), runtime, host="127.0.0.1", port=port, stop=stop),),
        name="streamforge-server",
        daemon=True,
    )
    server.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        server.join(30)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, mock_media: MediaLibrary) -> Iterator[Setup]:
    data_dir = tmp_path_factory.mktemp("devices")
    discovery = _port_free(DISCOVER_UDP_PORT)
    port = _free_run(4)  # the main port, devices 2 and 3, one added at run time
    settings = load_settings(
        data_dir=data_dir,
        keyring=False,
        host="127.0.0.1",
        port=port,
        discovery_enabled=discovery,
        discovery_port=DISCOVER_UDP_PORT,
        ssdp_enabled=False,
        epg_days_back=0,
        epg_days_ahead=0.5,
        channels_per_device=CAP,
    )
    with MockProviderThread(_catalog(), host="127.0.0.1", port=0, media=mock_media) as provider:
        runtime = Runtime.build(settings)
        runtime.auth.set_password(ADMIN_PASSWORD)

        async def configure() -> None:
            added = await runtime.accounts.add(
                "big", server_url=provider.base_url, username="big", password="big-secret"
            )
            assert added.ok, added.message
            await runtime.channel_sync.sync("big")
            runtime.epg.add("guide", from_account="big")
            await runtime.epg.refresh("guide")

        loop = asyncio.new_event_loop()
        loop.run_until_complete(configure())
        runtime.matching.run()
        base = f"http://127.0.0.1:{port}"
        try:
            with _serving(runtime, port, loop), httpx.Client(timeout=30) as http:
                _wait(lambda: _answers(http, f"{base}/discover.json"))
                # Devices 2 and 3 get their own ports once the main one is up.
                _wait(lambda: _answers(http, f"http://127.0.0.1:{port + 2}/discover.json"))
                yield Setup(runtime, base, provider, http, discovery, loop, port)
        finally:
            loop.run_until_complete(runtime.aclose())
            loop.close()


def _lineups(s: Setup) -> dict[int, list[str]]:
    found = s.http.get(f"{s.base}/api/v1/devices", auth=("admin", ADMIN_PASSWORD))
    assert found.status_code == 200, found.text
    result: dict[int, list[str]] = {}
    for device in found.json():
        number = device["number"]
        url = device["urls"]["lineup"]
        result[number] = [e["GuideNumber"] for e in s.http.get(url).json()]
    return result


def test_three_devices_split_the_whole_lineup(setup: Setup) -> None:
    whole = [e["GuideNumber"] for e in setup.http.get(f"{setup.base}/devices/1/lineup.json").json()]
    lineups = _lineups(setup)
    assert sorted(lineups) == [1, 2, 3]
    assert all(len(numbers) <= CAP for numbers in lineups.values())
    union = [n for number in sorted(lineups) for n in lineups[number]]
    assert len(union) == len(set(union)) == TOTAL  # disjoint, and nothing left out
    m3u = setup.http.get(f"{setup.base}/playlist.m3u").text
    assert set(union) == set(re.findall(r'tvg-chno="([^"]+)"', m3u))
    # Consecutive GuideNumber ranges: each device starts where the last ended.
    assert [len(lineups[n]) for n in (1, 2, 3)] == [CAP, CAP, TOTAL - 2 * CAP]
    assert whole == lineups[1]
    root = [e["GuideNumber"] for e in setup.http.get(f"{setup.base}/lineup.json").json()]
    assert root == lineups[1]  # the root is device 1: existing Plex setups keep working


def test_each_device_is_a_complete_hdhomerun(setup: Setup) -> None:
    ids = set()
    for number in (1, 2, 3):
        d = setup.http.get(f"{setup.base}/devices/{number}/discover.json").json()
        assert is_valid_device_id(d["DeviceID"])
        ids.add(d["DeviceID"])
        # A short BaseURL: device N >= 2 on its own port, device 1 the root.
        assert d["BaseURL"] == setup.own(number)
        assert len(d["BaseURL"]) <= 28  # fits libhdhomerun's 29-byte field
        assert d["LineupURL"] == f"{setup.own(number)}/lineup.json"
        # The same document on the device's own port.
        assert setup.http.get(f"{setup.own(number)}/discover.json").json() == d
        assert d["FriendlyName"] == ("StreamForge" if number == 1 else f"StreamForge {number}")
        assert d["TunerCount"] == 2  # what the account allows, on every device
        assert setup.http.get(d["LineupURL"]).status_code == 200
        assert setup.http.get(f"{d['BaseURL']}/discover.json").json()["DeviceID"] == d["DeviceID"]
        assert setup.http.get(f"{d['BaseURL']}/lineup_status.json").json()["ScanPossible"] == 1
        assert setup.http.post(f"{d['BaseURL']}/lineup.post?scan=start").status_code == 200
        xml = ET.fromstring(setup.http.get(f"{d['BaseURL']}/device.xml").content)
        ns = {"u": "urn:schemas-upnp-org:device-1-0"}
        assert xml.findtext("u:URLBase", namespaces=ns) == d["BaseURL"]
        assert xml.findtext("u:device/u:serialNumber", namespaces=ns) == d["DeviceID"]
        entries = setup.http.get(d["LineupURL"]).json()
        assert all(e["URL"].startswith(f"{d['BaseURL']}/auto/v") for e in entries)
        # The path URLs on the main port keep working and carry the same lineup.
        path = setup.http.get(f"{setup.base}/devices/{number}/lineup.json").json()
        assert path == entries
        own_m3u = setup.http.get(f"{d['BaseURL']}/playlist.m3u").text
        path_m3u = setup.http.get(f"{setup.base}/devices/{number}/playlist.m3u").text
        if number > 1:
            assert own_m3u == path_m3u
            assert f'url-tvg="{d["BaseURL"]}/epg.xml"' in own_m3u
    assert len(ids) == 3
    assert setup.http.get(f"{setup.base}/devices/9/discover.json").status_code == 404
    # The root DeviceID is device 1's, kept from before devices existed.
    root = setup.http.get(f"{setup.base}/discover.json").json()
    assert (
        root["DeviceID"]
        == setup.http.get(f"{setup.base}/devices/1/discover.json").json()["DeviceID"]
    )


@pytest.mark.skipif(not DTD.is_file() or shutil.which("tv_validate_file") is None, reason="xmltv")
def test_each_device_guide_validates_and_holds_only_its_channels(
    setup: Setup, tmp_path: Path
) -> None:
    lineups = _lineups(setup)
    for number, numbers in lineups.items():
        body = setup.http.get(f"{setup.base}/devices/{number}/epg.xml")
        assert body.status_code == 200
        path = tmp_path / f"device{number}.xml"
        path.write_bytes(body.content)
        done = subprocess.run(
            ["tv_validate_file", "--dtd-file", str(DTD), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        root = ET.fromstring(body.content)
        channel_ids = {c.get("id") for c in root.iter("channel")}
        assert channel_ids == {f"ch{int(n):04d}.test" for n in numbers}
        assert {p.get("channel") for p in root.iter("programme")} <= channel_ids
        assert len(list(root.iter("programme"))) >= len(numbers)
        # Served again from the cache, under the device's own key.
        again = setup.http.get(f"{setup.base}/devices/{number}/epg.xml")
        assert again.content == body.content
        m3u = setup.http.get(f"{setup.base}/devices/{number}/playlist.m3u").text
        assert re.findall(r'tvg-chno="([^"]+)"', m3u) == numbers


HDHOMERUN_CONFIG_REQUEST = bytes.fromhex("0002000c0104ffffffff0204ffffffff73cc7d8f")


def test_discovery_answers_one_reply_per_device(setup: Setup) -> None:
    """What ``hdhomerun_config discover 127.0.0.1`` sends, answered by all three devices."""
    if not setup.discovery_bound:
        pytest.skip(f"UDP 127.0.0.1:{DISCOVER_UDP_PORT} is busy on this machine")
    expected = {
        n: setup.http.get(f"{setup.base}/devices/{n}/discover.json").json() for n in (1, 2, 3)
    }
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        for _attempt in range(2):  # libhdhomerun asks twice; both are answered in full
            sock.sendto(HDHOMERUN_CONFIG_REQUEST, ("127.0.0.1", DISCOVER_UDP_PORT))
            replies = [sock.recv(2048) for _ in range(3)]
            ids = {
                r[r.index(b"\x02\x04") + 2 : r.index(b"\x02\x04") + 6].hex().upper()
                for r in replies
            }
            assert ids == {d["DeviceID"] for d in expected.values()}
            for d in expected.values():
                assert any(d["BaseURL"].encode() in r for r in replies)


@pytest.mark.skipif(shutil.which("hdhomerun_config") is None, reason="hdhomerun_config missing")
def test_hdhomerun_config_discovers_the_devices(setup: Setup) -> None:
    """The real ``hdhomerun_config`` (Debian 20220303) keeps a discovered BaseURL
    in a 29-byte field and folds devices of one address whose BaseURL does not
    fit (``http://ip:port/devices/N`` rarely does) into one ``http://ip:80``
    entry; with a port per device every BaseURL fits and all three are listed."""
    if not setup.discovery_bound:
        pytest.skip(f"UDP 127.0.0.1:{DISCOVER_UDP_PORT} is busy on this machine")
    expected = {
        n: setup.http.get(f"{setup.base}/devices/{n}/discover.json").json() for n in (1, 2, 3)
    }
    done = subprocess.run(
        ["hdhomerun_config", "discover", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = set(re.findall(r"hdhomerun device ([0-9A-F]{8}) found at 127\.0\.0\.1", done.stdout))
    assert found == {d["DeviceID"] for d in expected.values()}, done.stdout
    assert all(len(d["BaseURL"]) <= 28 for d in expected.values())


def test_a_channel_on_device_3_plays_and_is_one_session_across_devices(setup: Setup) -> None:
    lineups = _lineups(setup)
    channel = lineups[3][0]
    other = lineups[1][0]
    assert setup.http.get(f"{setup.base}/devices/1/auto/v{channel}").status_code == 404
    assert setup.http.get(f"{setup.base}/devices/3/auto/v{other}").status_code == 404
    assert setup.http.get(f"{setup.own(3)}/auto/v{other}").status_code == 404
    assert setup.http.get(f"{setup.own(2)}/auto/v{channel}").status_code == 404
    own = setup.http.get(f"{setup.own(3)}/lineup.json").json()
    assert f"{setup.own(3)}/auto/v{channel}" in {e["URL"] for e in own}
    with (
        setup.http.stream("GET", f"{setup.own(3)}/auto/v{channel}") as first,
        setup.http.stream("GET", f"{setup.base}/devices/3/auto/v{channel}") as second,
        setup.http.stream("GET", f"{setup.base}/auto/v{channel}") as third,
    ):
        for response in (first, second, third):
            assert response.status_code == 200
            assert response.headers["content-type"] == "video/mp2t"
        readers = [response.iter_bytes() for response in (first, second, third)]
        for reader in readers:  # kept open: every client stays tuned
            data = b""
            while len(data) < 188 * 50:
                data += next(reader)
            assert data[0] == 0x47
            assert data[188] == 0x47
        sessions = setup.http.get(
            f"{setup.base}/api/v1/sessions", auth=("admin", ADMIN_PASSWORD)
        ).json()
        live = [s for s in sessions if s["guide_number"] == channel]
        assert len(live) == 1, sessions
        assert live[0]["clients"] == 3, live


def test_adding_ten_channels_moves_none(setup: Setup) -> None:
    before = _lineups(setup)

    async def add_more() -> None:  # a second account brings ten new channels
        runtime = setup.runtime
        added = await runtime.accounts.add(
            "more", server_url=setup.provider.base_url, username="more", password="more-secret"
        )
        assert added.ok, added.message
        await runtime.channel_sync.sync("more")
        runtime.epg.add("more-guide", from_account="more")
        await runtime.epg.refresh("more-guide")

    asyncio.run_coroutine_threadsafe(add_more(), setup.loop).result(120)
    setup.runtime.matching.run()
    after = _lineups(setup)
    for number, numbers in before.items():
        assert set(numbers) <= set(after[number])
    moved = {n for number in before for n in before[number] if n not in after[number]}
    assert moved == set()
    added = set().union(*map(set, after.values())) - set().union(*map(set, before.values()))
    assert len(added) == EXTRA
    assert added <= set(after[3])  # the last device with room takes them
    assert sum(map(len, after.values())) == TOTAL + EXTRA


def test_a_device_added_at_run_time_gets_its_port_without_a_restart(setup: Setup) -> None:
    auth = ("admin", ADMIN_PASSWORD)
    added = setup.http.post(
        f"{setup.base}/api/v1/devices", json={"name": "Picked", "rule": "channels"}, auth=auth
    )
    assert added.status_code == 201, added.text
    number = added.json()["number"]
    assert number == 4
    own = setup.own(number)
    assert added.json()["port"] == setup.port + 3
    assert added.json()["urls"]["base"] == own
    assert added.json()["urls"]["path"] == f"{setup.base}/devices/4"
    early = socket.create_connection(("127.0.0.1", setup.port + 3), timeout=10)
    try:
        d = setup.http.get(f"{own}/discover.json").json()  # open when the API answered
        assert d["BaseURL"] == own
        assert d["FriendlyName"] == "Picked"
        path = setup.http.get(f"{setup.base}/devices/4/discover.json").json()
        assert path == d
        assert setup.http.get(f"{own}/lineup.json").json() == []
    finally:
        removed = setup.http.delete(f"{setup.base}/api/v1/devices/{number}", auth=auth)
        assert removed.status_code == 200, removed.text
    # A connection opened before answers for no device any more ...
    with early:
        early.sendall(b"GET /discover.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert early.recv(64).startswith(b"HTTP/1.1 404")
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=5) as fresh:
        fresh.get(f"{own}/discover.json")  # ... and the port is closed with the device
    assert sorted(d["number"] for d in removed.json()) == [1, 2, 3]


def test_a_busy_port_falls_back_to_the_path_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_run(3)
    settings = load_settings(
        data_dir=tmp_path,
        keyring=False,
        host="127.0.0.1",
        port=port,
        discovery_enabled=False,
        ssdp_enabled=False,
    )
    runtime = Runtime.build(settings)
    runtime.auth.set_password(ADMIN_PASSWORD)
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.new_event_loop()
    busy = socket.socket()
    busy.bind(("127.0.0.1", port + 1))
    busy.listen()
    try:
        with (
            caplog.at_level(logging.WARNING, logger="streamforge.server"),
            _serving(runtime, port, loop),
            httpx.Client(timeout=30) as http,
        ):
            _wait(lambda: _answers(http, f"{base}/discover.json"))
            added = http.post(
                f"{base}/api/v1/devices", json={"rule": "channels"}, auth=("admin", ADMIN_PASSWORD)
            )
            assert added.status_code == 201, added.text
            assert added.json()["port"] is None
            assert added.json()["urls"]["base"] == f"{base}/devices/2"
            d = http.get(f"{base}/devices/2/discover.json").json()
            assert d["BaseURL"] == f"{base}/devices/2"
            assert d["LineupURL"] == f"{base}/devices/2/lineup.json"
            assert f"device 2: port {port + 1} not available" in caplog.text
            # Freed, the port opens at the next look at the devices (here: another add).
            busy.close()
            again = http.post(
                f"{base}/api/v1/devices", json={"rule": "channels"}, auth=("admin", ADMIN_PASSWORD)
            )
            assert again.status_code == 201, again.text
            own = f"http://127.0.0.1:{port + 1}"
            assert http.get(f"{own}/discover.json").json()["BaseURL"] == own
    finally:
        busy.close()
        loop.run_until_complete(runtime.aclose())
        loop.close()


def test_port_urls_and_off(tmp_path: Path) -> None:
    assert dev.with_port("http://192.168.1.20:5004", 5006) == "http://192.168.1.20:5006"
    assert dev.with_port("http://[fd00::2]:5004/", 5005) == "http://[fd00::2]:5005"
    assert dev.with_port("https://tv.example", 8444) == "https://tv.example:8444"
    on = load_settings(data_dir=tmp_path, keyring=False, port=5004)
    assert [dev.served_port(on, n) for n in (1, 2, 3)] == [None, 5005, 5006]
    proxied = load_settings(
        data_dir=tmp_path, keyring=False, port=5004, base_url="http://nas.lan:8080"
    )
    assert [dev.public_port(proxied, n) for n in (1, 2, 3)] == [None, 8081, 8082]
    off = load_settings(data_dir=tmp_path, keyring=False, port=5004, device_ports="off")
    assert dev.served_port(off, 2) is None
    assert dev.public_port(off, 2) is None
    device = dev.Device(2, 2, "10000002", port=5005)
    assert device.base_url("http://h:5004") == "http://h:5005"
    assert device.path_url("http://h:5004") == "http://h:5004/devices/2"
    assert dev.Device(2, 2, "10000002").base_url("http://h:5004") == "http://h:5004/devices/2"


# -- the split rules on plain values ----------------------------------------------------------
def _row(cid: int, group: str = "") -> LineupRow:
    return LineupRow(cid, str(cid), f"C{cid}", f"c{cid}.x", None, group, "HD", 1)


def _stored(pk: int, seq: int, manual: bool = False) -> dev._Stored:
    return dev._Stored(pk, manual, seq)


def test_split_rules() -> None:
    rows = [_row(i, "Sports" if i % 5 == 0 else "News") for i in range(1, 21)]
    one = dev.Device(1, 1, "10000001")
    # Fresh: consecutive ranges of at most the cap, new devices opened in order.
    split = dev._split(rows, [one], {}, {}, 8)
    assert split.opened == [2, 3]
    assert [cid for cid in range(1, 21) if split.device_of[cid] == 1] == list(range(1, 9))
    assert [cid for cid in range(1, 21) if split.device_of[cid] == 3] == list(range(17, 21))
    # A group rule wins over the kept auto device; hand-picked wins over the rule.
    sports = dev.Device(4, 4, "10000004", rule=dev.GROUP, match="sports")
    devices = [one, dev.Device(2, 2, "1"), dev.Device(3, 3, "2"), sports]
    stored = {cid: _stored(split.device_of[cid], cid) for cid in range(1, 21)}
    stored[10] = _stored(1, 99, manual=True)
    again = dev._split(rows, devices, stored, {}, 8)
    assert again.device_of[5] == 4
    assert again.device_of[15] == 4
    assert again.device_of[10] == 1
    assert 5 in again.writes
    assert 10 not in again.writes
    # Lowering the cap moves the channels put on a device last.
    lower = dev._split(rows, [one], {cid: _stored(1, cid) for cid in range(1, 21)}, {}, 15)
    assert [cid for cid in range(1, 21) if lower.device_of[cid] == 1] == list(range(1, 16))
    assert lower.opened == [2]
    # A category rule matches any stream's provider category, case-insensitively.
    news = dev.Device(2, 2, "10000002", rule=dev.CATEGORY, match="UK News")
    cats = {3: {"uk news"}}
    assert dev._split(rows, [one, news], {}, cats, 100).device_of[3] == 2

"""Tests for the HDHomeRun document builders and LAN address selection
(``outputs.hdhomerun`` and ``outputs.lan``, which together produce the URLs
those documents carry)."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from streamforge.outputs.device_id import is_valid_device_id
from streamforge.outputs.hdhomerun import (
    LineupChannel,
    TunerIdentity,
    device_xml,
    discover_json,
    iter_lineup,
    lineup_entry,
    lineup_status_json,
    stream_url,
)
from streamforge.outputs.lan import (
    LOOPBACK,
    advertised_base_url,
    choose_lan_ip,
    detect_lan_ip,
    hostname_addresses,
    interface_addresses,
)

UPNP = "{urn:schemas-upnp-org:device-1-0}"


def _identity(**overrides: object) -> TunerIdentity:
    values: dict[str, object] = {
        "device_id": "12345674",
        "base_url": "http://192.168.1.20:5004/",
        "tuner_count": 4,
        "device_auth": "authstring",
    }
    values.update(overrides)
    return TunerIdentity(**values)  # type: ignore[arg-type]


def test_discover_json_fields() -> None:
    doc = discover_json(_identity())
    assert doc == {
        "FriendlyName": "StreamForge",
        "Manufacturer": "Silicondust",
        "ModelNumber": "HDTC-2US",
        "FirmwareName": "hdhomeruntc_atsc",
        "FirmwareVersion": "20200101",
        "DeviceID": "12345674",
        "DeviceAuth": "authstring",
        "BaseURL": "http://192.168.1.20:5004",
        "LineupURL": "http://192.168.1.20:5004/lineup.json",
        "TunerCount": 4,
    }
    assert is_valid_device_id(str(doc["DeviceID"]))
    json.dumps(doc)


def test_device_id_is_upper_cased() -> None:
    assert discover_json(_identity(device_id="191b7585"))["DeviceID"] == "191B7585"


def test_lineup_status_is_constant() -> None:
    assert lineup_status_json() == {
        "ScanInProgress": 0,
        "ScanPossible": 1,
        "Source": "Cable",
        "SourceList": ["Cable"],
    }


def test_lineup_entries() -> None:
    base = "http://192.168.1.20:5004"
    channels = [
        LineupChannel("101", "BBC One HD", hd=True, video_codec="H264", audio_codec="AAC"),
        LineupChannel("5.1", "Local SD", hd=False),
    ]
    entries = list(iter_lineup(base + "/", channels))
    assert entries == [
        {
            "GuideNumber": "101",
            "GuideName": "BBC One HD",
            "URL": f"{base}/auto/v101",
            "HD": 1,
            "VideoCodec": "H264",
            "AudioCodec": "AAC",
        },
        {"GuideNumber": "5.1", "GuideName": "Local SD", "URL": f"{base}/auto/v5.1", "HD": 0},
    ]
    json.dumps(entries)


def test_stream_url_quotes_odd_numbers() -> None:
    assert stream_url("http://h:1", "7 a/b") == "http://h:1/auto/v7%20a%2Fb"
    entry = lineup_entry("http://h:1", LineupChannel("12", "Name & <Co>"))
    assert entry["GuideName"] == "Name & <Co>"  # JSON needs no XML escaping


def test_device_xml_is_valid_and_escaped() -> None:
    identity = _identity(friendly_name='Tom & Jerry\'s <"Tuner">\x07', model_name="M&M")
    text = device_xml(identity)
    root = etree.fromstring(text.encode("utf-8"))
    device = root.find(f"{UPNP}device")
    assert device is not None
    assert device.findtext(f"{UPNP}deviceType") == "urn:schemas-upnp-org:device:MediaServer:1"
    assert device.findtext(f"{UPNP}friendlyName") == 'Tom & Jerry\'s <"Tuner">'
    assert device.findtext(f"{UPNP}manufacturer") == "Silicondust"
    assert device.findtext(f"{UPNP}modelName") == "M&M"
    assert device.findtext(f"{UPNP}modelNumber") == "HDTC-2US"
    assert device.findtext(f"{UPNP}serialNumber") == "12345674"
    udn = device.findtext(f"{UPNP}UDN")
    assert udn == identity.udn
    assert udn is not None
    assert udn.startswith("uuid:")
    assert root.findtext(f"{UPNP}URLBase") == "http://192.168.1.20:5004"


def test_udn_is_stable_across_instances() -> None:
    assert _identity().udn == _identity(base_url="http://10.0.0.1:1").udn
    assert _identity().udn != _identity(device_id="191B7585").udn


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        (["127.0.0.1", "192.168.1.5"], "192.168.1.5"),
        (["169.254.3.4", "8.8.4.4", "10.1.2.3"], "10.1.2.3"),
        (["169.254.3.4", "8.8.4.4"], "8.8.4.4"),
        (["169.254.3.4"], "169.254.3.4"),
        (["127.0.1.1", "0.0.0.0", "224.0.0.1", "not-an-ip", "::1"], LOOPBACK),
        ([], LOOPBACK),
        (["192.168.1.5", "10.0.0.2"], "192.168.1.5"),
    ],
)
def test_choose_lan_ip(candidates: list[str], expected: str) -> None:
    assert choose_lan_ip(candidates) == expected


def test_detect_uses_override_then_sources() -> None:
    def boom() -> list[str]:
        raise AssertionError("sources must not be consulted when overridden")

    assert detect_lan_ip("nas.local", sources=[boom]) == "nas.local"
    assert detect_lan_ip(sources=[lambda: ["127.0.0.1"], lambda: ["172.16.0.9"]]) == "172.16.0.9"
    assert detect_lan_ip(sources=[]) == LOOPBACK


def test_real_sources_return_ipv4_strings() -> None:
    for address in [*interface_addresses(), *hostname_addresses()]:
        assert address.count(".") == 3
    assert detect_lan_ip().count(".") == 3


def test_advertised_base_url() -> None:
    sources = [lambda: ["10.9.8.7"]]
    assert advertised_base_url("0.0.0.0", 5004, sources=sources) == "http://10.9.8.7:5004"
    assert advertised_base_url("192.168.0.2", 80, sources=sources) == "http://192.168.0.2:80"
    assert advertised_base_url("0.0.0.0", 5004, override="tv.lan") == "http://tv.lan:5004"
    assert advertised_base_url("fe80::1", 5004) == "http://[fe80::1]:5004"

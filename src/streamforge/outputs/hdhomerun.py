"""Pure builders for the HDHomeRun HTTP API that Plex talks to.

Plex's "HDHomeRun" DVR support needs four documents from a tuner:

``/discover.json``
    Identity and capabilities: names, model, firmware, ``DeviceID`` (which
    must pass libhdhomerun's checksum), ``DeviceAuth``, ``BaseURL``,
    ``LineupURL`` and ``TunerCount``.  ``TunerCount`` is what Plex uses to
    decide how many recordings/streams it may run at once.
``/lineup_status.json``
    Whether a channel scan is running.  An IPTV lineup is always "scanned",
    so this is constant: no scan in progress, scan possible, source Cable.
``/lineup.json``
    One entry per channel: ``GuideNumber`` (a string), ``GuideName``,
    ``URL`` of the stream (``{base}/auto/v{GuideNumber}``, which is what
    real tuners use) and ``HD`` as ``1``/``0``, optionally codecs.
``/device.xml``
    A UPnP MediaServer root device description, which SSDP's ``LOCATION``
    points to.

The functions here take plain values and return JSON-ready dicts or a
string; the web layer decides routes and serialisation.  Nothing here does
I/O, so they are trivially testable and cheap enough to call per request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

from streamforge.outputs.device_id import device_udn


@dataclass(frozen=True, slots=True)
class TunerIdentity:
    """Everything that describes the emulated tuner itself.

    ``base_url`` is the externally reachable ``http://host:port`` of
    StreamForge, without a trailing slash (one is stripped if present).
    """

    device_id: str
    base_url: str
    tuner_count: int
    device_auth: str = "streamforge"
    friendly_name: str = "StreamForge"
    manufacturer: str = "Silicondust"
    model_name: str = "HDHomeRun CONNECT"
    model_number: str = "HDTC-2US"
    firmware_name: str = "hdhomeruntc_atsc"
    firmware_version: str = "20200101"

    @property
    def base(self) -> str:
        """``base_url`` without a trailing slash."""
        return self.base_url.rstrip("/")

    @property
    def lineup_url(self) -> str:
        return f"{self.base}/lineup.json"

    @property
    def device_xml_url(self) -> str:
        return f"{self.base}/device.xml"

    @property
    def udn(self) -> str:
        """The UPnP ``uuid:…`` derived from the device id (stable)."""
        return device_udn(self.device_id)


@dataclass(frozen=True, slots=True)
class LineupChannel:
    """One channel as Plex's lineup shows it."""

    guide_number: str
    guide_name: str
    hd: bool = True
    video_codec: str | None = None
    audio_codec: str | None = None


def discover_json(identity: TunerIdentity) -> dict[str, str | int]:
    """The ``/discover.json`` document."""
    return {
        "FriendlyName": identity.friendly_name,
        "Manufacturer": identity.manufacturer,
        "ModelNumber": identity.model_number,
        "FirmwareName": identity.firmware_name,
        "FirmwareVersion": identity.firmware_version,
        "DeviceID": identity.device_id.upper(),
        "DeviceAuth": identity.device_auth,
        "BaseURL": identity.base,
        "LineupURL": identity.lineup_url,
        "TunerCount": identity.tuner_count,
    }


def lineup_status_json(source: str = "Cable") -> dict[str, int | str | list[str]]:
    """The ``/lineup_status.json`` document: never scanning, scan possible."""
    return {
        "ScanInProgress": 0,
        "ScanPossible": 1,
        "Source": source,
        "SourceList": [source],
    }


def stream_url(base_url: str, guide_number: str) -> str:
    """The tuner URL of a channel, ``{base}/auto/v{GuideNumber}``."""
    return f"{base_url.rstrip('/')}/auto/v{quote(guide_number, safe='.')}"


def lineup_entry(base_url: str, channel: LineupChannel) -> dict[str, str | int]:
    """One ``/lineup.json`` entry."""
    entry: dict[str, str | int] = {
        "GuideNumber": channel.guide_number,
        "GuideName": channel.guide_name,
        "URL": stream_url(base_url, channel.guide_number),
        "HD": 1 if channel.hd else 0,
    }
    if channel.video_codec:
        entry["VideoCodec"] = channel.video_codec
    if channel.audio_codec:
        entry["AudioCodec"] = channel.audio_codec
    return entry


def iter_lineup(base_url: str, channels: Iterable[LineupChannel]) -> Iterator[dict[str, str | int]]:
    """Lineup entries for ``channels`` in the order given."""
    for channel in channels:
        yield lineup_entry(base_url, channel)


# Characters XML 1.0 cannot carry at all (C0 controls other than TAB/LF/CR,
# lone surrogates, U+FFFE/U+FFFF).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: str) -> str:
    """``value`` with XML-illegal characters dropped and ``& < >`` escaped."""
    return escape(_XML_ILLEGAL.sub("", value))


def device_xml(identity: TunerIdentity) -> str:
    """The UPnP root device description served at ``/device.xml``."""
    text = _xml_text
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<root xmlns="urn:schemas-upnp-org:device-1-0">\n'
        "  <specVersion><major>1</major><minor>0</minor></specVersion>\n"
        f"  <URLBase>{text(identity.base)}</URLBase>\n"
        "  <device>\n"
        "    <deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>\n"
        f"    <friendlyName>{text(identity.friendly_name)}</friendlyName>\n"
        f"    <manufacturer>{text(identity.manufacturer)}</manufacturer>\n"
        f"    <modelName>{text(identity.model_name)}</modelName>\n"
        f"    <modelNumber>{text(identity.model_number)}</modelNumber>\n"
        f"    <serialNumber>{text(identity.device_id.upper())}</serialNumber>\n"
        f"    <UDN>{text(identity.udn)}</UDN>\n"
        "  </device>\n"
        "</root>\n"
    )

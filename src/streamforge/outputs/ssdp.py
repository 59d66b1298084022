"""SSDP (UPnP discovery) responder and announcer.

Theory of operation
-------------------
UPnP control points find devices in two ways, both over UDP port 1900:

* **Search.**  The control point multicasts ``M-SEARCH * HTTP/1.1`` to
  239.255.255.250:1900 with ``MAN: "ssdp:discover"`` and a search target
  ``ST``.  Every device that matches answers with a unicast
  ``HTTP/1.1 200 OK`` to the searcher's source address, one response per
  matching target, each carrying ``LOCATION`` (the device description URL),
  ``ST`` and ``USN`` (unique service name).
* **Announcement.**  Devices multicast ``NOTIFY * HTTP/1.1`` messages:
  ``NTS: ssdp:alive`` when they appear (and periodically, before
  ``CACHE-CONTROL: max-age`` expires) and ``NTS: ssdp:byebye`` when they go
  away.  A root device announces three targets: ``upnp:rootdevice``, its
  ``uuid:…`` and its device type.

We are a root ``MediaServer:1`` device with no embedded devices or
services, so the targets we match are ``ssdp:all`` (answered with all three),
``upnp:rootdevice``, ``urn:schemas-upnp-org:device:MediaServer:1`` and our
own ``uuid:…``.  ``USN`` is ``uuid:…::<target>``, except for the uuid target
itself where it is just the uuid.

StreamForge may speak for several virtual devices
(:mod:`streamforge.outputs.devices`); each is its own root device with its
own ``uuid:…`` (derived from its DeviceID) and ``LOCATION``
(``/devices/N/device.xml``), announced and answered for separately.

Responses are sent immediately rather than after a random delay up to
``MX``; a single device causes no response storm. An ``ssdp:all`` answer is
about 8 times the size of the search, so answers go only to senders on a
network of the bound interface(s) and at a bounded rate per sender (the
reflection guard of :mod:`streamforge.outputs.udp`); NOTIFY messages are
not affected.

Everything about addresses is configurable: the bind host/port, whether to
join the multicast group, and where NOTIFY messages go.  Production binds
``0.0.0.0:1900``, joins 239.255.255.250 and notifies the group; tests bind
``127.0.0.1:<free port>``, join nothing and notify a loopback receiver.  A
busy port is logged as a warning and :meth:`SsdpResponder.start` returns
``False``; SSDP is optional (Plex finds HDHomeRuns by their own protocol and
by manual address entry).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamforge import __version__
from streamforge.outputs.hdhomerun import TunerIdentity
from streamforge.outputs.udp import ReplyLimits
from streamforge.tasks import TaskOwner

log = logging.getLogger(__name__)

SSDP_GROUP = "239.255.255.250"
SSDP_PORT = 1900
DEVICE_TYPE = "urn:schemas-upnp-org:device:MediaServer:1"
ROOT_DEVICE = "upnp:rootdevice"
SEARCH_ALL = "ssdp:all"
DEFAULT_SERVER = f"Linux/1.0 UPnP/1.0 StreamForge/{__version__}"


@dataclass(frozen=True, slots=True)
class SsdpDevice:
    """What SSDP advertises; produced fresh for every message."""

    udn: str  # "uuid:…"
    location: str  # "{base}/device.xml"
    server: str = DEFAULT_SERVER
    max_age: int = 1800


def ssdp_device_from(identity: TunerIdentity) -> SsdpDevice:
    """The SSDP view of the tuner: its UDN and ``{base}/device.xml``."""
    return SsdpDevice(udn=identity.udn, location=identity.device_xml_url)


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A parsed ``M-SEARCH``."""

    st: str
    man: str
    mx: int | None


def parse_search(data: bytes) -> SearchRequest | None:
    """Parse an ``M-SEARCH`` datagram; ``None`` for anything else or junk."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    if not lines or lines[0].strip().upper() != "M-SEARCH * HTTP/1.1":
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().upper()] = value.strip()
    st = headers.get("ST")
    man = headers.get("MAN", "").strip('"')
    if not st or man != "ssdp:discover":
        return None
    mx: int | None
    try:
        mx = int(headers["MX"])
    except (KeyError, ValueError):
        mx = None
    return SearchRequest(st=st, man=man, mx=mx)


def _usn(device: SsdpDevice, target: str) -> str:
    return device.udn if target == device.udn else f"{device.udn}::{target}"


def advertised_targets(device: SsdpDevice) -> tuple[str, str, str]:
    """The three notification types a root MediaServer announces."""
    return (ROOT_DEVICE, device.udn, DEVICE_TYPE)


def matching_targets(device: SsdpDevice, st: str) -> list[str]:
    """The targets to answer for search target ``st`` (empty: stay silent)."""
    if st == SEARCH_ALL:
        return list(advertised_targets(device))
    if st in (ROOT_DEVICE, DEVICE_TYPE) or st.lower() == device.udn.lower():
        return [st]
    return []


def _message(start_line: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start_line, *(f"{name}: {value}" if value else f"{name}:" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def search_response(device: SsdpDevice, target: str) -> bytes:
    """The unicast ``200 OK`` answering a search for ``target``."""
    return _message(
        "HTTP/1.1 200 OK",
        [
            ("CACHE-CONTROL", f"max-age={device.max_age}"),
            ("EXT", ""),
            ("LOCATION", device.location),
            ("SERVER", device.server),
            ("ST", target),
            ("USN", _usn(device, target)),
        ],
    )


def notify_alive(device: SsdpDevice, target: str, host: str) -> bytes:
    """An ``ssdp:alive`` NOTIFY for ``target``; ``host`` is the HOST header."""
    return _message(
        "NOTIFY * HTTP/1.1",
        [
            ("HOST", host),
            ("CACHE-CONTROL", f"max-age={device.max_age}"),
            ("LOCATION", device.location),
            ("NT", target),
            ("NTS", "ssdp:alive"),
            ("SERVER", device.server),
            ("USN", _usn(device, target)),
        ],
    )


def notify_byebye(device: SsdpDevice, target: str, host: str) -> bytes:
    """An ``ssdp:byebye`` NOTIFY for ``target``."""
    return _message(
        "NOTIFY * HTTP/1.1",
        [("HOST", host), ("NT", target), ("NTS", "ssdp:byebye"), ("USN", _usn(device, target))],
    )


SsdpDevices = SsdpDevice | Sequence[SsdpDevice]
"""One device, or every device StreamForge speaks for."""


def _as_list(devices: SsdpDevices) -> Sequence[SsdpDevice]:
    return (devices,) if isinstance(devices, SsdpDevice) else devices


def answer_search(devices: SsdpDevices, data: bytes) -> list[bytes]:
    """Unicast responses to one M-SEARCH datagram, for every device it asks
    for (nothing for anything else)."""
    request = parse_search(data)
    if request is None:
        return []
    return [
        search_response(device, target)
        for device in _as_list(devices)
        for target in matching_targets(device, request.st)
    ]


class SsdpResponder:
    """Owns the SSDP socket: answers searches and sends NOTIFY messages.

    ``device`` is called for every message so the advertised location is
    current.  ``notify_target`` is where NOTIFY datagrams go (the multicast
    group in production); ``multicast_group`` is joined on start when set.
    With ``announce_interval`` set, ``ssdp:alive`` is repeated that often
    (it should be well below ``max_age``). ``limits`` is the reflection guard
    for search answers.
    """

    def __init__(
        self,
        device: Callable[[], SsdpDevices],
        *,
        notify_target: tuple[str, int] = (SSDP_GROUP, SSDP_PORT),
        multicast_group: str | None = SSDP_GROUP,
        announce_interval: float | None = 600.0,
        limits: ReplyLimits | None = None,
    ) -> None:
        self._device = device
        self._limits = limits or ReplyLimits()
        self._notify_target = notify_target
        self._group = multicast_group
        self._interval = announce_interval
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: TaskOwner | None = None

    @property
    def running(self) -> bool:
        return self._transport is not None

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound ``(host, port)`` while running."""
        if self._transport is None:
            return None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def _open_socket(self, host: str, port: int) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # Other UPnP stacks on the host (minidlna, Plex's own DLNA server)
            # may share 1900 when they also set SO_REUSEADDR.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            log.warning("SSDP disabled: cannot bind UDP %s:%d (%s)", host, port, exc)
            return None
        if self._group is not None:
            membership = socket.inet_aton(self._group) + socket.inet_aton("0.0.0.0")
            try:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
            except OSError as exc:
                log.warning("SSDP: cannot join multicast group %s (%s)", self._group, exc)
        sock.setblocking(False)
        return sock

    async def start(self, host: str = "0.0.0.0", port: int = SSDP_PORT) -> bool:
        """Bind, announce ``ssdp:alive`` and start answering; ``False`` on bind failure."""
        if self._transport is not None:
            return True
        sock = self._open_socket(host, port)
        if sock is None:
            return False
        bound_host = str(sock.getsockname()[0])
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self._limits.protocol(
                "SSDP",
                lambda data, _addr: answer_search(self._device(), data),
                bound_host,
                devices=lambda: len(_as_list(self._device())),
            ),
            sock=sock,
        )
        self._transport = transport
        log.info("SSDP listening on UDP %s:%d", host, port)
        self.announce_alive()
        if self._interval is not None:
            self._tasks = TaskOwner("ssdp")
            self._tasks.spawn(self._announce_forever(self._interval), name="announce")
        return True

    async def _announce_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.announce_alive()

    def _send_notify(self, build: Callable[[SsdpDevice, str, str], bytes]) -> None:
        if self._transport is None:
            return
        host = f"{self._notify_target[0]}:{self._notify_target[1]}"
        for device in _as_list(self._device()):
            for target in advertised_targets(device):
                self._transport.sendto(build(device, target, host), self._notify_target)

    def announce_alive(self) -> None:
        """Send one ``ssdp:alive`` per advertised target of every device."""
        self._send_notify(notify_alive)

    def announce_byebye(self) -> None:
        """Send one ``ssdp:byebye`` per advertised target."""
        self._send_notify(notify_byebye)

    async def stop(self) -> None:
        """Say ``ssdp:byebye``, stop announcing and close the socket (idempotent)."""
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            await tasks.close()
        if self._transport is None:
            return
        self.announce_byebye()
        transport, self._transport = self._transport, None
        transport.close()

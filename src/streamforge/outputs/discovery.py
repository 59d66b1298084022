"""libhdhomerun UDP discovery responder (port 65001).

Theory of operation
-------------------
HDHomeRun clients (Plex, ``hdhomerun_config discover``, Channels DVR …) find
tuners by sending a *discover request* datagram to UDP port 65001, either as a
broadcast or directly to an address, and collecting every *discover reply*
that comes back to the source address of the request within a short window.

Every datagram is one frame::

    u16 type (big-endian) | u16 payload length (big-endian) | payload | u32 CRC

The CRC is the ordinary CRC-32 (``zlib.crc32``) of the header and payload,
stored little-endian.  The payload is a sequence of TLVs: a one-byte tag, a
length, and the value.  Lengths below 128 take one byte; longer ones take two
bytes, the first carrying the low seven bits with the top bit set and the
second the remaining high bits (libhdhomerun's "var length").

A request carries the device type and device id it is looking for, each of
which may be the wildcard ``0xFFFFFFFF``.  We answer when the requested type
is a tuner (or the wildcard) and the requested id is ours (or the wildcard);
a request that names several types is answered if any of them matches.
StreamForge may speak for several virtual devices
(:mod:`streamforge.outputs.devices`): each device that matches gets its own
reply datagram, as if each were a box of its own, so a wildcard request
lists them all.  The
reply always carries DEVICE_TYPE (tuner) and DEVICE_ID, plus the tuner count,
base URL, lineup URL and device auth string, read afresh from a callable for
every reply so a change of address or tuner count is advertised at once.

Malformed datagrams (too short, wrong length, bad CRC, truncated TLVs) are
dropped without a reply. A reply is about 5.5 times the size of a request,
so replies go only to senders on a network of the bound interface(s) and at
a bounded rate per sender (the reflection guard of
:mod:`streamforge.outputs.udp`).  Failing to bind the port (another tuner emulator or
a real HDHomeRun library already owns it) is logged as a warning and reported
by :meth:`DiscoveryResponder.start` returning ``False`` — discovery is a
convenience; the HTTP endpoints keep working without it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from streamforge.errors import StreamForgeError
from streamforge.outputs.device_id import DEVICE_ID_WILDCARD, parse_device_id
from streamforge.outputs.hdhomerun import TunerIdentity
from streamforge.outputs.udp import ReplyLimits

log = logging.getLogger(__name__)

DISCOVER_UDP_PORT = 65001

TYPE_DISCOVER_REQ = 0x0002
TYPE_DISCOVER_RPY = 0x0003

TAG_DEVICE_TYPE = 0x01
TAG_DEVICE_ID = 0x02
TAG_TUNER_COUNT = 0x10
TAG_LINEUP_URL = 0x27
TAG_BASE_URL = 0x2A
TAG_DEVICE_AUTH_STR = 0x2B

DEVICE_TYPE_TUNER = 0x00000001
DEVICE_TYPE_WILDCARD = 0xFFFFFFFF

_HEADER = struct.Struct(">HH")
_MAX_VAR_LENGTH = 0x7FFF


class MalformedFrameError(StreamForgeError):
    """A discovery datagram is truncated, inconsistent or fails its CRC."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a discover reply advertises; produced fresh for every reply."""

    device_id: str
    tuner_count: int
    base_url: str
    lineup_url: str
    device_auth: str


def device_info_from(identity: TunerIdentity) -> DeviceInfo:
    """The discovery view of the tuner identity ``/discover.json`` also shows."""
    return DeviceInfo(
        device_id=identity.device_id,
        tuner_count=identity.tuner_count,
        base_url=identity.base,
        lineup_url=identity.lineup_url,
        device_auth=identity.device_auth,
    )


@dataclass(frozen=True, slots=True)
class DiscoverRequest:
    """The device types and ids a discover request is looking for.

    An empty tuple means the request did not name any, which is treated as
    the wildcard.
    """

    device_types: tuple[int, ...]
    device_ids: tuple[int, ...]


def encode_var_length(length: int) -> bytes:
    """Encode a TLV length the way libhdhomerun does (1 byte, or 2 if >= 128)."""
    if length < 0 or length > _MAX_VAR_LENGTH:
        raise ValueError(f"TLV length {length} out of range")
    if length < 0x80:
        return bytes((length,))
    return bytes((0x80 | (length & 0x7F), length >> 7))


def encode_tlv(tag: int, value: bytes) -> bytes:
    """One TLV: tag byte, var length, value."""
    return bytes((tag,)) + encode_var_length(len(value)) + value


def iter_tlvs(payload: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield ``(tag, value)`` pairs; raise :class:`MalformedFrameError` if truncated."""
    pos = 0
    end = len(payload)
    while pos < end:
        if pos + 2 > end:
            raise MalformedFrameError("truncated TLV header")
        tag = payload[pos]
        length = payload[pos + 1]
        pos += 2
        if length & 0x80:
            if pos >= end:
                raise MalformedFrameError("truncated TLV length")
            length = (length & 0x7F) | (payload[pos] << 7)
            pos += 1
        if pos + length > end:
            raise MalformedFrameError("TLV value runs past the end of the frame")
        yield tag, payload[pos : pos + length]
        pos += length


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    """Seal ``payload`` into a frame: header, payload and little-endian CRC-32."""
    if len(payload) > 0xFFFF:
        raise ValueError("discovery payload too large")
    body = _HEADER.pack(frame_type, len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def decode_frame(data: bytes) -> tuple[int, bytes]:
    """Check a frame's length and CRC and return ``(type, payload)``."""
    if len(data) < _HEADER.size + 4:
        raise MalformedFrameError("frame shorter than header and CRC")
    frame_type, length = _HEADER.unpack_from(data)
    if len(data) != _HEADER.size + length + 4:
        raise MalformedFrameError("frame length does not match its header")
    body = data[:-4]
    (crc,) = struct.unpack_from("<I", data, len(body))
    if zlib.crc32(body) != crc:
        raise MalformedFrameError("frame CRC mismatch")
    return frame_type, data[_HEADER.size : -4]


def parse_discover_request(data: bytes) -> DiscoverRequest:
    """Decode a DISCOVER_REQ datagram; raise :class:`MalformedFrameError` otherwise."""
    frame_type, payload = decode_frame(data)
    if frame_type != TYPE_DISCOVER_REQ:
        raise MalformedFrameError(f"frame type 0x{frame_type:04x} is not a discover request")
    types: list[int] = []
    ids: list[int] = []
    for tag, value in iter_tlvs(payload):
        if tag == TAG_DEVICE_TYPE and len(value) == 4:
            types.append(int.from_bytes(value, "big"))
        elif tag == TAG_DEVICE_ID and len(value) == 4:
            ids.append(int.from_bytes(value, "big"))
    return DiscoverRequest(tuple(types), tuple(ids))


def request_matches(request: DiscoverRequest, device_id: int) -> bool:
    """True when ``request`` asks for a tuner with our id (wildcards allowed)."""
    type_ok = not request.device_types or any(
        t in (DEVICE_TYPE_TUNER, DEVICE_TYPE_WILDCARD) for t in request.device_types
    )
    id_ok = not request.device_ids or any(
        i in (device_id, DEVICE_ID_WILDCARD) for i in request.device_ids
    )
    return type_ok and id_ok


def build_discover_reply(info: DeviceInfo) -> bytes:
    """The DISCOVER_RPY frame advertising ``info``."""
    payload = b"".join(
        (
            encode_tlv(TAG_DEVICE_TYPE, DEVICE_TYPE_TUNER.to_bytes(4, "big")),
            encode_tlv(TAG_DEVICE_ID, parse_device_id(info.device_id).to_bytes(4, "big")),
            encode_tlv(TAG_TUNER_COUNT, bytes((max(0, min(info.tuner_count, 255)),))),
            encode_tlv(TAG_BASE_URL, info.base_url.encode("utf-8")),
            encode_tlv(TAG_LINEUP_URL, info.lineup_url.encode("utf-8")),
            encode_tlv(TAG_DEVICE_AUTH_STR, info.device_auth.encode("utf-8")),
        )
    )
    return encode_frame(TYPE_DISCOVER_RPY, payload)


Devices = DeviceInfo | Sequence[DeviceInfo]
"""One device, or every device StreamForge speaks for."""


def _as_list(devices: Devices) -> Sequence[DeviceInfo]:
    return (devices,) if isinstance(devices, DeviceInfo) else devices


def answer_discovery(devices: Devices, data: bytes, addr: object) -> list[bytes]:
    """The replies to one datagram: one discover reply per device it asks for."""
    try:
        request = parse_discover_request(data)
    except MalformedFrameError as exc:
        log.debug("ignoring discovery datagram from %s: %s", addr, exc)
        return []
    replies: list[bytes] = []
    for info in _as_list(devices):
        try:
            our_id = parse_device_id(info.device_id)
        except ValueError:
            log.warning("not answering discovery: device id %r is invalid", info.device_id)
            continue
        if not request_matches(request, our_id):
            continue
        try:
            replies.append(build_discover_reply(info))
        except ValueError as exc:
            log.warning("not answering discovery: %s", exc)
    return replies


class DiscoveryResponder:
    """Owns the UDP socket that answers libhdhomerun discovery.

    ``info`` is called for every request, so the advertised values are always
    current; it returns one device or all of them (a reply each). ``limits``
    is the reflection guard; a request answered by every device costs one
    device's worth of tokens (see :mod:`streamforge.outputs.udp`).
    """

    def __init__(self, info: Callable[[], Devices], *, limits: ReplyLimits | None = None) -> None:
        self._info = info
        self._limits = limits or ReplyLimits()
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def running(self) -> bool:
        """True while the socket is bound."""
        return self._transport is not None

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound ``(host, port)`` while running."""
        if self._transport is None:
            return None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def start(self, host: str = "0.0.0.0", port: int = DISCOVER_UDP_PORT) -> bool:
        """Bind ``host:port`` and start answering; ``False`` if the bind fails."""
        if self._transport is not None:
            return True
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            log.warning("HDHomeRun discovery disabled: cannot bind UDP %s:%d (%s)", host, port, exc)
            return False
        sock.setblocking(False)
        bound_host = str(sock.getsockname()[0])
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self._limits.protocol(
                "discovery",
                lambda data, addr: answer_discovery(self._info(), data, addr),
                bound_host,
                devices=lambda: len(_as_list(self._info())),
            ),
            sock=sock,
        )
        self._transport = transport
        log.info("HDHomeRun discovery listening on UDP %s:%d", host, port)
        return True

    async def stop(self) -> None:
        """Close the socket (idempotent)."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

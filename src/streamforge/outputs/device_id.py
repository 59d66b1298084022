"""HDHomeRun device identifiers.

A real HDHomeRun carries an 8-hex-digit device id whose last nibble is a
check digit.  libhdhomerun (and therefore Plex, which links against it for
network discovery) validates ids like this: walk the eight nibbles from the
most significant one; nibbles in odd positions (1st, 3rd, 5th, 7th) are first
mapped through a fixed 16-entry permutation table, nibbles in even positions
are used as they are, and everything is XOR-ed together.  An id is valid when
the XOR is zero.

Because the final nibble enters the XOR unmapped, generating a valid id is
simple: draw the first seven nibbles at random and set the eighth to the XOR
of the other seven terms.

StreamForge generates the id once, and the caller persists it so the emulated
tuner keeps the same identity across restarts (Plex keys its DVR settings on
it).  The UPnP ``UDN`` is derived from the id deterministically, so it is
stable too.

In a cluster each node presents its own id, derived from the stored one and
the node id (:func:`node_device_id`).
"""

from __future__ import annotations

import hashlib
import random
import uuid

# The permutation libhdhomerun applies to the odd-position nibbles.
_NIBBLE_TABLE: tuple[int, ...] = (
    0xA,
    0x5,
    0xF,
    0x6,
    0x7,
    0xC,
    0x1,
    0xB,
    0x9,
    0x2,
    0x8,
    0xD,
    0x4,
    0x3,
    0xE,
    0x0,
)

#: The wildcard id of the discovery protocol; never a real device.
DEVICE_ID_WILDCARD = 0xFFFFFFFF

# Leading 12 bits that libhdhomerun treats as "legacy" hardware with
# different control semantics; a generated id must not look like one.
_LEGACY_PREFIXES = frozenset({0x100, 0x101, 0x102, 0x103, 0x111, 0x120, 0x121, 0x122})

# Namespace for deriving the UPnP UDN from the device id (uuid5).
_UDN_NAMESPACE = uuid.UUID("6c7f3a52-2f0c-4c59-9a53-5f0e8f3b7d21")


def _partial_checksum(value: int) -> int:
    """XOR of the seven leading nibble terms of ``value`` (the check digit excluded)."""
    checksum = 0
    for position in range(7):
        nibble = (value >> (28 - 4 * position)) & 0xF
        checksum ^= _NIBBLE_TABLE[nibble] if position % 2 == 0 else nibble
    return checksum


def device_id_checksum(value: int) -> int:
    """The libhdhomerun checksum of a 32-bit id; ``0`` means the id is valid."""
    return _partial_checksum(value) ^ (value & 0xF)


def parse_device_id(text: str) -> int:
    """Parse an 8-hex-digit id (either case) into an integer.

    Raises :class:`ValueError` when ``text`` is not exactly eight hex digits.
    """
    if len(text) != 8 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"device id must be 8 hex digits, got {text!r}")
    return int(text, 16)


def format_device_id(value: int) -> str:
    """Format a 32-bit id the way HDHomeRun devices print it (upper-case hex)."""
    return f"{value & 0xFFFFFFFF:08X}"


def is_valid_device_id(text: str) -> bool:
    """True when ``text`` is 8 hex digits, not the wildcard, with a valid check digit."""
    try:
        value = parse_device_id(text)
    except ValueError:
        return False
    return value != DEVICE_ID_WILDCARD and device_id_checksum(value) == 0


def generate_device_id(rng: random.Random) -> str:
    """Draw a fresh valid device id from ``rng``.

    The leading nibble is fixed to ``1`` (as on current Silicondust hardware)
    and ids that libhdhomerun would classify as legacy models are redrawn.
    Pass ``random.SystemRandom()`` in production and a seeded
    ``random.Random`` in tests.
    """
    while True:
        body = (0x1 << 28) | (rng.getrandbits(24) << 4)
        if (body >> 20) in _LEGACY_PREFIXES:
            continue
        return format_device_id(body | _partial_checksum(body))


def device_udn(device_id: str) -> str:
    """The stable UPnP ``UDN`` (``uuid:…``) belonging to ``device_id``."""
    return f"uuid:{uuid.uuid5(_UDN_NAMESPACE, device_id.upper())}"


def node_device_id(device_id: str, node_id: str | None) -> str:
    """The DeviceID of ``device_id`` as node ``node_id`` of a cluster presents it.

    Every node of a cluster is its own HDHomeRun device (Plex adds each one,
    with the same lineup and guide), so each needs its own stable id: a
    valid id derived from the stored one and the node id (a seeded draw, so
    it never changes for the pair). Without a node id (a single node) the
    stored id is returned as it is.
    """
    if not node_id or not device_id:
        return device_id
    seed = hashlib.sha256(f"{device_id.upper()}/{node_id}".encode()).digest()
    return generate_device_id(random.Random(seed))

"""Which address to put in the URLs Plex is given.

``discover.json``, the lineup, SSDP ``LOCATION`` and the discovery reply all
carry absolute URLs, and Plex (often on another machine) must be able to
reach them, so ``127.0.0.1`` is only acceptable as a last resort and a
wildcard bind address (``0.0.0.0``) is never acceptable.

Detection never sends a packet.  Candidates come from two sources that only
read local state: the addresses the host name resolves to, and (on Linux) the
IPv4 address of each network interface, read with the ``SIOCGIFADDR`` ioctl.
They are ranked: private LAN addresses (10/8, 172.16/12, 192.168/16) first,
then other global unicast addresses, then link-local (169.254/16); loopback,
unspecified and multicast addresses are discarded.  If nothing is left the
answer is ``127.0.0.1``.

An explicit override (the user's ``advertise_host`` setting) always wins, and
the candidate sources are injectable so tests and unusual hosts can supply
their own.

Who may be answered
-------------------
The UDP responders (HDHomeRun discovery, SSDP) answer only senders on a
network of the interface(s) their socket is bound to, as given by
:func:`answerable_networks`: for a specific bind address, the network
(address and netmask) of the interface holding it; for a wildcard bind, the
network of every IPv4 interface. Loopback counts as its own network,
127.0.0.0/8: a responder bound to a loopback address answers only 127.x
senders, and a wildcard one answers local processes as well as the LAN.
Interface networks are read with the ``SIOCGIFADDR``/``SIOCGIFNETMASK``
ioctls, again without sending a packet.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable, Sequence

LOOPBACK = "127.0.0.1"
LOOPBACK_NETWORK = ipaddress.IPv4Network("127.0.0.0/8")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")

_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B

CandidateSource = Callable[[], Iterable[str]]
InterfaceSource = Callable[[], Iterable[ipaddress.IPv4Interface]]


def hostname_addresses() -> list[str]:
    """IPv4 addresses the local host name resolves to (no network traffic
    beyond what the resolver does for the machine's own name)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def _interface_query(requests: Sequence[int]) -> list[list[str]]:
    """For each interface with an IPv4 address: the address each ioctl request
    (``SIOCGIFADDR``, ``SIOCGIFNETMASK``) answers. Linux only; elsewhere, and for
    interfaces without an IPv4 address, nothing."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return []
    found: list[list[str]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            query = struct.pack("256s", name.encode("utf-8")[:15])
            try:
                answers = [fcntl.ioctl(sock.fileno(), request, query) for request in requests]
            except OSError:
                continue
            found.append([socket.inet_ntoa(answer[20:24]) for answer in answers])
    return found


def interface_addresses() -> list[str]:
    """IPv4 address of each interface, via ``SIOCGIFADDR`` (Linux only).

    Interfaces without an IPv4 address, and platforms without the ioctl,
    simply contribute nothing.
    """
    return [address for (address,) in _interface_query([_SIOCGIFADDR])]


def interface_networks() -> list[ipaddress.IPv4Interface]:
    """Address and netmask of each IPv4 interface (``127.0.0.1/8`` for ``lo``)."""
    found: list[ipaddress.IPv4Interface] = []
    for address, netmask in _interface_query([_SIOCGIFADDR, _SIOCGIFNETMASK]):
        try:
            found.append(ipaddress.IPv4Interface(f"{address}/{netmask}"))
        except ValueError:
            continue
    return found


def answerable_networks(
    bind_host: str, interfaces: InterfaceSource = interface_networks
) -> list[ipaddress.IPv4Network]:
    """The networks whose senders a UDP responder bound to ``bind_host`` answers
    (see "Who may be answered" above)."""
    if bind_host in WILDCARD_HOSTS:
        networks = [LOOPBACK_NETWORK]
        for interface in interfaces():
            if interface.network not in networks and not interface.ip.is_loopback:
                networks.append(interface.network)
        return networks
    try:
        bound = ipaddress.IPv4Address(bind_host)
    except ValueError:
        return []
    if bound.is_loopback:
        return [LOOPBACK_NETWORK]
    held = [interface.network for interface in interfaces() if interface.ip == bound]
    return held[:1] or [ipaddress.IPv4Network(bound)]


DEFAULT_SOURCES: tuple[CandidateSource, ...] = (interface_addresses, hostname_addresses)


def _rank(address: ipaddress.IPv4Address) -> int | None:
    """Lower is better; ``None`` means unusable for a LAN URL."""
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return None
    if address.is_link_local:
        return 2
    if address.is_private:
        return 0
    return 1


def choose_lan_ip(candidates: Iterable[str]) -> str:
    """Pick the best LAN address from ``candidates`` (first wins on ties)."""
    best: tuple[int, int, str] | None = None
    for order, text in enumerate(candidates):
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        rank = _rank(address)
        if rank is None:
            continue
        key = (rank, order, str(address))
        if best is None or key < best:
            best = key
    return LOOPBACK if best is None else best[2]


def detect_lan_ip(
    override: str | None = None,
    sources: Sequence[CandidateSource] = DEFAULT_SOURCES,
) -> str:
    """The address to advertise: ``override`` if given, else the best candidate."""
    if override:
        return override
    candidates: list[str] = []
    for source in sources:
        candidates.extend(source())
    return choose_lan_ip(candidates)


def advertised_base_url(
    bind_host: str,
    port: int,
    override: str | None = None,
    sources: Sequence[CandidateSource] = DEFAULT_SOURCES,
    scheme: str = "http",
) -> str:
    """``scheme://host:port`` for URLs handed to clients.

    A concrete ``bind_host`` is used as is; a wildcard bind (``0.0.0.0``,
    ``::`` or empty) is replaced by the detected LAN address.  ``override``
    beats both.
    """
    if override:
        host = override
    elif bind_host in WILDCARD_HOSTS:
        host = detect_lan_ip(sources=sources)
    else:
        host = bind_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"

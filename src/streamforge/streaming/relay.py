"""One upstream per channel across a cluster: relaying another node's session.

In a cluster (:mod:`streamforge.cluster`) the first node that tunes a channel
becomes its *owner* and reads it from the provider. Another node that tunes
the same channel reads the owner's output instead: the owner's internal
route ``/internal/relay/{channel_id}`` (:mod:`streamforge.web.internal`)
joins its session's fan-out like any client and streams it over HTTP, so
the channel still costs one provider connection.

On the relaying node the relay is simply the first stream of the channel's
session: a :class:`~streamforge.streaming.candidates.ProviderStream` of the
virtual account :data:`RELAY_ACCOUNT_ID`, read by the ordinary
:class:`~streamforge.streaming.upstream.UpstreamReader` from a signed URL,
followed by the channel's own provider streams. If the owner goes away the
relay read fails like any upstream and the failover policy moves on to this
node's own upstream (taking a cluster lease first); the splicer makes that
switch seamless for the viewers, and this node then claims the channel.

The relay URL carries ``ts`` (Unix seconds) and ``sig``, the HMAC-SHA256 of
``"<channel id>:<ts>"`` under the cluster secret; the owner accepts it within
:data:`SIGNATURE_WINDOW` seconds and compares in constant time.

The manager sees the cluster only through :class:`ChannelCoordinator`, so
this package never imports :mod:`streamforge.cluster`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Protocol
from urllib.parse import urlencode

from streamforge.settings import Settings
from streamforge.streaming.candidates import ProviderStream
from streamforge.xtream.quality import QualityTier

#: The virtual account of relay streams (database ids start at 1).
RELAY_ACCOUNT_ID = -1

#: How many viewers one node may relay at once from its owners (local slots).
RELAY_CONNECTIONS = 1000

#: Seconds a relay signature stays valid (either way, for clock skew).
SIGNATURE_WINDOW = 60


_RELAY_LABEL = b"streamforge/relay-secret/v1"


def relay_secret(settings: Settings) -> bytes | None:
    """The secret that signs relay requests between the nodes: the cluster secret,
    else derived from the shared sealing key; None without either."""
    if settings.cluster_secret is not None:
        return settings.cluster_secret.get_secret_value().encode("utf-8")
    key = settings.shared_secret_key()
    if key is None:
        return None
    return hmac.new(key, _RELAY_LABEL, hashlib.sha256).digest()


def is_relay(stream: ProviderStream) -> bool:
    return stream.account_id == RELAY_ACCOUNT_ID


def relay_stream(
    channel_id: int, owner_name: str, streams: tuple[ProviderStream, ...]
) -> ProviderStream:
    """The relay of ``channel_id`` from node ``owner_name``, ranked before ``streams``."""
    best = max((s.quality for s in streams), default=QualityTier.UNKNOWN)
    top = min((s.priority for s in streams), default=0)
    return ProviderStream(
        mapping_id=-channel_id,
        xtream_channel_id=-channel_id,
        stream_id=channel_id,
        name=f"relay from node {owner_name}",
        account_id=RELAY_ACCOUNT_ID,
        account_name=f"node {owner_name}",
        priority=top - 1,
        is_primary=True,
        quality=best,
        max_connections=RELAY_CONNECTIONS,
    )


def sign(secret: bytes, channel_id: int, ts: int) -> str:
    return hmac.new(secret, f"{channel_id}:{ts}".encode(), hashlib.sha256).hexdigest()


def signed_query(secret: bytes, channel_id: int, now: float | None = None) -> str:
    ts = int(time.time() if now is None else now)
    return urlencode({"ts": ts, "sig": sign(secret, channel_id, ts)})


def verify(
    secret: bytes, channel_id: int, ts: str | None, sig: str | None, now: float | None = None
) -> bool:
    """Whether ``sig`` signs ``channel_id`` at ``ts`` and ``ts`` is recent."""
    if not ts or not sig or not ts.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(ts)) > SIGNATURE_WINDOW:
        return False
    return hmac.compare_digest(sign(secret, channel_id, int(ts)), sig)


class ChannelCoordinator(Protocol):
    """What the session manager needs of the cluster to keep one upstream per channel."""

    async def claim(self, channel_id: int) -> tuple[str, str] | None:
        """Own ``channel_id``, or return ``(owner's base URL, owner name)`` of the node
        that does (read it with :meth:`relay_url`).

        None also when coordination is unreachable (then no relay is possible)."""
        ...

    async def release(self, channel_id: int) -> None:
        """This node's session of ``channel_id`` ended."""
        ...

    def owns(self, channel_id: int) -> bool: ...

    def relay_url(self, owner_url: str, channel_id: int) -> str:
        """The signed URL of ``channel_id``'s relay on the owner at ``owner_url``."""
        ...

    async def free_connections(self, account_id: int, limit: int) -> int:
        """Connections of the account not leased by any node (0 when unknown)."""
        ...

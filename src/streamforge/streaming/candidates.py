"""The provider streams behind one guide channel, in the order they are tried.

A guide channel (what Plex sees) is backed by one or more provider streams,
one per row of ``channel_mappings``, possibly from different accounts. The
streaming layer needs a small, immutable description of each — enough to open
it, to count its account's connections, to key its circuit breaker and to
name it in events — and nothing secret: :class:`ProviderStream` deliberately
has **no password field**. The driver fetches credentials from the
credential store at the moment it opens the connection, by ``account_id``.

Order: streams are tried by ``stream_priority`` ascending (0 is the primary),
the row flagged ``is_primary`` first among equal priorities, then by mapping
id so the order is total and stable (:func:`order_streams`).

Quality cap: a client may ask ``?quality=hd`` or ``?quality=sd`` to keep a
channel at or below a tier (:func:`parse_quality_cap`,
:func:`apply_quality_cap`). Streams whose tier is unknown pass the cap (we
cannot tell they exceed it). A cap is a preference, never a reason for a
channel to be unplayable: if no stream fits, the uncapped list is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamforge.errors import ConfigError
from streamforge.xtream.quality import QualityTier

__all__ = [
    "ProviderStream",
    "QualityTier",
    "apply_quality_cap",
    "order_streams",
    "parse_quality_cap",
    "stream_order_key",
]


_CAP_WORDS: Mapping[str, QualityTier] = {
    "sd": QualityTier.SD,
    "hd": QualityTier.HD,
    "fhd": QualityTier.FHD,
    "uhd": QualityTier.UHD,
    "4k": QualityTier.UHD,
}


@dataclass(frozen=True, slots=True)
class ProviderStream:
    """One provider stream behind a guide channel. Contains no credential.

    ``xtream_channel_id`` (the ``xtream_channels`` row id) is the stream's
    identity for circuit breakers; ``stream_id`` is the provider's number used
    in ``/live/{user}/{pass}/{stream_id}.ts``.
    """

    mapping_id: int
    xtream_channel_id: int
    stream_id: int
    name: str
    account_id: int
    account_name: str
    priority: int = 0
    is_primary: bool = False
    quality: QualityTier = QualityTier.UNKNOWN
    max_connections: int = 1

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ConfigError(
                f"account {self.account_name!r}: max_connections must be at least 1, "
                f"got {self.max_connections}"
            )

    @property
    def ref(self) -> str:
        """How a user names the stream: ``account/provider stream id`` (e.g. ``alpha/102``,
        :func:`stream_ref`)."""
        return stream_ref(self.account_name, self.stream_id)

    def describe(self) -> dict[str, Any]:
        """The stream as event-log details (names and ids, never a credential)."""
        return {
            "ref": self.ref,
            "stream": self.name,
            "xtream_channel_id": self.xtream_channel_id,
            "stream_id": self.stream_id,
            "account": self.account_name,
            "account_id": self.account_id,
            "priority": self.priority,
            "quality": self.quality.label,
        }


def stream_ref(account_name: str, stream_id: int) -> str:
    """How users name a provider stream everywhere (CLI, events, API, UI):
    the account and the provider's stream id, e.g. ``alpha/106``. Internal row
    ids (``xtream_channel_id``) never reach a user."""
    return f"{account_name}/{stream_id}"


def stream_order_key(stream: ProviderStream) -> tuple[int, int, int]:
    """Sort key: priority ascending, the primary first among equals, then mapping id."""
    return (stream.priority, 0 if stream.is_primary else 1, stream.mapping_id)


def order_streams(streams: Iterable[ProviderStream]) -> tuple[ProviderStream, ...]:
    """The streams in the order failover tries them (see :func:`stream_order_key`)."""
    return tuple(sorted(streams, key=stream_order_key))


def parse_quality_cap(value: str | None) -> QualityTier | None:
    """The tier named by a ``?quality=`` query value, or None when absent/empty.

    Accepts ``sd``, ``hd``, ``fhd``, ``uhd`` (and ``4k``), case-insensitive.
    ``hd`` means "no better than HD-ready", i.e. 720p. Raises
    :class:`~streamforge.errors.ConfigError` for any other value, so a typo
    is answered instead of silently ignored.
    """
    if value is None or not value.strip():
        return None
    tier = _CAP_WORDS.get(value.strip().lower())
    if tier is None:
        raise ConfigError(f"quality must be one of sd, hd, fhd, uhd; got {value!r}")
    return tier


def apply_quality_cap(
    streams: Sequence[ProviderStream], cap: QualityTier | None
) -> tuple[ProviderStream, ...]:
    """The streams at or below ``cap`` (unknown tiers pass), order preserved.

    With no cap, or when no stream fits the cap, the streams come back
    unchanged: a cap never makes a channel unplayable.
    """
    if cap is None:
        return tuple(streams)
    kept = tuple(s for s in streams if s.quality <= cap)
    return kept if kept else tuple(streams)

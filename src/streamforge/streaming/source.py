"""What the session manager needs to know about channels: :class:`ChannelSource`.

The manager looks a published channel up by its GuideNumber and loads the
channel's provider streams; it does not care where they come from. The
runtime wires in :class:`~streamforge.matching.channels.ChannelService`
(which satisfies this protocol); the tests use a small in-memory source.
Both methods are plain blocking calls (they read the database), so the
manager runs them off the event loop.
"""

from __future__ import annotations

from typing import Protocol

from streamforge.streaming.candidates import ProviderStream


class ChannelSource(Protocol):
    def published(self, guide_number: str) -> tuple[int, str] | None:
        """(id, name) of the published channel with this GuideNumber, else None."""

    def streams_for_channel(self, channel_id: int) -> tuple[ProviderStream, ...]:
        """The channel's streams from streamable accounts, in failover order."""

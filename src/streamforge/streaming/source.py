"""What the session manager needs to know about channels: :class:`ChannelSource`.

The manager looks a published channel up by its GuideNumber and loads the
channel's provider streams; it does not care where they come from. The
runtime wires in :class:`~streamforge.matching.channels.ChannelService`
(which satisfies this protocol); the tests use a small in-memory source.
The methods are plain blocking calls (they read the database), so the
manager runs them off the event loop.
"""

from __future__ import annotations

from typing import Protocol

from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.health.judge import ChannelJudgement


class ChannelSource(Protocol):
    def published(self, guide_number: str) -> tuple[int, str] | None:
        """(id, name) of the published channel with this GuideNumber, else None."""

    def streams_for_channel(self, channel_id: int) -> tuple[ProviderStream, ...]:
        """The channel's streams from streamable accounts, in failover order."""

    def judgement_for_channel(self, channel_id: int) -> ChannelJudgement:
        """How the channel's media is judged (defaults when it has no settings of its own)."""

"""The matcher's compute, runnable in a worker process.

:meth:`streamforge.matching.service.MatchService.run` reads the guide
channels and the streams in its transaction, sends them here through the
runtime's :class:`~streamforge.cpu_pool.CpuPool` as compact tuples (the
streams in pickled batches, see :func:`~streamforge.cpu_pool.pack_rows`) and
gets the decisions back as compact tuples: per guide channel (in the order of
:meth:`~streamforge.matching.matcher.MatchOutcome.by_channel`, each list ranked
primary first) the ``(stream_id, confidence)`` pairs, plus the number of
unmatched streams. The service writes them in the same transaction.

This module imports only the matcher.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Sequence

from streamforge.cpu_pool import pack_rows, unpack_rows
from streamforge.matching.matcher import GuideChannel, ProviderStream, match_streams

#: ``(xmltv_id, display_names)``
GuideRow = tuple[str, Sequence[str]]
#: ``(stream_id, name, epg_channel_id, account_id, account_priority)``
StreamRow = tuple[int, str, str | None, int, int]
#: ``(xmltv_id, [(stream_id, confidence), …])`` in rank order
ChannelDecision = tuple[str, list[tuple[Hashable, float]]]


def decide(
    guide: Iterable[GuideRow],
    streams: Iterable[StreamRow],
    threshold: float,
    exclude: Collection[Hashable],
) -> tuple[list[ChannelDecision], int]:
    """The mapping decisions for ``streams`` onto ``guide`` and the unmatched count."""
    outcome = match_streams(
        [GuideChannel(id=xmltv_id, display_names=list(names)) for xmltv_id, names in guide],
        (
            ProviderStream(
                id=sid, name=name, epg_channel_id=epg, account_id=aid, account_priority=prio
            )
            for sid, name, epg, aid, prio in streams
        ),
        threshold=threshold,
        exclude=exclude,
    )
    decisions: list[ChannelDecision] = [
        (xmltv_id, [(r.stream_id, r.confidence) for r in results])
        for xmltv_id, results in outcome.by_channel().items()
    ]
    return decisions, len(outcome.unmatched)


def decide_packed(
    guide: list[GuideRow],
    packed_streams: list[bytes],
    threshold: float,
    exclude: frozenset[Hashable],
) -> tuple[list[bytes], int]:
    """Worker entry: :func:`decide` with the streams and the decisions in
    pickled batches (see :func:`~streamforge.cpu_pool.pack_rows`)."""
    decisions, unmatched = decide(guide, unpack_rows(packed_streams), threshold, exclude)
    return pack_rows(decisions, batch=200), unmatched

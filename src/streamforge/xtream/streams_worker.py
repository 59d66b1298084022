"""A ``get_live_streams`` answer decoded, parsed and quality-tagged, runnable
in a worker process.

A 60,000-stream answer is tens of megabytes of JSON: ``json.loads`` of it is
one C call that holds the GIL for most of a second, and the model parsing
and :func:`~streamforge.xtream.quality.detect_quality` of every name take
seconds more. :meth:`streamforge.xtream.client.XtreamClient.live_stream_rows`
ships the raw body here through the runtime's
:class:`~streamforge.cpu_pool.CpuPool` and gets back compact
:data:`StreamRow` tuples in pickled batches (:func:`~streamforge.cpu_pool.pack_rows`),
which the channel sync unpacks batch by batch on the database's writer thread.

An answer that is not a usable list (an empty body, HTML, malformed JSON, an
account object …) yields ``None``: the client then decodes it in-process,
where its error messages are made, so every error reads exactly as before.

This module imports only the models and the quality detection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from streamforge.cpu_pool import pack_rows, unpack_rows
from streamforge.xtream.models import LiveStream, parse_live_streams
from streamforge.xtream.quality import detect_quality

#: :meth:`QualityInfo.to_json` as ``(key, value)`` pairs, lists as tuples.
QualityPairs = tuple[tuple[str, Any], ...]

#: ``(stream_id, name, stream_type, stream_icon, epg_channel_id, category_id,
#: quality)`` — ``quality`` is :meth:`QualityInfo.to_json` of the name as
#: :data:`QualityPairs`. Every field is an atom or a tuple of atoms, so the
#: garbage collector stops tracking a row after its first pass: tens of
#: thousands of rows held through a sync add nothing to later collections
#: (a dict per row would, and a full collection of them pauses the event loop).
StreamRow = tuple[int, str, str, str | None, str | None, str | None, QualityPairs]


def quality_pairs(data: dict[str, Any]) -> QualityPairs:
    """A ``qualities`` JSON object as :data:`QualityPairs`."""
    return tuple((key, tuple(v) if isinstance(v, list) else v) for key, v in data.items())


def quality_json(pairs: QualityPairs) -> dict[str, Any]:
    """:data:`QualityPairs` back as the ``qualities`` JSON object."""
    return {key: list(v) if isinstance(v, tuple) else v for key, v in pairs}


@dataclass(frozen=True, slots=True)
class PackedStreams:
    """A parsed stream list: its rows in pickled batches, how many, how many dropped."""

    batches: list[bytes]
    count: int
    skipped: int

    def rows(self) -> Iterator[StreamRow]:
        """The rows, unpickled one batch at a time."""
        return unpack_rows(self.batches)


def stream_rows(streams: Iterable[LiveStream]) -> Iterator[StreamRow]:
    """The compact row of each stream, its quality detected from the name."""
    for s in streams:
        yield (
            s.stream_id,
            s.name,
            s.stream_type,
            s.stream_icon,
            s.epg_channel_id,
            s.category_id,
            quality_pairs(detect_quality(s.name).to_json()),
        )


def pack_streams(streams: list[LiveStream], skipped: int) -> PackedStreams:
    """:class:`PackedStreams` of parsed streams."""
    return PackedStreams(pack_rows(stream_rows(streams)), len(streams), skipped)


def parse_streams_body(body: bytes) -> PackedStreams | None:
    """Worker entry: the raw ``get_live_streams`` body as :class:`PackedStreams`,
    or ``None`` when it is not a usable list (the client reports why)."""
    text = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text or text[:1] == b"<":
        return None
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        decoded = text.decode("utf-8", errors="replace")
    try:
        data = json.loads(decoded)
    except (ValueError, RecursionError):
        return None
    parsed = parse_live_streams(data)
    if parsed is None:
        return None
    return pack_streams(parsed.items, parsed.skipped)

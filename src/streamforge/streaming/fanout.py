"""Fan-out: one upstream, many clients, nobody waits for the slowest.

The session publishes whole-packet chunks into a :class:`FanoutBuffer`, a
bounded ring of recent chunks (by bytes). Each client holds a
:class:`FanoutReader` with its own position. A reader that falls so far behind
that its next chunk has been evicted is skipped ahead to the oldest chunk
still held (and the skip is counted) — a slow client never slows the others
and never grows memory. A new reader starts at the live edge (the newest
chunks), so a late joiner starts close to live.
"""

from __future__ import annotations

import asyncio
from collections import deque


class FanoutBuffer:
    def __init__(self, capacity_bytes: int, *, join_backlog_bytes: int = 0) -> None:
        self._capacity = capacity_bytes
        self._join_backlog = join_backlog_bytes
        self._chunks: deque[bytes] = deque()
        self._first_seq = 0
        self._bytes = 0
        self._changed = asyncio.Event()
        self._closed = False
        self.published_bytes = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def next_seq(self) -> int:
        return self._first_seq + len(self._chunks)

    @property
    def first_seq(self) -> int:
        return self._first_seq

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def publish(self, chunk: bytes) -> None:
        if self._closed or not chunk:
            return
        self._chunks.append(chunk)
        self._bytes += len(chunk)
        self.published_bytes += len(chunk)
        while self._bytes > self._capacity and len(self._chunks) > 1:
            self._bytes -= len(self._chunks.popleft())
            self._first_seq += 1
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def chunk(self, seq: int) -> bytes:
        return self._chunks[seq - self._first_seq]

    def join_position(self) -> int:
        """Where a new reader starts: the live edge, minus a small backlog."""
        seq = self.next_seq
        backlog = 0
        while seq > self._first_seq and backlog < self._join_backlog:
            seq -= 1
            backlog += len(self.chunk(seq))
        return seq

    async def changed(self) -> None:
        await self._changed.wait()

    def reader(self) -> FanoutReader:
        return FanoutReader(self)


class FanoutReader:
    def __init__(self, buffer: FanoutBuffer) -> None:
        self._buffer = buffer
        self._pos = buffer.join_position()
        self.bytes_sent = 0
        self.skipped_chunks = 0

    async def next(self, max_bytes: int = 512 * 1024) -> bytes | None:
        """Everything available (up to ``max_bytes``, at least one chunk), or None
        once the buffer is closed and drained."""
        buffer = self._buffer
        while True:
            if self._pos < buffer.first_seq:
                self.skipped_chunks += buffer.first_seq - self._pos
                self._pos = buffer.first_seq
            if self._pos < buffer.next_seq:
                parts = [buffer.chunk(self._pos)]
                size = len(parts[0])
                self._pos += 1
                while self._pos < buffer.next_seq and size < max_bytes:
                    part = buffer.chunk(self._pos)
                    parts.append(part)
                    size += len(part)
                    self._pos += 1
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                self.bytes_sent += size
                return data
            if buffer.closed:
                return None
            await buffer.changed()

    def __aiter__(self) -> FanoutReader:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.next()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

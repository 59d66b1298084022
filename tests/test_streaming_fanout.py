from __future__ import annotations

import asyncio

from streamforge.streaming.fanout import FanoutBuffer


async def test_readers_get_every_chunk_in_order() -> None:
    buffer = FanoutBuffer(1 << 20)
    a, b = buffer.reader(), buffer.reader()
    for i in range(5):
        buffer.publish(bytes([i]) * 188)
    buffer.close()
    got_a = b"".join([chunk async for chunk in a])
    got_b = b"".join([chunk async for chunk in b])
    assert got_a == got_b == b"".join(bytes([i]) * 188 for i in range(5))


async def test_slow_reader_skips_ahead_and_never_blocks_the_writer() -> None:
    buffer = FanoutBuffer(188 * 10)
    slow, fast = buffer.reader(), buffer.reader()
    for i in range(100):
        buffer.publish(bytes([i % 256]) * 188)
        assert await fast.next() == bytes([i % 256]) * 188
    assert buffer.held_bytes <= 188 * 10
    first = await slow.next(max_bytes=188)
    assert first == bytes([90]) * 188  # the oldest chunk still held
    assert slow.skipped_chunks == 90


async def test_late_joiner_starts_near_live() -> None:
    buffer = FanoutBuffer(1 << 20, join_backlog_bytes=188 * 2)
    for i in range(50):
        buffer.publish(bytes([i]) * 188)
    late = buffer.reader()
    buffer.close()
    got = b"".join([chunk async for chunk in late])
    assert got == bytes([48]) * 188 + bytes([49]) * 188


async def test_reader_waits_for_data_and_ends_on_close() -> None:
    buffer = FanoutBuffer(1 << 20)
    reader = buffer.reader()
    pending = asyncio.ensure_future(reader.next())
    await asyncio.sleep(0)
    assert not pending.done()
    buffer.publish(b"\x47" * 188)
    assert await asyncio.wait_for(pending, 1) == b"\x47" * 188
    buffer.close()
    assert await reader.next() is None

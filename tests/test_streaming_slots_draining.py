"""AccountSlots sockets: a released lease frees its reservation at once, but its
socket keeps counting (draining) until the driver reports it closed, and a new
socket of the account waits for its turn."""

from __future__ import annotations

import asyncio

import pytest

from streamforge.streaming.slots import AccountSlots, SlotError


async def test_a_new_socket_waits_for_the_draining_one_to_close() -> None:
    slots = AccountSlots()
    old = slots.try_acquire(1, 1, holder="a")
    assert old is not None
    await slots.connect(old, 1)
    slots.release(old)
    assert slots.in_use(1) == 0, "the reservation is free at once"
    assert slots.open_connections(1) == 1
    assert slots.draining(1) == 1
    new = slots.try_acquire(1, 1, holder="b")
    assert new is not None
    loop = asyncio.get_running_loop()
    turn = loop.create_task(slots.connect(new, 1), name="test-turn")
    await asyncio.sleep(0)
    assert not turn.done(), "the old socket is still open"
    loop.call_soon(slots.closed, old)
    async with asyncio.timeout(2):
        await turn
    assert slots.open_connections(1) == 1
    assert slots.draining(1) == 0
    assert slots.sockets_snapshot() == {1: 1}
    slots.closed(old)  # idempotent
    slots.closed(new)
    slots.release(new)
    assert slots.sockets_snapshot() == {}
    assert slots.snapshot() == {}


async def test_sockets_under_the_limit_connect_at_once() -> None:
    slots = AccountSlots()
    first, second = slots.try_acquire(2, 2), slots.try_acquire(2, 2)
    assert first is not None
    assert second is not None
    await slots.connect(first, 2)
    await slots.connect(second, 2)
    await slots.connect(second, 2)  # already open: nothing to wait for
    assert slots.open_connections(2) == 2


async def test_a_socket_closed_before_the_release_frees_nothing_twice() -> None:
    slots = AccountSlots()
    lease = slots.try_acquire(1, 1)
    assert lease is not None
    await slots.connect(lease, 1)
    slots.closed(lease)  # the upstream died by itself
    assert slots.in_use(1) == 1, "still reserved by the policy"
    assert slots.open_connections(1) == 0
    slots.release(lease)
    assert slots.in_use(1) == 0
    assert slots.draining(1) == 0


async def test_connect_refuses_a_lease_the_policy_gave_back() -> None:
    slots = AccountSlots()
    lease = slots.try_acquire(1, 1)
    assert lease is not None
    slots.release(lease)
    with pytest.raises(SlotError):
        await slots.connect(lease, 1)
    with pytest.raises(SlotError):
        slots.release(lease)


async def test_waiting_for_a_turn_is_bounded_by_the_caller() -> None:
    slots = AccountSlots()
    old = slots.try_acquire(3, 1)
    assert old is not None
    await slots.connect(old, 1)
    slots.release(old)
    new = slots.try_acquire(3, 1)
    assert new is not None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await slots.connect(new, 1)
    assert slots.open_connections(3) == 1
    assert slots._waiters == []  # no waiter is left behind

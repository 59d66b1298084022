"""Account connection slots: never more than the limit, leases are exact tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.streaming.slots import AccountSlots, SlotError, SlotLease


def test_acquire_up_to_the_limit_then_refuse() -> None:
    slots = AccountSlots()
    first = slots.try_acquire(1, 2, holder="news")
    second = slots.try_acquire(1, 2, holder="sport")
    assert first is not None
    assert second is not None
    assert first != second
    assert slots.try_acquire(1, 2) is None
    assert slots.in_use(1) == 2
    assert slots.available(1, 2) == 0
    assert slots.try_acquire(2, 1) is not None
    assert slots.snapshot() == {1: 2, 2: 1}


def test_release_frees_the_slot() -> None:
    slots = AccountSlots()
    lease = slots.try_acquire(1, 1)
    assert lease is not None
    assert slots.try_acquire(1, 1) is None
    slots.release(lease)
    assert slots.in_use(1) == 0
    assert slots.snapshot() == {}
    assert slots.try_acquire(1, 1) is not None


def test_double_release_and_foreign_leases_raise() -> None:
    slots = AccountSlots()
    lease = slots.try_acquire(1, 1)
    assert lease is not None
    slots.release(lease)
    with pytest.raises(SlotError, match="not held"):
        slots.release(lease)
    held = slots.try_acquire(1, 1)
    assert held is not None
    with pytest.raises(SlotError):
        slots.release(SlotLease(1, held.serial + 100))
    foreign = AccountSlots().try_acquire(2, 1)
    assert foreign is not None
    with pytest.raises(SlotError):
        slots.release(foreign)


def test_lower_limit_keeps_live_leases_but_refuses_new_ones() -> None:
    slots = AccountSlots()
    leases = [slots.try_acquire(1, 3) for _ in range(3)]
    assert all(lease is not None for lease in leases)
    assert slots.try_acquire(1, 2) is None
    assert slots.available(1, 2) == 0
    assert slots.in_use(1) == 3


def test_leases_show_who_holds_what_oldest_first() -> None:
    slots = AccountSlots()
    a = slots.try_acquire(1, 5, holder="a")
    b = slots.try_acquire(2, 5, holder="b")
    c = slots.try_acquire(1, 5, holder="c")
    assert slots.leases(1) == (a, c)
    assert slots.leases() == (a, b, c)
    assert [lease.holder for lease in slots.leases()] == ["a", "b", "c"]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AccountSlots().try_acquire(1, 0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 3), st.integers(0, 20)),
        max_size=60,
    )
)
def test_count_matches_live_leases_and_never_exceeds_the_limit(
    steps: list[tuple[bool, int, int]],
) -> None:
    slots = AccountSlots()
    limits = {1: 1, 2: 2, 3: 3}
    live: list[SlotLease] = []
    for acquire, account, pick in steps:
        if acquire or not live:
            lease = slots.try_acquire(account, limits[account])
            held = sum(1 for x in live if x.account_id == account)
            assert (lease is None) == (held >= limits[account])
            if lease is not None:
                live.append(lease)
        else:
            slots.release(live.pop(pick % len(live)))
        for acct, limit in limits.items():
            in_use = sum(1 for x in live if x.account_id == acct)
            assert slots.in_use(acct) == in_use <= limit
    for lease in live:
        slots.release(lease)
    assert slots.snapshot() == {}

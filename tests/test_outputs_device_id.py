"""Tests for HDHomeRun device id generation and validation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.outputs.device_id import (
    device_id_checksum,
    device_udn,
    format_device_id,
    generate_device_id,
    is_valid_device_id,
    parse_device_id,
)

# Independent restatement of libhdhomerun's check, kept literal on purpose.
_TABLE = [0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB, 0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0]


def _reference_valid(value: int) -> bool:
    c = 0
    c ^= _TABLE[(value >> 28) & 0xF]
    c ^= (value >> 24) & 0xF
    c ^= _TABLE[(value >> 20) & 0xF]
    c ^= (value >> 16) & 0xF
    c ^= _TABLE[(value >> 12) & 0xF]
    c ^= (value >> 8) & 0xF
    c ^= _TABLE[(value >> 4) & 0xF]
    c ^= value & 0xF
    return c == 0


@pytest.mark.parametrize("text", ["12345674", "191b7585", "191B7585"])
def test_known_valid_ids(text: str) -> None:
    assert is_valid_device_id(text)


@pytest.mark.parametrize(
    "text", ["12345675", "1234567", "123456744", "1234567G", "", "FFFFFFFF", " 2345674"]
)
def test_invalid_ids(text: str) -> None:
    assert not is_valid_device_id(text)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=0xFFFFFFFE))
def test_checksum_matches_reference(value: int) -> None:
    assert (device_id_checksum(value) == 0) == _reference_valid(value)
    assert is_valid_device_id(format_device_id(value)) == _reference_valid(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_generated_ids_are_valid_and_not_legacy(seed: int) -> None:
    device_id = generate_device_id(random.Random(seed))
    assert len(device_id) == 8
    assert device_id == device_id.upper()
    assert is_valid_device_id(device_id)
    assert _reference_valid(parse_device_id(device_id))
    assert device_id.startswith("1")
    assert parse_device_id(device_id) >> 20 not in {0x100, 0x101, 0x102, 0x103, 0x111}


def test_generation_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    assert generate_device_id(random.Random(7)) == generate_device_id(random.Random(7))
    ids = {generate_device_id(random.Random(seed)) for seed in range(50)}
    assert len(ids) > 45


def test_exactly_one_check_digit_per_body() -> None:
    body = 0x1ABCDEF0
    valid = [d for d in range(16) if is_valid_device_id(format_device_id(body | d))]
    assert len(valid) == 1


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="8 hex digits"):
        parse_device_id("xyz")


def test_udn_is_stable_and_case_insensitive() -> None:
    assert device_udn("1234567a") == device_udn("1234567A")
    assert device_udn("12345674").startswith("uuid:")
    assert device_udn("12345674") != device_udn("191B7585")

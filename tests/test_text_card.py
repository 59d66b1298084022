"""Tests for streamforge.text_card: the bitmap-font card both slates are drawn with."""

from __future__ import annotations

import numpy as np
import pytest

from streamforge.text_card import BACKGROUND, INK, draw_card, text_mask


def test_a_letter_is_its_glyph_scaled() -> None:
    mask = text_mask("T", 3)
    assert mask.shape == (21, 15)
    assert mask[:3].all()  # the bar across the top
    assert mask[3:, 6:9].all()  # the stem
    assert not mask[3:, :6].any()  # nothing beside it
    assert text_mask("TT", 1).shape == (7, 11)  # one column of spacing between letters


def test_the_card_frames_and_centres_its_lines() -> None:
    img = draw_card(640, 360, ("SERVICE", "", "UNAVAILABLE"))
    assert img.shape == (360, 640, 3)
    assert tuple(img[0, 0]) == BACKGROUND
    edge = 360 // 60
    assert (img[edge, edge:-edge] == INK).all()  # the frame's top
    inner = img[2 * edge : -2 * edge, 2 * edge : -2 * edge]
    ink = np.argwhere((inner == INK).all(axis=2))
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0)
    # the widest line fills at most 80 % of the width, centred
    assert right - left + 1 <= 640 * 0.8
    centre = (left + right) / 2 + 2 * edge
    assert abs(centre - 320) <= 2
    # the empty line is spacing: no ink in the middle third of the text block
    third = (bottom - top) // 3
    assert not (inner[top + third + 2 : bottom - third - 2] == INK).all(axis=2).any()


def test_a_character_outside_the_font_is_refused() -> None:
    with pytest.raises(KeyError):
        text_mask("?", 1)

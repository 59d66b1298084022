"""A text card: capital letters in white, in a white frame, on dark blue.

Two pictures are drawn this way: StreamForge's own outage slate
(:mod:`streamforge.streaming.slate`), shown while every stream of a channel is
down, and the mock provider's "service temporarily unavailable" slate
(:mod:`streamforge.mockprovider.encode`), the kind of picture a real provider
sends instead of the channel. The letters are a 5x7 bitmap font, scaled to
the largest whole size at which the widest line fills at most 80 % of the
width and the lines fit the height; nothing here depends on a font file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

#: Background and ink, RGB.
BACKGROUND: Final = (16, 24, 96)
INK: Final = 235

#: 5x7 bitmap glyphs (rows top to bottom, "#" = ink).
GLYPHS: Final[dict[str, tuple[str, ...]]] = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    " ": (".....",) * 7,
}


def text_mask(text: str, scale: int) -> npt.NDArray[np.bool_]:
    """``text`` in the bitmap font, ``scale`` pixels per font pixel, one pixel of spacing.

    Raises ``KeyError`` for a character the font does not have."""
    columns: list[npt.NDArray[np.bool_]] = []
    for char in text:
        glyph = np.array([[c == "#" for c in row] for row in GLYPHS[char]], dtype=np.bool_)
        columns.extend([glyph, np.zeros((7, 1), dtype=np.bool_)])
    mask = np.concatenate(columns[:-1], axis=1)
    return np.kron(mask, np.ones((scale, scale), dtype=np.bool_)).astype(np.bool_)


def draw_card(width: int, height: int, lines: Sequence[str]) -> npt.NDArray[np.uint8]:
    """The card as an RGB ``(height, width, 3)`` picture; empty lines are spacing."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:, :] = BACKGROUND
    edge = max(2, height // 60)
    img[edge : 2 * edge, edge:-edge] = INK
    img[-2 * edge : -edge, edge:-edge] = INK
    img[edge:-edge, edge : 2 * edge] = INK
    img[edge:-edge, -2 * edge : -edge] = INK
    widest = max(len(line) for line in lines) * 6 - 1
    scale = max(1, min((width * 8 // 10) // widest, height // (9 * len(lines))))
    line_height = 9 * scale
    top = (height - line_height * len(lines)) // 2
    for n, line in enumerate(lines):
        if not line:
            continue
        mask = text_mask(line, scale)
        y = top + n * line_height
        x = (width - mask.shape[1]) // 2
        img[y : y + mask.shape[0], x : x + mask.shape[1]][mask] = INK
    return img

"""The GuideNumber: the channel number Plex shows and tunes (``/auto/v{n}``).

One definition, used by every entry (guide import ``<lcn>``, matching, the API,
the command line, the UI) and every output (lineup, M3U, XMLTV):

* ASCII digits, optionally one ``.`` and a subchannel: ``5``, ``5.1``;
* at most :data:`MAX_LENGTH` characters;
* no leading zeros (``01`` would sit next to ``1`` and tune a different
  channel), in either part; ``0`` alone is not a channel either;
* unique among the guide channels (the database enforces that).

``str.isdigit()`` is *not* this test: it accepts ``²`` and other Unicode
digits that ``int()`` then refuses.
"""

from __future__ import annotations

import re

from streamforge.errors import InvalidInput

MAX_LENGTH = 8

_PATTERN = re.compile(r"[1-9][0-9]*(?:\.(?:0|[1-9][0-9]*))?", re.ASCII)

#: Where an invalid number sorts: after every valid one.
_LAST = (1 << 62, 0)


class InvalidGuideNumber(InvalidInput):
    """A GuideNumber that is not digits with an optional ``.subchannel``."""


def is_valid(number: str | None) -> bool:
    """Whether ``number`` is a GuideNumber (see the module docstring)."""
    return (
        number is not None and len(number) <= MAX_LENGTH and _PATTERN.fullmatch(number) is not None
    )


def explain(number: str) -> str | None:
    """Why ``number`` is not a GuideNumber (one sentence), or None when it is one."""
    if is_valid(number):
        return None
    shown = number if len(number) <= 20 else number[:20] + "…"
    if len(number) > MAX_LENGTH:
        return f"GuideNumber {shown!r} is longer than {MAX_LENGTH} characters"
    return (
        f"GuideNumber {shown!r} must be ASCII digits with an optional .subchannel "
        "and no leading zero, like 5 or 5.1"
    )


def parse(number: str) -> str:
    """``number`` stripped, if it is a GuideNumber; else :class:`InvalidGuideNumber`."""
    cleaned = number.strip()
    problem = explain(cleaned)
    if problem is not None:
        raise InvalidGuideNumber(problem)
    return cleaned


def sort_key(number: str | None) -> tuple[int, int]:
    """Sort ``"2" < "2.1" < "10"``; anything that is not a GuideNumber sorts last."""
    if number is None or not is_valid(number):
        return _LAST
    main, _, sub = number.partition(".")
    return int(main), int(sub) + 1 if sub else 0

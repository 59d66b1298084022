"""XMLTV date/time values → aware UTC datetimes (and back).

Theory of operation
-------------------
The XMLTV DTD writes times as ``YYYYMMDDhhmmss ZZZZZ`` where the trailing
parts may be dropped ("20240101", "202401011930") and the zone is an offset
(``+0100``, ``-0530``) that may be missing, in which case it means UTC.
Real guides also write the offset glued to the digits
(``20240101193000+0100``), with a colon (``+01:00``), as ``Z``, as a bare
``GMT``/``UTC``, or with the seconds given as fractions; all of those are
accepted. Anything else raises :class:`XmltvTimeError` (a
:class:`~streamforge.errors.GuideError` and a :class:`ValueError`), which the
importer counts as a skipped programme rather than aborting the import.

Every result is converted to UTC, because the database stores UTC and the
exports re-apply whatever zone they need.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from streamforge.errors import GuideError

_TIME_RE = re.compile(
    r"""^\s*
    (?P<digits>\d{4,14})(?:\.\d+)?      # YYYY[MM[DD[hh[mm[ss]]]]] (+ ignored fraction)
    \s*
    (?P<zone>
        [+-]\d{2}:?\d{2}                # +HHMM / -HH:MM
      | [+-]\d{2}                       # +HH
      | Z | UTC | GMT
    )?
    \s*$""",
    re.VERBOSE | re.IGNORECASE,
)

_FIELD_WIDTHS = (4, 2, 2, 2, 2, 2)
_MAX_OFFSET = timedelta(hours=14)


class XmltvTimeError(GuideError, ValueError):
    """A value is not an XMLTV date/time."""


def _parse_zone(zone: str | None) -> timezone:
    if zone is None or zone.upper() in {"Z", "UTC", "GMT"}:
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) > 2 else 0
    if minutes >= 60:
        raise XmltvTimeError(f"bad time zone offset {zone!r}")
    offset = sign * timedelta(hours=hours, minutes=minutes)
    if abs(offset) > _MAX_OFFSET:
        raise XmltvTimeError(f"time zone offset {zone!r} is out of range")
    return timezone(offset)


def parse_xmltv_time(value: str) -> datetime:
    """Parse an XMLTV time string into an aware :class:`datetime` in UTC.

    >>> parse_xmltv_time("20240301193000 +0100").isoformat()
    '2024-03-01T18:30:00+00:00'
    """
    if (
        len(value) == 20
        and value.isascii()
        and value[14] == " "
        and value[15] in "+-"
        and value[:14].isdigit()
        and value[16:].isdigit()
    ):
        return _parse_canonical(value)
    match = _TIME_RE.match(value)
    if match is None:
        raise XmltvTimeError(f"not an XMLTV time: {value!r}")
    digits = match.group("digits")
    if len(digits) % 2:
        raise XmltvTimeError(f"not an XMLTV time (odd digit count): {value!r}")
    fields: list[int] = []
    position = 0
    for width in _FIELD_WIDTHS:
        if position >= len(digits):
            break
        fields.append(int(digits[position : position + width]))
        position += width
    year = fields[0]
    month = fields[1] if len(fields) > 1 else 1
    day = fields[2] if len(fields) > 2 else 1
    hour = fields[3] if len(fields) > 3 else 0
    minute = fields[4] if len(fields) > 4 else 0
    second = fields[5] if len(fields) > 5 else 0
    tz = _parse_zone(match.group("zone"))
    if second == 60:  # a leap second written by a careless exporter
        second = 59
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise XmltvTimeError(f"not a valid XMLTV time: {value!r} ({exc})") from exc


def _parse_canonical(value: str) -> datetime:
    """Fast path for the overwhelmingly common ``YYYYMMDDhhmmss +HHMM`` form."""
    hours, minutes = int(value[16:18]), int(value[18:20])
    if minutes >= 60:
        raise XmltvTimeError(f"bad time zone offset {value[15:]!r}")
    offset = timedelta(hours=hours, minutes=minutes)
    if offset > _MAX_OFFSET:
        raise XmltvTimeError(f"time zone offset {value[15:]!r} is out of range")
    second = min(int(value[12:14]), 59)  # 60: a leap second written by a careless exporter
    try:
        moment = datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12]),
            second,
            tzinfo=UTC,
        )
        return moment + offset if value[15] == "-" else moment - offset
    except (ValueError, OverflowError) as exc:
        raise XmltvTimeError(f"not a valid XMLTV time: {value!r} ({exc})") from exc


def format_xmltv_time(moment: datetime) -> str:
    """Format an aware datetime as ``YYYYMMDDhhmmss +0000`` (in UTC)."""
    if moment.tzinfo is None:
        raise ValueError("format_xmltv_time needs an aware datetime")
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S +0000")

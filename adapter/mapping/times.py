"""HL7v2 timestamps (DTM/TS) -> FHIR dateTime and instant, keeping precision and offset.

python-hl7's ``parse_datetime`` pads ``2002`` into ``2002-01-01 00:00`` and drops the offset;
FHIR keeps both, so this module does its own reading (STYLE.md). A time of day without an
offset gets the source's configured offset, because FHIR requires one once hours are given.

Every part is checked against the calendar and the FHIR R4 dateTime pattern
(http://hl7.org/fhir/R4/datatypes.html#dateTime): month 01-12, a day the month has, hour
00-23, minute and second 00-59 (a leap second ``60`` is refused: no date library here can
place it), and an offset from -14:00 to +14:00. Whatever else is sent raises
:class:`TimestampError`, which says what is wrong; the caller adds the field.

Both conversions are pure and the same few timestamps recur in every result of a message
(OBR-7, OBR-22, MSH-7), so their results are cached.
"""

from __future__ import annotations

import calendar
import re
from functools import lru_cache

from adapter.errors import MappingError

# Each part only after the one before it (no hour without a day); HL7 v2.5.1 §2A.22 DTM.
_DTM = re.compile(
    r"^(?P<year>\d{4})(?:(?P<month>\d{2})(?:(?P<day>\d{2})(?:(?P<hour>\d{2})"
    r"(?:(?P<minute>\d{2})(?:(?P<second>\d{2})(?:\.(?P<fraction>\d{1,4}))?)?)?)?)?)?"
    r"(?P<offset>[+-]\d{4}|Z)?$",
    re.ASCII,
)
_FORM = "YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]"


class TimestampError(MappingError, ValueError):
    """The text is not an HL7 DTM (the reason says which part); the caller names the field."""


@lru_cache(maxsize=1024)
def to_fhir_datetime(value: str, default_offset: str) -> str | None:
    """``20240115083000+0800`` -> ``2024-01-15T08:30:00+08:00``; '' -> None.

    Date-only values stay date-only; a time without seconds gets ``:00`` seconds (FHIR needs
    them); ``default_offset`` (``+08:00``) applies only when the time has no offset of its own.
    """
    value = value.strip()
    if not value:
        return None
    parts = _parts(value)
    date = "-".join(p for p in (parts["year"], parts["month"], parts["day"]) if p)
    if not parts["hour"]:
        return date
    time = f"{parts['hour']}:{parts['minute'] or '00'}:{parts['second'] or '00'}"
    if parts["fraction"]:
        time += f".{parts['fraction']}"
    return f"{date}T{time}{_offset(parts['offset'], default_offset)}"


@lru_cache(maxsize=1024)
def to_fhir_instant(value: str, default_offset: str) -> str | None:
    """An instant needs at least seconds; less precise timestamps give None (left out).
    A value that is not a timestamp at all raises :class:`TimestampError`."""
    value = value.strip()
    if not value or not _parts(value)["second"]:
        return None
    return to_fhir_datetime(value, default_offset)


def _parts(value: str) -> dict[str, str | None]:
    match = _DTM.match(value)
    if not match:
        raise TimestampError(f"{_shown(value)} is not an HL7 date/time ({_FORM})")
    parts = match.groupdict()
    problem = _calendar_problem(parts) or _offset_problem(parts["offset"])
    if problem:
        raise TimestampError(f"{_shown(value)} is not a valid date/time: {problem}")
    return parts


def _calendar_problem(parts: dict[str, str | None]) -> str:
    year, month, day = int(parts["year"] or 0), parts["month"], parts["day"]
    if year == 0:
        return "year 0000"
    if month is not None and not 1 <= int(month) <= 12:
        return f"month {month}"
    if day is not None and month is not None:
        days = calendar.monthrange(year, int(month))[1]
        if not 1 <= int(day) <= days:
            return f"day {day} (the month has {days})"
    limits = (("hour", 23), ("minute", 59), ("second", 59))
    for name, highest in limits:
        text = parts[name]
        if text is not None and int(text) > highest:
            return f"{name} {text}"
    return ""


def _offset_problem(offset: str | None) -> str:
    """FHIR allows offsets up to 14:00 either way (the zones the world uses), minutes < 60."""
    if offset is None or offset == "Z":
        return ""
    hours, minutes = int(offset[1:3]), int(offset[3:5])
    if minutes > 59 or hours > 14 or (hours == 14 and minutes):
        return f"offset {offset} (from -1400 to +1400)"
    return ""


def _shown(value: str) -> str:
    """The value for an error message, cut short (a fuzzed field can be megabytes)."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _offset(sent: str | None, default_offset: str) -> str:
    if sent is None:
        return default_offset
    if sent == "Z":
        return "Z"
    return f"{sent[:3]}:{sent[3:]}"

"""HL7v2 timestamps (DTM/TS) -> FHIR dateTime and instant, keeping precision and offset.

python-hl7's ``parse_datetime`` pads ``2002`` into ``2002-01-01 00:00`` and drops the offset;
FHIR keeps both, so this module does its own reading (STYLE.md). A time of day without an
offset gets the source's configured offset, because FHIR requires one once hours are given.

Both conversions are pure and the same few timestamps recur in every result of a message
(OBR-7, OBR-22, MSH-7), so their results are cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

_DTM = re.compile(
    r"^(?P<year>\d{4})(?P<month>\d{2})?(?P<day>\d{2})?"
    r"(?P<hour>\d{2})?(?P<minute>\d{2})?(?P<second>\d{2})?(?:\.(?P<fraction>\d{1,4}))?"
    r"(?P<offset>[+-]\d{4}|Z)?$"
)


class TimestampError(ValueError):
    """The text is not an HL7 DTM; the caller names the field."""


@lru_cache(maxsize=1024)
def to_fhir_datetime(value: str, default_offset: str) -> str | None:
    """``20240115083000+0800`` -> ``2024-01-15T08:30:00+08:00``; '' -> None.

    Date-only values stay date-only; a time without seconds gets ``:00`` seconds (FHIR needs
    them); ``default_offset`` (``+08:00``) applies only when the time has no offset of its own.
    """
    value = value.strip()
    if not value:
        return None
    match = _DTM.match(value)
    if not match or (match["month"] and not 1 <= int(match["month"]) <= 12):
        raise TimestampError(f"{value!r} is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+ZZZZ])")
    parts = match.groupdict()
    date = "-".join(p for p in (parts["year"], parts["month"], parts["day"]) if p)
    if not parts["hour"]:
        return date
    if not parts["day"]:
        raise TimestampError(f"{value!r} has a time but no day")
    time = f"{parts['hour']}:{parts['minute'] or '00'}:{parts['second'] or '00'}"
    if parts["fraction"]:
        time += f".{parts['fraction']}"
    return f"{date}T{time}{_offset(parts['offset'], default_offset)}"


@lru_cache(maxsize=1024)
def to_fhir_instant(value: str, default_offset: str) -> str | None:
    """An instant needs at least seconds; less precise timestamps give None (left out)."""
    match = _DTM.match(value.strip())
    if not match or not match["second"]:
        return None
    return to_fhir_datetime(value, default_offset)


def _offset(sent: str | None, default_offset: str) -> str:
    if sent is None:
        return default_offset
    if sent == "Z":
        return "Z"
    return f"{sent[:3]}:{sent[3:]}"

"""Study days and visits: which visit a result belongs to, and which value counts.

Pure. Study days are counted in the hospital's time zone from day 0 (the first infusion), so
a 00:20 draw on the first day of a window stays in it even though it is the day before in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Generic, TypeVar

from adapter.errors import MappingError
from adapter.trial.study import Study, Visit

T = TypeVar("T")


class StudyDayError(MappingError, ValueError):
    """A time that cannot be placed on a study day: a year or month alone (FHIR keeps that
    precision, a visit window needs a day), a time with no offset, or no date at all."""


def local_date(effective: str, tz: timezone) -> date:
    """The calendar date of a FHIR date/dateTime in the study's time zone.

    A date-only value is that date; a partial date (``2024-01``) has no day and is refused
    with :class:`StudyDayError` (the mapping stage holds such results before they get here).
    """
    if len(effective) < 10:
        raise StudyDayError(
            f"{effective[:40]!r} has no day, so it has no study day",
            hint="the lab must send the date the sample was collected",
        )
    try:
        if len(effective) == 10:
            return date.fromisoformat(effective)
        moment = datetime.fromisoformat(effective.replace("Z", "+00:00"))
    except ValueError:
        raise StudyDayError(f"{effective[:40]!r} is not a FHIR date/dateTime") from None
    if moment.tzinfo is None:
        raise StudyDayError(f"{effective[:40]!r} has a time but no offset")
    return moment.astimezone(tz).date()


def study_day(effective: str, day0: date, tz: timezone) -> int:
    """Days since day 0 (day 0 itself is 0, the day before is -1)."""
    return (local_date(effective, tz) - day0).days


def visit_of(effective: str, day0: date, study: Study) -> Visit | None:
    """The visit whose window holds this time, or None when it is outside every window."""
    return study.visit_for(study_day(effective, day0, study.timezone))


@dataclass(frozen=True, slots=True)
class Candidate(Generic[T]):
    """One value in a visit window: its study day, time (for ordering) and value."""

    day: int
    effective: str
    value: Decimal
    item: T


def choose(candidates: Sequence[Candidate[T]], visit: Visit, rule: str) -> Candidate[T] | None:
    """The one value that counts for a visit, by the study's rule.

    nearest: closest to the target day, ties to the earlier; first/last: by time;
    min/max: by value, ties to the earlier.
    """
    inside = sorted((c for c in candidates if visit.contains(c.day)), key=_time_key)
    if not inside:
        return None
    if rule == "nearest":
        return min(inside, key=lambda c: abs(c.day - visit.target_day))
    if rule == "first":
        return inside[0]
    if rule == "last":
        return inside[-1]
    if rule == "min":
        return min(inside, key=lambda c: c.value)
    if rule == "max":
        return max(inside, key=lambda c: (c.value, -inside.index(c)))
    raise ValueError(f"unknown visit value rule {rule!r}")


def _time_key(candidate: Candidate[T]) -> tuple[int, datetime]:
    effective = candidate.effective
    moment = (
        datetime.fromisoformat(effective.replace("Z", "+00:00")) if len(effective) > 10 else None
    )
    if moment is None:
        moment = datetime.fromisoformat(effective + "T00:00:00+00:00")
    return candidate.day, moment

"""One subject's results of one test, graded in order: which result is the baseline, and the
grade of each. Pure; shared by the SDTM export (LBTOXGR) and the report's safety section.

The baseline is the last result with a value on or before day 0 (the day of first infusion,
whose draws the study's baseline window takes as pre-dose): SDTMIG's "last observation before
exposure" (LBLOBXFL). It and the results before it are graded against the reference range only
(a baseline has no baseline); later results use CTCAE's baseline rules where the term has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adapter.toxicity.ctcae import Context, Grade, Value, grade


@dataclass(frozen=True, slots=True)
class Point:
    """One result in time order: its value and study day (day 0 = first infusion; None when
    the subject has no day 0 or the result no date)."""

    value: Value
    day: int | None


def baseline_index(points: Sequence[Point]) -> int | None:
    """The index of the baseline among ``points`` (in time order), or None when there is none."""
    found = None
    for index, point in enumerate(points):
        if point.day is not None and point.day <= 0 and point.value.value is not None:
            found = index
    return found


def grade_series(
    term: str, points: Sequence[Point], *, anticoagulated: bool | None = None
) -> list[Grade]:
    """The grade of each point (same order), with the baseline chosen by :func:`baseline_index`."""
    base = baseline_index(points)
    baseline = points[base].value if base is not None else None
    grades = []
    for index, point in enumerate(points):
        pre = base is not None and index <= base
        context = Context(
            baseline=None if pre else baseline, is_baseline=pre, anticoagulated=anticoagulated
        )
        grades.append(grade(term, point.value, context))
    return grades


def is_post_baseline(index: int, points: Sequence[Point]) -> bool:
    """True for a result after the baseline (or on a day after day 0 when there is none)."""
    base = baseline_index(points)
    if base is not None:
        return index > base
    day = points[index].day
    return day is not None and day > 0

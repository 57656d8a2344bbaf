"""The report's safety section: CTCAE v5.0 grades per subject and test, and shift tables.
Pure; the grading itself is :mod:`adapter.toxicity` (the same the SDTM export's LBTOXGR uses).

For each subject and each analyte CTCAE grades (by its LOINC code), the subject's counted
results are taken in time order; the baseline is the last one on or before day 0
(:func:`adapter.toxicity.baseline_index`), graded against its own reference range; every later
result is graded with CTCAE's rules (multiples of an abnormal baseline where the term has
them). The worst post-baseline grade is the highest grade among the later results that could
be graded; results that could not be graded are counted with their reasons, never guessed.

safety.csv has one row per subject and graded test; safety_shift.csv counts, per arm and test,
the subjects by baseline grade (rows) and worst post-baseline grade (columns), ``none`` where
there was no grade.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from adapter.report.model import ANALYTE, Measure, Measurement, SubjectData, TrialData
from adapter.toxicity import (
    TERM_BY_LOINC,
    Grade,
    Point,
    Value,
    baseline_index,
    grade_series,
    is_post_baseline,
)
from adapter.toxicity.ctcae import CTCAE_VERSION
from adapter.trial.study import Study
from adapter.trial.visits import study_day

NONE = "none"
GRADES = ["0", "1", "2", "3", "4", NONE]
SAFETY_COLUMNS = [
    "arm", "subject", "measure", "term", "baseline_value", "baseline_date", "baseline_grade",
    "post_baseline_results", "graded", "not_graded", "worst_grade", "worst_value",
    "worst_date", "worst_study_day", "not_graded_reasons",
]  # fmt: skip
SHIFT_COLUMNS = ["arm", "measure", "term", "baseline_grade", *(f"worst_{g}" for g in GRADES),
                 "subjects"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Safety:
    """The safety tables: per subject x test, and the shift table per arm x test."""

    subjects: pd.DataFrame
    shift: pd.DataFrame
    version: str = CTCAE_VERSION


def graded_measures(measures: Sequence[Measure]) -> list[tuple[Measure, str]]:
    """The study's analytes that CTCAE grades, with their terms."""
    return [(m, TERM_BY_LOINC[m.loinc]) for m in measures
            if m.kind == ANALYTE and m.loinc in TERM_BY_LOINC]  # fmt: skip


def compute_safety(data: TrialData, study: Study, measures: Sequence[Measure]) -> Safety:
    """Both safety tables for ``data``."""
    graded = graded_measures(measures)
    found: dict[tuple[str, str], list[Measurement]] = defaultdict(list)
    for m in data.measurements:
        found[(m.subject, m.measure)].append(m)
    rows = []
    for subject in sorted(data.subjects, key=lambda s: s.subject):
        for measure, term in graded:
            results = sorted(found[(subject.subject, measure.key)], key=_time)
            rows.append(_subject_row(subject, measure, term, results, study))
    table = pd.DataFrame(rows, columns=SAFETY_COLUMNS)
    return Safety(table, shift_table(rows, study, graded))


def _time(m: Measurement) -> tuple[str, str]:
    return m.effective, m.observation_id


def _subject_row(
    subject: SubjectData, measure: Measure, term: str, results: list[Measurement], study: Study
) -> dict[str, Any]:
    points = [_point(m, measure.unit, subject, study) for m in results]
    grades = grade_series(term, points)
    base = baseline_index(points)
    later = [i for i in range(len(points)) if is_post_baseline(i, points)]
    gradeable = [i for i in later if grades[i].grade is not None]
    worst = max(gradeable, key=lambda i: (_level(grades[i]), -i), default=None)
    reasons = sorted({grades[i].basis for i in later if grades[i].grade is None})
    return {
        "arm": subject.arm,
        "subject": subject.subject,
        "measure": measure.key,
        "term": term,
        "baseline_value": _value(results[base]) if base is not None else "",
        "baseline_date": results[base].effective if base is not None else "",
        "baseline_grade": _grade(grades[base]) if base is not None else NONE,
        "post_baseline_results": len(later),
        "graded": len(gradeable),
        "not_graded": len(later) - len(gradeable),
        "worst_grade": _grade(grades[worst]) if worst is not None else NONE,
        "worst_value": _value(results[worst]) if worst is not None else "",
        "worst_date": results[worst].effective if worst is not None else "",
        "worst_study_day": points[worst].day if worst is not None else "",
        "not_graded_reasons": "; ".join(reasons),
    }


def _point(m: Measurement, unit: str, subject: SubjectData, study: Study) -> Point:
    day = study_day(m.effective, subject.day0, study.timezone) if subject.day0 else None
    return Point(Value(m.value, m.comparator, m.low, m.high, unit), day)


def _level(grade: Grade) -> int:
    return -1 if grade.grade is None else grade.grade


def _grade(grade: Grade) -> str:
    return NONE if grade.grade is None else str(grade.grade)


def _value(m: Measurement) -> str:
    text = format(m.value.normalize(), "f")
    return f"{m.comparator}{text}"


def shift_table(
    rows: Sequence[dict[str, Any]], study: Study, graded: Sequence[tuple[Measure, str]]
) -> pd.DataFrame:
    """Per arm x test x baseline grade: how many subjects reached each worst grade."""
    counts: Counter[tuple[str, str, str, str]] = Counter(
        (r["arm"], r["measure"], r["baseline_grade"], r["worst_grade"]) for r in rows
    )
    out = []
    for arm in study.arms:
        for measure, term in graded:
            for base in GRADES:
                row: dict[str, Any] = {"arm": arm.code, "measure": measure.key, "term": term,
                                       "baseline_grade": base}  # fmt: skip
                for worst in GRADES:
                    row[f"worst_{worst}"] = counts[(arm.code, measure.key, base, worst)]
                row["subjects"] = sum(row[f"worst_{w}"] for w in GRADES)
                out.append(row)
    return pd.DataFrame(out, columns=SHIFT_COLUMNS)

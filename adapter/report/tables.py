"""The report's tables, computed from plain data (:mod:`adapter.report.model`). Pure.

For each subject, measure (analyte or score) and scheduled visit, the Observations whose study
day falls in the visit's window are the candidates, and the study's rule
(:func:`adapter.trial.visits.choose`: nearest, first, last, min or max) picks the one value
that counts. Study days are recomputed from the subject's day 0 in the study's time zone; the
visit tag an Observation carries is shown next to it but not trusted.

Completeness states of a subject x visit x measure, relative to the ``as_of`` date:

- ``present``: a value in the window;
- ``no-day-0``: the subject has no day 0, so no study day can be computed;
- ``not-expected``: the subject's follow-up (period end or death) ended before the window;
- ``out-of-window``: no value in the window, but one outside every window is nearest this visit
  (``detail`` gives its study day);
- ``not-due``: the window opens after ``as_of``; ``due``: it is open on ``as_of``;
- ``missing``: the window has closed and the subject had this visit (another analyte is
  present in the window) but not this measure;
- ``overdue``: the window has closed with nothing for the visit at all.

Change from baseline, per arm x visit x measure: for each subject with a value at both the
visit and the baseline visit, that subject's value minus that subject's own baseline value;
those per-subject changes are then summarised (n, median, quartiles, min, max). It is blank
at the baseline visit itself. Quartiles interpolate linearly between order statistics
(numpy's and pandas' default, R type 7).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from adapter.report.model import ANALYTE, Measure, Measurement, SubjectData, TrialData
from adapter.trial.study import Study, Visit
from adapter.trial.visits import Candidate, choose, local_date, study_day

PRESENT = "present"
NO_DAY_0 = "no-day-0"
NOT_EXPECTED = "not-expected"
OUT_OF_WINDOW = "out-of-window"
NOT_DUE = "not-due"
DUE = "due"
MISSING = "missing"
OVERDUE = "overdue"

SUBJECT_COLUMNS = [
    "subject", "arm", "status", "consent", "day_0", "period_end", "last_visit",
    "last_visit_date", "vital_status", "death_date", "last_known_alive", "survival_days",
    "died",
]  # fmt: skip
VISIT_COLUMNS = [
    "subject", "arm", "visit", "target_day", "measure", "kind", "value", "comparator", "unit",
    "effective", "study_day", "status", "observation_id", "tag", "in_window", "state",
]  # fmt: skip
_STATS = ["n", "median", "q1", "q3", "iqr", "min", "max"]
SUMMARY_COLUMNS = [
    "arm", "visit", "measure", "unit", *_STATS, *(f"change_{s}" for s in _STATS),
]  # fmt: skip
COMPLETENESS_COLUMNS = [
    "subject", "arm", "visit", "measure", "window_start", "window_end", "state", "detail",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cell:
    """One subject x visit x measure: the chosen value (if any) and its state."""

    subject: SubjectData
    visit: Visit
    measure: Measure
    chosen: Candidate[Measurement] | None
    in_window: int
    state: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Tables:
    """Every table of the report, as DataFrames in their published column order."""

    subjects: pd.DataFrame
    visits: pd.DataFrame
    summary: pd.DataFrame
    completeness: pd.DataFrame
    cells: tuple[Cell, ...]


def compute_tables(
    data: TrialData, study: Study, measures: Sequence[Measure], rule: str, as_of: date
) -> Tables:
    """All the tables for one study, with ``rule`` choosing the value per visit window."""
    cells = tuple(grid(data, study, measures, rule, as_of))
    return Tables(
        subjects=subjects_table(data, cells, study),
        visits=visits_table(cells),
        summary=summary_table(cells, study, measures),
        completeness=completeness_table(cells, study),
        cells=cells,
    )


def grid(
    data: TrialData, study: Study, measures: Sequence[Measure], rule: str, as_of: date
) -> Iterable[Cell]:
    """Every subject x visit x measure, sorted by subject, then visit, then measure."""
    by_subject: dict[str, list[Measurement]] = defaultdict(list)
    for m in data.measurements:
        by_subject[m.subject].append(m)
    for subject in sorted(data.subjects, key=lambda s: s.subject):
        yield from _subject_cells(
            subject, by_subject[subject.subject], study, measures, rule, as_of
        )


def _subject_cells(
    subject: SubjectData,
    found: list[Measurement],
    study: Study,
    measures: Sequence[Measure],
    rule: str,
    as_of: date,
) -> Iterable[Cell]:
    day0 = subject.day0
    candidates: dict[str, list[Candidate[Measurement]]] = defaultdict(list)
    if day0 is not None:
        for m in sorted(found, key=lambda m: (m.effective, m.observation_id)):
            day = study_day(m.effective, day0, study.timezone)
            candidates[m.measure].append(Candidate(day, m.effective, m.value, m))
    # Each result outside every window, under the visit nearest to it: found once per
    # subject, not once per visit (that was most of the report's time at 2,000 subjects).
    nearest: dict[int, Visit | None] = {}
    strays: dict[tuple[str, str], list[Candidate[Measurement]]] = defaultdict(list)
    for key, found_here in candidates.items():
        for c in found_here:
            if c.day not in nearest:
                nearest[c.day] = _nearest_visit(c.day, study)
            if (near := nearest[c.day]) is not None:
                strays[key, near.code].append(c)
    for visit in study.visits:
        chosen = {m.key: choose(candidates[m.key], visit, rule) for m in measures}
        had_visit = any(chosen[m.key] for m in measures if m.kind == ANALYTE)
        for measure in measures:
            inside = sum(1 for c in candidates[measure.key] if visit.contains(c.day))
            stray = strays.get((measure.key, visit.code), [])
            state, detail = _state(subject, visit, stray, had_visit, as_of)
            pick = chosen[measure.key]
            yield Cell(subject, visit, measure, pick, inside, PRESENT if pick else state, detail)


def _state(
    subject: SubjectData,
    visit: Visit,
    stray: list[Candidate[Measurement]],
    had_visit: bool,
    as_of: date,
) -> tuple[str, str]:
    """The state of a visit with no value in its window (see the module docstring);
    ``stray``: the measure's results outside every window, nearest to this visit."""
    if subject.day0 is None:
        return NO_DAY_0, ""
    start, end = window_dates(subject.day0, visit)
    ended = min((d for d in (subject.period_end, subject.death) if d), default=None)
    if ended is not None and ended < start:
        return NOT_EXPECTED, f"follow-up ended {ended.isoformat()}"
    if stray:
        return OUT_OF_WINDOW, "; ".join(f"study day {c.day}" for c in stray)
    if as_of < start:
        return NOT_DUE, ""
    if as_of <= end:
        return DUE, ""
    return (MISSING, "") if had_visit else (OVERDUE, "")


def _nearest_visit(day: int, study: Study) -> Visit | None:
    """For a study day outside every window: the visit whose target is nearest (ties: earlier)."""
    if study.visit_for(day) is not None:
        return None
    return min(study.visits, key=lambda v: abs(day - v.target_day))


def window_dates(day0: date, visit: Visit) -> tuple[date, date]:
    """The first and last calendar date of a visit's window for a subject."""
    return day0 + timedelta(days=visit.first_day), day0 + timedelta(days=visit.last_day)


def fmt(value: Decimal) -> str:
    """A Decimal as plain text without exponent or trailing zeros (120, 1.5, 0.05)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


# subjects.csv -------------------------------------------------------------------------------


def subjects_table(data: TrialData, cells: Sequence[Cell], study: Study) -> pd.DataFrame:
    """One row per subject: arm, status, dates, last visit, vital status, survival time."""
    by_subject: dict[str, list[Measurement]] = defaultdict(list)
    for m in data.measurements:
        by_subject[m.subject].append(m)
    # Each subject's chosen analyte cells, in grid order (one pass: scanning every cell for
    # every subject took most of the report's time at 2,000 subjects).
    chosen: dict[int, list[Cell]] = defaultdict(list)
    for c in cells:
        if c.chosen and c.measure.kind == ANALYTE:
            chosen[id(c.subject)].append(c)
    rows = []
    for subject in sorted(data.subjects, key=lambda s: s.subject):
        own = chosen[id(subject)]
        last = own[-1].visit if own else None
        last_date = max(
            (_local(c.chosen.effective, study) for c in own if c.visit is last and c.chosen),
            default=None,
        )
        days, died = survival_time(subject, by_subject[subject.subject], study)
        rows.append(
            {
                "subject": subject.subject,
                "arm": subject.arm,
                "status": subject.status,
                "consent": _iso(subject.consent),
                "day_0": _iso(subject.day0),
                "period_end": _iso(subject.period_end),
                "last_visit": last.code if last else "",
                "last_visit_date": _iso(last_date),
                "vital_status": "dead" if subject.death else "alive",
                "death_date": _iso(subject.death),
                "last_known_alive": _iso(subject.last_known_alive),
                "survival_days": "" if days is None else days,
                "died": "" if days is None else int(died),
            }
        )
    return pd.DataFrame(rows, columns=SUBJECT_COLUMNS)


def survival_time(
    subject: SubjectData, measurements: Sequence[Measurement], study: Study
) -> tuple[int | None, bool]:
    """Days from day 0 to death (an event), or to the last date known alive (censored).

    Known alive: the later of the ``last-known-alive`` date and the subject's last counted
    result; day 0 itself when there is neither. None without a day 0.
    """
    if subject.day0 is None:
        return None, False
    if subject.death is not None:
        return (subject.death - subject.day0).days, True
    known = [subject.day0, *(_local(m.effective, study) for m in measurements)]
    if subject.last_known_alive is not None:
        known.append(subject.last_known_alive)
    return (max(known) - subject.day0).days, False


# visits.csv ---------------------------------------------------------------------------------


def visits_table(cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per subject x visit x measure; a visit without a value shows its state."""
    rows = []
    for cell in cells:
        m = cell.chosen.item if cell.chosen else None
        rows.append(
            {
                "subject": cell.subject.subject,
                "arm": cell.subject.arm,
                "visit": cell.visit.code,
                "target_day": cell.visit.target_day,
                "measure": cell.measure.key,
                "kind": cell.measure.kind,
                "value": fmt(m.value) if m else "",
                "comparator": m.comparator if m else "",
                "unit": cell.measure.unit,
                "effective": m.effective if m else "",
                "study_day": cell.chosen.day if cell.chosen else "",
                "status": m.status if m else "",
                "observation_id": m.observation_id if m else "",
                "tag": m.tag if m else "",
                "in_window": cell.in_window,
                "state": cell.state,
            }
        )
    return pd.DataFrame(rows, columns=VISIT_COLUMNS)


# summary.csv --------------------------------------------------------------------------------


def summary_table(cells: Sequence[Cell], study: Study, measures: Sequence[Measure]) -> pd.DataFrame:
    """Per arm x visit x measure: n, median, quartiles, IQR, min, max, change from baseline."""
    values: dict[tuple[str, str, str], dict[str, Decimal]] = defaultdict(dict)
    for cell in cells:
        if cell.chosen:
            key = (cell.subject.arm, cell.visit.code, cell.measure.key)
            values[key][cell.subject.subject] = cell.chosen.value
    baseline = study.visits[0].code
    rows = []
    for arm in study.arms:
        for visit in study.visits:
            for measure in measures:
                here = values[(arm.code, visit.code, measure.key)]
                base = values[(arm.code, baseline, measure.key)]
                changes = (
                    [here[s] - base[s] for s in sorted(here) if s in base]
                    if visit.code != baseline
                    else None
                )
                row: dict[str, Any] = {
                    "arm": arm.code,
                    "visit": visit.code,
                    "measure": measure.key,
                    "unit": measure.unit,
                }
                row.update(describe(list(here.values())))
                row.update({f"change_{k}": v for k, v in describe(changes).items()})
                rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def describe(values: Sequence[Decimal] | None) -> dict[str, Any]:
    """n, median, q1, q3, IQR, min and max (linear quartiles); blanks when there is nothing."""
    if values is None:
        return dict.fromkeys(_STATS, None)
    if not values:
        return {"n": 0, **dict.fromkeys(_STATS[1:], None)}
    series = pd.Series([float(v) for v in values], dtype="float64")
    q1, median, q3 = (float(series.quantile(q)) for q in (0.25, 0.5, 0.75))
    return {
        "n": len(values),
        "median": median,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": float(series.min()),
        "max": float(series.max()),
    }


# completeness.csv ---------------------------------------------------------------------------


def completeness_table(cells: Sequence[Cell], study: Study) -> pd.DataFrame:
    """One row per subject x visit x analyte (scores are derived, so not counted)."""
    rows = []
    for cell in cells:
        if cell.measure.kind != ANALYTE:
            continue
        day0 = cell.subject.day0
        start, end = window_dates(day0, cell.visit) if day0 else (None, None)
        rows.append(
            {
                "subject": cell.subject.subject,
                "arm": cell.subject.arm,
                "visit": cell.visit.code,
                "measure": cell.measure.key,
                "window_start": _iso(start),
                "window_end": _iso(end),
                "state": cell.state,
                "detail": cell.detail,
            }
        )
    return pd.DataFrame(rows, columns=COMPLETENESS_COLUMNS)


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def _local(effective: str, study: Study) -> date:
    return local_date(effective, study.timezone)

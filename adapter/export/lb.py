"""SDTM LB (with its SUPPLB reasons) and SV from a subject's :class:`LabRecord` s. Pure.

Rules, each from SDTMIG v3.3 unless said otherwise:

- **LBDY** (section 4.4.4): on or after RFSTDTC (day 0, the first infusion) the study day is the
  difference in days + 1, before it the difference (there is no day 0). Dates are the calendar
  dates in the study's time zone, as the report counts them, so a draw at 00:30 local time is
  on that local day even when its UTC date is the day before.
- **VISITNUM / VISIT / VISITDY**: a result inside a visit window (``config/study.yaml``) takes
  that visit's number (its position in the schedule, 1 = baseline), name and planned study day.
  Results outside every window are unscheduled: VISITNUM is the number of the last scheduled
  visit before them plus .01 for the first unscheduled date after it, .02 for the next...
  (section 4.4.5), VISIT is ``UNSCHEDULED <n>``, VISITDY is null.
- **LBLOBXFL**: the last result with a value on or before day 0, per test
  (:func:`adapter.toxicity.baseline_index`, the baseline CTCAE grading uses too).
- **EPOCH**: SCREENING up to day 0 (its draws are pre-dose: the baseline window holds day 0),
  TREATMENT after.
- **LBSTAT / LBREASND**: NOT DONE for a result the laboratory cancelled.
- **LBSTRESC / LBSTRESN**: the canonical-unit value to 10 significant digits; a censored value
  (``<0.5``) keeps its comparator in LBSTRESC and has no LBSTRESN.
- **LBTOX / LBTOXGR**: the CTCAE v5.0 term and grade (:mod:`adapter.toxicity`); a result of a
  graded test that gets no grade has the reason in SUPPLB (QNAM ``LBTOXNR``).
- **LBSPID**: the FHIR Observation the row came from (``Observation/<id>``), for tracing.
- **LBSEQ**: 1, 2... per subject in the order USUBJID, LBCAT, LBTESTCD, collection time, then
  the Observation's identifier, so the same server content always gives the same numbers.
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from adapter.export import cdisc
from adapter.export.lab import CANCELLED, LabRecord, original_range
from adapter.report.model import SubjectData
from adapter.toxicity import TERM_BY_LOINC, Grade, Point, Value, baseline_index, grade_series
from adapter.trial.study import Study, Visit
from adapter.trial.visits import local_date

_SIGNIFICANT = decimal.Context(prec=10, rounding=decimal.ROUND_HALF_EVEN)
NOT_DONE = "NOT DONE"
CANCELLED_REASON = "Cancelled by the laboratory"


@dataclass(frozen=True, slots=True)
class Placed:
    """A record with its time and visit worked out."""

    record: LabRecord
    local: date | None  # calendar date in the study's time zone
    day: int | None  # study day, day 0 = first infusion (the report's count)
    moment: datetime | None  # for ordering
    visitnum: float | None = None
    visit: str = ""
    visitdy: int | None = None


def sdtm_day(day: int | None) -> int | None:
    """SDTM study day from the study's day count (day 0 = RFSTDTC): no day 0."""
    if day is None:
        return None
    return day + 1 if day >= 0 else day


def visit_number(study: Study, visit: Visit) -> int:
    return study.visits.index(visit) + 1


def visit_name(visit: Visit) -> str:
    return visit.name.upper()


def place(records: Sequence[LabRecord], subject: SubjectData, study: Study) -> list[Placed]:
    """Each record with its date, study day and visit, sorted by collection time."""
    placed = [_when(r, subject, study) for r in records]
    placed.sort(key=_order)
    unscheduled: dict[int, list[date]] = defaultdict(list)
    out = []
    for p in placed:
        if p.day is None or p.local is None:
            out.append(p)
            continue
        visit = study.visit_for(p.day)
        if visit is not None:
            out.append(_with_visit(p, visit_number(study, visit), visit_name(visit), visit))
            continue
        before = _previous_visit(study, p.day)
        dates = unscheduled[before]
        if p.local not in dates:
            dates.append(p.local)
        number = round(before + (dates.index(p.local) + 1) / 100, 2)
        out.append(_with_visit(p, number, f"UNSCHEDULED {number:.2f}", None))
    return out


def _with_visit(p: Placed, number: float, name: str, visit: Visit | None) -> Placed:
    planned = sdtm_day(visit.target_day) if visit else None
    return Placed(p.record, p.local, p.day, p.moment, float(number), name, planned)


def _previous_visit(study: Study, day: int) -> int:
    """The number of the last scheduled visit whose window ended before ``day`` (0: none)."""
    return max((i + 1 for i, v in enumerate(study.visits) if v.last_day < day), default=0)


def _when(record: LabRecord, subject: SubjectData, study: Study) -> Placed:
    try:
        local = local_date(record.effective, study.timezone) if record.effective else None
        moment = _moment(record.effective, study)
    except ValueError:  # a dateTime without an offset, or without a day: cannot be placed
        local, moment = None, None
    day = (local - subject.day0).days if local and subject.day0 else None
    return Placed(record, local, day, moment)


def _moment(effective: str, study: Study) -> datetime | None:
    if not effective:
        return None
    if len(effective) == 10:
        return datetime.combine(date.fromisoformat(effective), time(), study.timezone)
    return datetime.fromisoformat(effective.replace("Z", "+00:00")).astimezone(study.timezone)


def _order(p: Placed) -> tuple[Any, ...]:
    moment = p.moment.isoformat() if p.moment else "~"  # undated results last
    return (moment, p.record.identifier, p.record.observation_id)


# LB -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabRows:
    """One subject's LB rows and the SUPPLB rows that give why a grade is missing."""

    lb: list[dict[str, Any]]
    supplb: list[dict[str, Any]]


def lb_rows(placed: Sequence[Placed], study: Study, usubjid: str) -> LabRows:
    """The subject's LB rows (as variable -> value) from its :func:`place` d records, LBSEQ
    numbered, in key order."""
    flags, grades = _baseline_and_grades(placed)
    rows = []
    for index, p in enumerate(placed):
        rows.append(_lb_row(p, usubjid, study, index in flags, grades.get(index)))
    rows.sort(key=lambda r: (r["LBCAT"], r["LBTESTCD"], r["_order"]))
    supplb = []
    for seq, row in enumerate(rows, start=1):
        row["LBSEQ"] = seq
        reason = row.pop("_reason")
        row.pop("_order")
        if reason:
            supplb.append(_supplb(study, usubjid, seq, reason))
    return LabRows(rows, supplb)


def _baseline_and_grades(placed: Sequence[Placed]) -> tuple[set[int], dict[int, Grade]]:
    """The indexes flagged LBLOBXFL, and each gradeable record's grade, per test."""
    by_test: dict[str, list[int]] = defaultdict(list)
    for index, p in enumerate(placed):
        by_test[p.record.loinc].append(index)
    flags: set[int] = set()
    grades: dict[int, Grade] = {}
    for loinc, indexes in by_test.items():
        points = [_point(placed[i]) for i in indexes]
        base = baseline_index(points)
        if base is not None:
            flags.add(indexes[base])
        term = TERM_BY_LOINC.get(loinc)
        if term is None:
            continue
        for i, graded in zip(indexes, grade_series(term, points), strict=True):
            if placed[i].record.status != CANCELLED:
                grades[i] = graded
    return flags, grades


def _point(p: Placed) -> Point:
    r = p.record
    value = r.standard if r.status != CANCELLED else None
    return Point(Value(value, r.comparator, r.low, r.high, r.standard_unit), p.day)


def _lb_row(
    p: Placed, usubjid: str, study: Study, baseline: bool, graded: Grade | None
) -> dict[str, Any]:
    r = p.record
    test = cdisc.LAB_TESTS.get(r.loinc) or cdisc.LabTest(r.loinc, r.analyte, "CHEMISTRY")
    cancelled = r.status == CANCELLED
    standard = _SIGNIFICANT.plus(r.standard) if r.standard is not None else None
    lo, hi = original_range(r)
    return {
        "STUDYID": study.identifier,
        "DOMAIN": "LB",
        "USUBJID": usubjid,
        "LBSEQ": None,
        "LBSPID": f"Observation/{r.observation_id}",
        "LBTESTCD": test.testcd,
        "LBTEST": test.test,
        "LBCAT": test.category,
        "LBORRES": _text(r.as_sent.value, r.as_sent.comparator) if r.as_sent else "",
        "LBORRESU": cdisc.unit(r.as_sent.unit) if r.as_sent else "",
        "LBORNRLO": _text(lo),
        "LBORNRHI": _text(hi),
        "LBSTRESC": _text(standard, r.comparator),
        "LBSTRESN": float(standard) if standard is not None and not r.comparator else None,
        "LBSTRESU": cdisc.unit(r.standard_unit) if standard is not None else "",
        "LBSTNRLO": _number(r.low),
        "LBSTNRHI": _number(r.high),
        "LBNRIND": next((cdisc.NRIND[c] for c in r.interpretation if c in cdisc.NRIND), ""),
        "LBSTAT": NOT_DONE if cancelled else "",
        "LBREASND": CANCELLED_REASON if cancelled else "",
        "LBLOINC": r.loinc,
        "LBLOBXFL": "Y" if baseline else "",
        "LBTOX": graded.term if graded else "",
        "LBTOXGR": str(graded.grade) if graded and graded.grade is not None else "",
        "VISITNUM": p.visitnum,
        "VISIT": p.visit,
        "VISITDY": p.visitdy,
        "EPOCH": _epoch(p.day),
        "LBDTC": r.effective,
        "LBDY": sdtm_day(p.day),
        "_reason": graded.basis if graded and graded.grade is None else "",
        "_order": _order(p),
    }


def _epoch(day: int | None) -> str:
    if day is None:
        return ""
    return cdisc.EPOCH_SCREENING if day <= 0 else cdisc.EPOCH_TREATMENT


def _supplb(study: Study, usubjid: str, seq: int, reason: str) -> dict[str, Any]:
    return {
        "STUDYID": study.identifier,
        "RDOMAIN": "LB",
        "USUBJID": usubjid,
        "IDVAR": "LBSEQ",
        "IDVARVAL": str(seq),
        "QNAM": "LBTOXNR",
        "QLABEL": "Reason Toxicity Grade Not Assigned",
        "QVAL": reason,
        "QORIG": "Derived",
        "QEVAL": "",
    }


def fmt(value: Decimal) -> str:
    """A Decimal as plain text without exponent or trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _text(value: Decimal | None, comparator: str = "") -> str:
    return "" if value is None else f"{comparator}{fmt(value)}"


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# SV -----------------------------------------------------------------------------------------

UNPLANNED = "Laboratory draw outside every visit window"


def sv_rows(
    placed: Sequence[Placed], subject: SubjectData, study: Study, usubjid: str
) -> list[dict[str, Any]]:
    """The visits the subject had: each visit with a drawn result, first and last draw date."""
    dates: dict[tuple[float, str, int | None], list[date]] = defaultdict(list)
    for p in placed:
        if p.visitnum is None or p.local is None or p.record.status == CANCELLED:
            continue
        dates[(p.visitnum, p.visit, p.visitdy)].append(p.local)
    rows = []
    for (number, name, planned), seen in sorted(dates.items(), key=lambda kv: kv[0][0]):
        first, last = min(seen), max(seen)
        assert subject.day0 is not None  # a visit number needs a study day
        rows.append(
            {
                "STUDYID": study.identifier,
                "DOMAIN": "SV",
                "USUBJID": usubjid,
                "VISITNUM": number,
                "VISIT": name,
                "VISITDY": planned,
                "SVSTDTC": first.isoformat(),
                "SVENDTC": last.isoformat(),
                "SVSTDY": sdtm_day((first - subject.day0).days),
                "SVENDY": sdtm_day((last - subject.day0).days),
                "SVUPDES": "" if planned is not None else UNPLANNED,
            }
        )
    return rows

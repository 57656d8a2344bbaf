"""The coordinator's enrolment list (CSV) -> checked :class:`NewSubject` rows. Pure.

Columns: subject_id, mrn, mrn_authority, arm, consent_date, infusion_dates (``;``-separated),
sex (F/M/O/U), birth_year; optional: other_ids (``value^authority;...``) and death_date.
Every problem is reported with its line, and nothing is imported unless every row is good.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from adapter.trial.enrolment import EnrolledSubject, HospitalId
from adapter.trial.registry import NewSubject, check_enrolment
from adapter.trial.resources import SubjectRecord
from adapter.trial.study import Study

REQUIRED = (
    "subject_id",
    "mrn",
    "mrn_authority",
    "arm",
    "consent_date",
    "infusion_dates",
    "sex",
    "birth_year",
)


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    subject: NewSubject
    death_date: date | None


@dataclass(frozen=True, slots=True)
class ImportPlan:
    rows: tuple[ImportRow, ...]
    problems: tuple[str, ...]  # "line N: ..." each


def plan_import(
    text: str,
    study: Study,
    enrolled: Sequence[EnrolledSubject],
    *,
    name: str = "CSV",
    override_age: bool = False,
) -> ImportPlan:
    """Read and check every row; the plan says what would be enrolled and what is wrong."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        return ImportPlan((), (f"{name}:1: missing column(s): {', '.join(missing)}",))
    rows: list[ImportRow] = []
    problems: list[str] = []
    for line, record in enumerate(reader, start=2):
        try:
            row = ImportRow(line, _new_subject(record), _optional_date(record.get("death_date")))
        except ValueError as exc:
            problems.append(f"{name}:{line}: {exc}")
            continue
        earlier = [*enrolled, *(_as_enrolled(r.subject) for r in rows)]
        for problem in check_enrolment(row.subject, study, earlier, override_age=override_age):
            problems.append(f"{name}:{line}: {row.subject.subject_id}: {problem}")
        rows.append(row)
    return ImportPlan(tuple(rows), tuple(problems))


def _new_subject(record: dict[str, str]) -> NewSubject:
    ids = [HospitalId(record["mrn"].strip(), record["mrn_authority"].strip())]
    for other in filter(None, (record.get("other_ids") or "").split(";")):
        value, _, authority = other.partition("^")
        ids.append(HospitalId(value.strip(), authority.strip()))
    return NewSubject(
        subject_id=record["subject_id"].strip(),
        hospital_ids=tuple(ids),
        arm=record["arm"].strip(),
        consent_date=_date(record["consent_date"], "consent_date"),
        infusion_dates=tuple(
            _date(d, "infusion_dates") for d in record["infusion_dates"].split(";") if d.strip()
        ),
        sex=record["sex"].strip().upper(),
        birth_year=_year(record["birth_year"]),
    )


def _date(text: str, column: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a date like 2024-01-15") from None


def _optional_date(text: str | None) -> date | None:
    return _date(text, "death_date") if text and text.strip() else None


def _year(text: str) -> int:
    if not text.strip().isdigit() or not 1900 <= int(text) <= 2100:
        raise ValueError(f"birth_year {text!r} is not a year like 1961")
    return int(text)


def _as_enrolled(new: NewSubject) -> EnrolledSubject:
    record = SubjectRecord(
        new.subject_id, new.arm, new.sex, new.birth_year, new.consent_date, "on-study"
    )
    return EnrolledSubject(record, new.hospital_ids, new.infusion_dates)

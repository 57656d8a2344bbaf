"""The enrolment filter: does a message belong to an enrolled subject? Pure core.

Decided from the message's patient identifiers (PID-3: value and assigning authority) before
anything is mapped. Everyone else's messages are dropped at once, and nothing identifying them
is kept: the decision carries no identifier of a patient who is not enrolled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from adapter.parse.model import PatientIdentifier
from adapter.trial.resources import SubjectRecord
from adapter.trial.study import Study
from adapter.trial.visits import study_day


@dataclass(frozen=True, slots=True)
class HospitalId:
    """An identifier that points to one person: the value and its assigning authority."""

    value: str
    authority: str

    def key(self) -> tuple[str, str]:
        return (self.value.strip(), self.authority.strip().upper())


@dataclass(frozen=True, slots=True)
class EnrolledSubject:
    """A registry entry: the trial-facing record plus what stays in the hospital."""

    record: SubjectRecord
    hospital_ids: tuple[HospitalId, ...]
    infusion_dates: tuple[date, ...]
    withdrawn_at: datetime | None = None  # forwarding stops from this moment

    @property
    def subject_id(self) -> str:
        return self.record.subject_id

    @property
    def day0(self) -> date:
        """Day 0 of the study for this subject: the first infusion."""
        return min(self.infusion_dates)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the filter decided. ``subject`` only when enrolled; ``reason`` says why not."""

    verdict: str  # enrolled | not-enrolled | ambiguous | withdrawn
    subject: EnrolledSubject | None = None
    reason: str = ""
    candidates: tuple[str, ...] = field(default=())  # subject ids, for ambiguous only

    @property
    def passes(self) -> bool:
        return self.verdict == "enrolled"


class EnrolmentIndex:
    """Enrolled subjects by hospital identifier, built once from the registry."""

    def __init__(self, subjects: Iterable[EnrolledSubject]) -> None:
        self._by_id: dict[tuple[str, str], EnrolledSubject] = {}
        for subject in subjects:
            for hospital_id in subject.hospital_ids:
                self._by_id[hospital_id.key()] = subject

    def __len__(self) -> int:
        return len({s.subject_id for s in self._by_id.values()})

    def decide(self, patient_ids: Iterable[PatientIdentifier], received_at: datetime) -> Decision:
        """Enrolled, not enrolled, ambiguous (two subjects), or withdrawn before receipt."""
        matches = _matches(self._by_id, patient_ids)
        if not matches:
            return Decision("not-enrolled", reason="no identifier belongs to an enrolled subject")
        if len(matches) > 1:
            ids = tuple(sorted(matches))
            return Decision(
                "ambiguous",
                reason=f"the identifiers point to different subjects ({', '.join(ids)})",
                candidates=ids,
            )
        [subject] = matches.values()
        if subject.withdrawn_at is not None and received_at >= subject.withdrawn_at:
            return Decision("withdrawn", subject, f"{subject.subject_id} withdrew")
        return Decision("enrolled", subject)


def _matches(
    by_id: Mapping[tuple[str, str], EnrolledSubject], patient_ids: Iterable[PatientIdentifier]
) -> dict[str, EnrolledSubject]:
    found: dict[str, EnrolledSubject] = {}
    for patient_id in patient_ids:
        subject = by_id.get(HospitalId(patient_id.value, patient_id.authority).key())
        if subject is not None:
            found[subject.subject_id] = subject
    return found


def age_range_at(consent: date, birth_year: int) -> tuple[int, int]:
    """The youngest and oldest the subject can be at consent, knowing only the birth year."""
    oldest = consent.year - birth_year
    return oldest - 1, oldest


def before_baseline(effective: str | None, subject: EnrolledSubject, study: Study) -> bool:
    """True when a result is dated before the study's first window (dropped, not sent).

    A result with no date or no day cannot be placed and is kept.
    """
    if effective is None or len(effective) < 10:
        return False
    first_day = min(v.first_day for v in study.visits)
    return study_day(effective, subject.day0, study.timezone) < first_day

"""The enrolment filter's pure core: who passes, who is dropped, who is held for review."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from adapter.parse.model import PatientIdentifier
from adapter.trial.enrolment import (
    EnrolledSubject,
    EnrolmentIndex,
    HospitalId,
    age_range_at,
    before_baseline,
)
from adapter.trial.gate import patient_ids_in
from adapter.trial.resources import SubjectRecord
from adapter.trial.study import load_study

NOW = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def subject(
    subject_id: str, *ids: tuple[str, str], withdrawn: datetime | None = None
) -> EnrolledSubject:
    record = SubjectRecord(subject_id, "low-dose", "F", 1961, date(2024, 1, 2), "on-study")
    hospital_ids = tuple(HospitalId(v, a) for v, a in ids)
    return EnrolledSubject(record, hospital_ids, (date(2024, 1, 15), date(2024, 2, 12)), withdrawn)


INDEX = EnrolmentIndex(
    [
        subject("DDSC-001", ("20986393", "NTCH")),
        subject("DDSC-002", ("555", "NTCH"), ("A-77", "SYH")),
        subject("DDSC-003", ("777", "NTCH"), withdrawn=datetime(2024, 2, 1, tzinfo=UTC)),
    ]
)


def pid(value: str, authority: str) -> PatientIdentifier:
    return PatientIdentifier(value, authority, "MR")


def test_an_enrolled_mrn_with_its_authority_passes() -> None:
    decision = INDEX.decide([pid("20986393", "NTCH")], NOW)
    assert decision.passes and decision.subject is not None
    assert decision.subject.subject_id == "DDSC-001"


def test_authority_is_matched_case_insensitively_and_value_exactly() -> None:
    assert INDEX.decide([pid("20986393", "ntch")], NOW).passes
    assert not INDEX.decide([pid("2098639", "NTCH")], NOW).passes


def test_the_same_number_from_another_authority_is_someone_else() -> None:
    decision = INDEX.decide([pid("20986393", "SYH")], NOW)
    assert decision.verdict == "not-enrolled" and decision.subject is None
    assert "20986393" not in decision.reason


def test_any_of_several_identifiers_can_match() -> None:
    decision = INDEX.decide([pid("X1", "OTHER"), pid("A-77", "SYH")], NOW)
    assert decision.passes and decision.subject is not None
    assert decision.subject.subject_id == "DDSC-002"


def test_identifiers_of_two_subjects_are_held_for_review() -> None:
    decision = INDEX.decide([pid("20986393", "NTCH"), pid("555", "NTCH")], NOW)
    assert decision.verdict == "ambiguous" and decision.candidates == ("DDSC-001", "DDSC-002")


def test_withdrawal_stops_forwarding_from_that_moment() -> None:
    before = INDEX.decide([pid("777", "NTCH")], datetime(2024, 1, 31, tzinfo=UTC))
    after = INDEX.decide([pid("777", "NTCH")], datetime(2024, 2, 1, tzinfo=UTC))
    assert before.passes and after.verdict == "withdrawn"


def test_day0_is_the_first_infusion() -> None:
    assert subject("S", ("1", "A")).day0 == date(2024, 1, 15)


@pytest.mark.parametrize(
    ("effective", "dropped"),
    [
        ("2024-01-01T08:00:00+08:00", False),  # day -14: first day of the baseline window
        ("2023-12-31T23:59:00+08:00", True),  # day -15
        ("2023-12-31T16:30:00Z", False),  # 00:30 on day -14 in the hospital's time zone
        (None, False),
        ("2023-12", False),  # no day: cannot be placed, kept
    ],
)
def test_results_before_the_baseline_window_are_dropped(
    effective: str | None, dropped: bool
) -> None:
    assert before_baseline(effective, subject("S", ("1", "A")), load_study()) is dropped


def test_age_at_consent_from_a_birth_year_is_a_range() -> None:
    assert age_range_at(date(2024, 1, 2), 1961) == (62, 63)


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"])
def test_the_gate_reads_pid3_whatever_the_segment_separator(newline: str) -> None:
    raw = newline.join(
        [
            "MSH|^~\\&|LIS|NTCH|||20240101||ORU^R01|1|P|2.5.1",
            "PID|1||MRN001^^^NTCH&1.2&ISO^MR~X9^^^OTHER||Doe^Jane",
            "OBR|1",
        ]
    ).encode()
    assert patient_ids_in(raw) == (
        PatientIdentifier("MRN001", "NTCH", "MR"),
        PatientIdentifier("X9", "OTHER", ""),
    )


@pytest.mark.parametrize(
    "raw",
    [b"", b"PID|1||MRN001", b"MSH|^~\\&|LIS\rOBR|1", b"MSH|^~\\&|LIS\rZPID|1||MRN001"],
)
def test_no_pid_segment_means_no_identifier(raw: bytes) -> None:
    assert patient_ids_in(raw) == ()

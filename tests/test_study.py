"""The study definition, study days and visit windows, and the trial's FHIR resources."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.researchstudy import ResearchStudy
from fhir.resources.R4B.researchsubject import ResearchSubject

from adapter.errors import ConfigError
from adapter.trial.resources import (
    SubjectRecord,
    pseudonymous_patient,
    research_study,
    research_subject,
)
from adapter.trial.study import DEFAULT_STUDY, Study, load_study
from adapter.trial.visits import Candidate, choose, study_day, visit_of

DAY0 = date(2024, 1, 15)


@pytest.fixture(scope="module")
def study() -> Study:
    return load_study()


def test_the_shipped_study_loads_with_its_schedule(study: Study) -> None:
    assert study.identifier == "XHNKKY-DDSC" and study.target_enrolment == 22
    assert [a.code for a in study.arms] == ["low-dose", "medium-high-dose"]
    windows = {v.code: (v.first_day, v.target_day, v.last_day) for v in study.visits}
    assert windows == {
        "baseline": (-14, 0, 0),
        "week-1": (4, 7, 10),
        "week-4": (21, 28, 35),
        "week-8": (49, 56, 63),
        "week-12": (77, 84, 91),
        "week-24": (161, 168, 175),
        "week-48": (329, 336, 343),
    }


def write(tmp_path: Path, change: dict[str, object]) -> Path:
    doc = yaml.safe_load(DEFAULT_STUDY.read_text())
    doc.update(change)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"visit_value_rule": "median"}, "visit_value_rule: 'median' is not one of"),
        ({"status": "recruiting"}, "status: 'recruiting' is not one of"),
        ({"timezone": "CST"}, "timezone: 'CST' must look like"),
        ({"target_enrolment": 0}, "target_enrolment: must be a positive number"),
        ({"arms": [{"code": "a", "name": "A"}, {"code": "a", "name": "B"}]}, "two arms share"),
        (
            {
                "visits": [
                    {"code": "v1", "week": 1, "window": [-3, 3]},
                    {"code": "v2", "week": 1, "window": [0, 1]},
                ]
            },
            "visits[1].window: the windows of v1 (days 4 to 10) and v2 (days 7 to 8) overlap",
        ),
        ({"visits": [{"code": "v1", "week": 1, "window": [3, 3]}]}, "visits[0].window"),
        ({"title": None}, "title: is required"),
    ],
)
def test_a_wrong_study_file_is_refused_naming_the_key(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_study(write(tmp_path, change))
    assert message in str(refused.value) and "study.yaml" in str(refused.value)


@pytest.mark.parametrize(
    ("effective", "day"),
    [
        ("2024-01-15", 0),
        ("2024-01-15T00:20:00+08:00", 0),  # 16:20 the day before in UTC: still day 0 locally
        ("2024-01-14T16:20:00Z", 0),
        ("2024-01-14T15:59:00Z", -1),
        ("2024-01-22T09:00:00+08:00", 7),
    ],
)
def test_study_days_are_counted_in_the_hospitals_time_zone(
    effective: str, day: int, study: Study
) -> None:
    assert study_day(effective, DAY0, study.timezone) == day


@pytest.mark.parametrize(
    ("effective", "visit"),
    [
        ("2024-01-01", "baseline"),  # day -14
        ("2023-12-31", None),  # day -15: before the baseline window
        ("2024-01-19", "week-1"),  # day 4
        ("2024-01-26", None),  # day 11
        ("2024-02-05", "week-4"),  # day 21
        ("2024-12-23", "week-48"),  # day 343
    ],
)
def test_visit_windows_at_their_edges(effective: str, visit: str | None, study: Study) -> None:
    found = visit_of(effective, DAY0, study)
    assert (found.code if found else None) == visit


def candidates() -> list[Candidate[str]]:
    return [
        Candidate(23, "2024-02-07T08:00:00+08:00", Decimal("3.1"), "a"),
        Candidate(27, "2024-02-11T08:00:00+08:00", Decimal("2.0"), "b"),
        Candidate(29, "2024-02-13T08:00:00+08:00", Decimal("2.0"), "c"),
        Candidate(34, "2024-02-18T08:00:00+08:00", Decimal("4.5"), "d"),
        Candidate(40, "2024-02-24T08:00:00+08:00", Decimal("9.9"), "outside"),
    ]


@pytest.mark.parametrize(
    ("rule", "chosen"),
    [("nearest", "b"), ("first", "a"), ("last", "d"), ("min", "b"), ("max", "d")],
)
def test_the_visit_value_rule_picks_one(rule: str, chosen: str, study: Study) -> None:
    week4 = next(v for v in study.visits if v.code == "week-4")
    picked = choose(candidates(), week4, rule)
    assert picked is not None and picked.item == chosen


def test_no_value_in_a_window_is_none(study: Study) -> None:
    assert choose(candidates(), study.visits[0], "nearest") is None


SUBJECT = SubjectRecord("DDSC-001", "low-dose", "F", 1961, date(2024, 1, 2), "on-study")


def test_the_research_study_is_valid_r4_with_arms_and_enrolment(study: Study) -> None:
    resource = research_study(study)
    ResearchStudy.model_validate(resource)
    assert [a["name"] for a in resource["arm"]] == ["low-dose", "medium-high-dose"]
    assert resource["contained"][0]["quantity"] == 22
    assert resource["period"] == {"start": "2023-11-28", "end": "2024-12-01"}


def test_the_patient_is_pseudonymous(study: Study) -> None:
    patient = pseudonymous_patient(study, SUBJECT)
    Patient.model_validate(patient)
    assert patient == {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:trialbridge:study:XHNKKY-DDSC:subject", "value": "DDSC-001"}
        ],
        "gender": "female",
        "birthDate": "1961",
    }


def test_the_research_subject_links_patient_study_and_arm(study: Study) -> None:
    resource = research_subject(study, SUBJECT, "Patient/1", "ResearchStudy/9")
    ResearchSubject.model_validate(resource)
    assert resource["assignedArm"] == "low-dose" and resource["status"] == "on-study"
    assert resource["study"]["identifier"]["value"] == "XHNKKY-DDSC"
    assert resource["study"]["reference"] == "ResearchStudy/9"
    with pytest.raises(ConfigError, match="not one of this study's arms"):
        research_subject(
            study, SubjectRecord("X", "placebo", "M", 1970, DAY0, "on-study"), "P/1", "RS/1"
        )

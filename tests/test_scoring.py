"""The pure core of scoring: reading inputs, pairing, statuses, withdrawal, the age rule,
the score Observation's shape (valid R4), and the ``scoring:`` settings."""

from __future__ import annotations

from datetime import date, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from adapter.errors import ConfigError
from adapter.scoring.core import (
    COMPUTED,
    NOT_COMPUTABLE,
    WITHDRAWN,
    Outcome,
    SubjectFacts,
    occasions,
    score_occasion,
)
from adapter.scoring.inputs import Input, read_input
from adapter.scoring.resources import (
    ScoreContext,
    comparable,
    score_observation,
    score_transaction,
)
from adapter.scoring.settings import parse_scoring_settings
from adapter.trial.study import load_study

TZ = timezone(timedelta(hours=8))
LOINC = "http://loinc.org"
CODES = {"bilirubin": "1975-2", "inr": "6301-6", "creatinine": "2160-0", "sodium": "2951-2",
         "albumin": "1751-7"}  # fmt: skip
UNITS = {"bilirubin": "mg/dL", "inr": "{INR}", "creatinine": "mg/dL", "sodium": "mmol/L",
         "albumin": "g/dL"}  # fmt: skip
WOMAN = SubjectFacts("DDSC-001", "F", 1961, cholestatic=False)
WINDOW = timedelta(hours=48)


def lab(kind: str, value: str, when: str = "2024-01-22T08:30:00+08:00", **extra: Any) -> Input:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{kind}-{when}",
        "identifier": [{"system": "urn:trialbridge:lis-result", "value": f"O1/{kind}/{when}"}],
        "status": extra.pop("status", "final"),
        "code": {"coding": [{"system": LOINC, "code": CODES[kind]}]},
        "effectiveDateTime": when,
        "valueQuantity": {"value": Decimal(value), "code": UNITS[kind], **extra},
    }
    found = read_input(observation, TZ, preliminary=True)
    assert found is not None
    return found


def finding(
    code: str, answer: str | bool, when: str = "2024-01-22", status: str = "final"
) -> Input:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{code}-{when}",
        "status": status,
        "code": {"coding": [{"system": "urn:trialbridge:assessment", "code": code}]},
        "effectiveDateTime": when,
    }
    if isinstance(answer, bool):
        observation["valueBoolean"] = answer
    else:
        system = f"urn:trialbridge:assessment:{code}"
        observation["valueCodeableConcept"] = {"coding": [{"system": system, "code": answer}]}
    found = read_input(observation, TZ, preliminary=True)
    assert found is not None
    return found


def visit(**changes: Input) -> list[Input]:
    inputs = {
        "bilirubin": lab("bilirubin", "2.5"),
        "inr": lab("inr", "1.8"),
        "creatinine": lab("creatinine", "1.4"),
        "sodium": lab("sodium", "131"),
        "albumin": lab("albumin", "2.9"),
        "ascites": finding("ascites", "mild"),
        "encephalopathy": finding("hepatic-encephalopathy", "none"),
        "dialysis": finding("dialysis", False),
    }
    inputs.update(changes)
    return list(inputs.values())


def outcomes(inputs: list[Input], subject: SubjectFacts = WOMAN) -> dict[str, Outcome]:
    [occasion] = occasions(inputs, WINDOW)
    return {o.key: o for o in score_occasion(occasion, subject, TZ)}


def test_a_full_visit_gives_every_score() -> None:
    found = outcomes(visit())
    assert {k: o.value for k, o in found.items()} == {
        "meld": 20, "meld_na": 24, "meld_3": found["meld_3"].value, "child_pugh": 9,
        "albi": Decimal("-1.39"),
    }  # fmt: skip
    assert all(o.state == COMPUTED and o.status == "final" for o in found.values())
    assert found["child_pugh"].klass == "B" and found["albi"].grade == 3
    assert found["meld"].effective == "2024-01-22T08:30:00+08:00"  # not the date-only finding


def test_the_nearest_input_within_the_window_is_paired_and_further_ones_never() -> None:
    near = lab("inr", "1.2", "2024-01-23T08:30:00+08:00")  # 24 h
    far = lab("inr", "3.0", "2024-01-20T08:00:00+08:00")  # 48.5 h
    assert outcomes([*visit(inr=near), far])["meld"].inputs[1] == near
    missing = outcomes(visit(inr=far))["meld"]
    assert missing.state == NOT_COMPUTABLE and "INR missing" in (missing.reason or "")


def test_a_date_only_assessment_covers_its_whole_day() -> None:
    late = lab("bilirubin", "2.5", "2024-01-23T23:00:00+08:00")  # 47 h after 2024-01-22 ends
    assert outcomes(visit(bilirubin=late))["child_pugh"].state == COMPUTED


def test_a_preliminary_input_makes_the_score_preliminary_and_a_correction_corrected() -> None:
    prelim = outcomes(visit(inr=lab("inr", "1.8", status="preliminary")))
    assert prelim["meld"].status == "preliminary" and prelim["albi"].status == "final"
    corrected = outcomes(visit(bilirubin=lab("bilirubin", "6.0", status="corrected")))
    assert corrected["meld"].status == "corrected" and corrected["meld"].value == 23


def test_a_cancelled_input_withdraws_only_the_scores_that_need_it() -> None:
    cancelled = visit(sodium=lab("sodium", "131", status="cancelled"))
    found = outcomes(cancelled)
    assert found["meld_na"].state == WITHDRAWN and found["meld_na"].status == "entered-in-error"
    assert found["meld_3"].state == WITHDRAWN
    assert found["meld"].state == COMPUTED and found["albi"].state == COMPUTED


def test_a_cancelled_input_replaced_within_the_window_does_not_withdraw() -> None:
    redo = lab("sodium", "133", "2024-01-22T10:00:00+08:00")
    found = outcomes([*visit(sodium=lab("sodium", "131", status="cancelled")), redo])
    assert found["meld_na"].state == COMPUTED


def test_a_censored_value_is_not_guessed() -> None:
    found = outcomes(visit(creatinine=lab("creatinine", "0.5", comparator="<")))
    assert found["meld"].state == NOT_COMPUTABLE
    assert "creatinine is <0.5, a censored value" in (found["meld"].reason or "")


@pytest.mark.parametrize(
    ("sex", "birth_year", "computable"),
    [
        ("M", 2006, False),  # 17 or 18 in 2024: the 12-17 term applies only at 17
        ("F", 2006, True),  # a female gets the term at 17 and at 18 alike
        ("M", 2005, True),  # 18 or 19
        ("F", 2012, False),  # 11 or 12: MELD 3.0 is not defined under 12
        ("U", 1961, False),  # sex unknown: never guessed
    ],
)
def test_age_from_birth_year_is_plus_or_minus_one_and_never_guessed(
    sex: str, birth_year: int, computable: bool
) -> None:
    found = outcomes(visit(), SubjectFacts("S", sex, birth_year, False))["meld_3"]
    assert (found.state == COMPUTED) == computable, found.reason


def test_cholestatic_subjects_use_the_cholestatic_bands() -> None:
    pbc = SubjectFacts("S", "F", 1961, cholestatic=True)
    assert outcomes(visit(), pbc)["child_pugh"].value == 8  # bilirubin 2.5 < 4: 1 point


def context() -> ScoreContext:
    study = load_study()
    return ScoreContext(
        study=study,
        study_ref="ResearchStudy/s1",
        patient_ref="Patient/p1",
        subject_id="DDSC-001",
        day0=date(2024, 1, 15),
        identifier_system="urn:trialbridge:score-result",
        window=WINDOW,
    )


def test_score_observations_are_valid_r4_in_every_state() -> None:
    states = [
        *outcomes(visit()).values(),
        *outcomes(visit(sodium=lab("sodium", "1", status="cancelled"))).values(),
        *outcomes(visit(inr=lab("inr", "1", "2024-02-22T08:30:00+08:00"))).values(),
    ]
    resources = [score_observation(o, context()) for o in states]
    for resource in resources:
        Observation.model_validate(resource)
    Bundle.model_validate(score_transaction(resources, ["Observation/x"], "2024-01-22T09:00:00Z"))


def test_the_same_outcome_gives_the_same_resource() -> None:
    first = score_observation(outcomes(visit())["meld"], context())
    again = score_observation(outcomes(visit())["meld"], context())
    stored = {**again, "id": "abc", "meta": {**again["meta"], "versionId": "3"}}
    assert comparable(first) == comparable(stored)
    assert first["identifier"][0]["value"] == "DDSC-001/meld/O1/bilirubin/2024-01-22T08:30:00+08:00"
    assert first["meta"]["tag"][0]["code"] == "week-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pairing_window_hours": 0}, "above 0"),
        ({"pairing_window_hours": "two days"}, "must be a number"),
        ({"identifier": ""}, "non-empty"),
        ({"count_preliminary": "maybe"}, "true or false"),
        ({"cholestatic_subjects": "DDSC-001"}, "list of subject ids"),
    ],
)
def test_scoring_settings_are_validated(change: dict[str, Any], message: str) -> None:
    raw = {
        "pairing_window_hours": 48,
        "identifier": "urn:x",
        "count_preliminary": True,
        "cholestatic_subjects": [],
        **change,
    }
    with pytest.raises(ConfigError, match=message):
        parse_scoring_settings(raw, "config/trialbridge.yaml")


def test_a_missing_setting_is_an_error_not_a_default() -> None:
    with pytest.raises(ConfigError, match="pairing_window_hours is missing"):
        parse_scoring_settings({}, "config/trialbridge.yaml")

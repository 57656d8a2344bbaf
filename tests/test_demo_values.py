"""The demo's subject table shows every value: assessments are coded or yes/no, not
quantities, and used to print ``-`` (issue 17)."""

from __future__ import annotations

from adapter.demo import value_text
from adapter.scoring.assessments import Assessment, assessment_observations
from adapter.trial.study import load_study


def test_assessment_values_print_their_answer() -> None:
    assessment = Assessment("DDSC-T01", "2024-01-15", "mild", "grade-1-2", True)
    observations = assessment_observations(
        assessment, study=load_study(), study_ref="ResearchStudy/1", patient_ref="Patient/1",
        visit=None,
    )  # fmt: skip
    assert [value_text(o) for o in observations] == ["mild", "grade-1-2", "yes"]
    no_dialysis = Assessment("DDSC-T01", "2024-01-15", None, None, False)
    [dialysis] = assessment_observations(
        no_dialysis, study=load_study(), study_ref="ResearchStudy/1", patient_ref="Patient/1",
        visit=None,
    )  # fmt: skip
    assert value_text(dialysis) == "no"


def test_quantities_codes_and_absent_values_read_as_a_person_would() -> None:
    quantity = {"valueQuantity": {"value": 42, "code": "U/L", "comparator": "<"}}
    assert value_text(quantity) == "<42 U/L"
    coded = {"valueCodeableConcept": {"coding": [{"code": "POS", "display": "Positive"}]}}
    assert value_text(coded) == "Positive"
    assert value_text({"valueCodeableConcept": {"coding": [{"code": "POS"}]}}) == "POS"
    two = {"component": [coded, {"valueCodeableConcept": {"text": "trace"}}]}
    assert value_text(two) == "Positive; trace"
    absent = {"dataAbsentReason": {"coding": [{"code": "not-performed"}]}}
    assert value_text(absent) == "(not-performed)"
    assert value_text({}) == "-"

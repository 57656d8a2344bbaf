"""CTCAE v5.0 grading (adapter.toxicity): every listed term at each boundary, both baseline
rules, and the results that get no grade. Expected grades are worked out by hand from the
CTCAE v5.0 text quoted in adapter/toxicity/ctcae.py."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapter.toxicity import (
    TERM_BY_LOINC,
    Context,
    Point,
    Value,
    baseline_index,
    grade,
    grade_series,
    is_post_baseline,
)
from adapter.toxicity.ctcae import ALB, ALP, ALT, AST, BILI, CREAT, INR, SODIUM


def v(
    value: str | None,
    low: str | None = None,
    high: str | None = None,
    cmp: str = "",
    unit: str = "",
) -> Value:
    return Value(
        Decimal(value) if value is not None else None,
        cmp,
        Decimal(low) if low is not None else None,
        Decimal(high) if high is not None else None,
        unit,
    )


NORMAL_BASE = Context(baseline=v("30", high="40"))  # ALT/AST baseline at 0.75 x ULN
HIGH_BASE = Context(baseline=v("100", high="40"))  # 2.5 x ULN: abnormal


@pytest.mark.parametrize("term", [ALT, AST])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("40", 0),  # = ULN: not above it
        ("40.01", 1),  # just above ULN
        ("120", 1),  # exactly 3.0 x ULN: ">ULN - 3.0 x ULN" includes 3.0
        ("120.01", 2),
        ("200", 2),  # exactly 5.0 x ULN
        ("200.1", 3),
        ("800", 3),  # exactly 20.0 x ULN
        ("800.1", 4),
    ],
)
def test_transaminases_with_a_normal_baseline_use_uln(term: str, value: str, expected: int) -> None:
    assert grade(term, v(value, high="40"), NORMAL_BASE).grade == expected


@pytest.mark.parametrize("term", [ALT, AST])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("149.9", 0),  # above ULN, but under 1.5 x baseline (100)
        ("150", 1),  # exactly 1.5 x baseline: "1.5 - 3.0 x baseline" includes 1.5
        ("300", 1),  # exactly 3.0 x baseline
        ("300.1", 2),
        ("500", 2),  # exactly 5.0 x baseline
        ("500.1", 3),
        ("2000", 3),  # exactly 20.0 x baseline
        ("2000.1", 4),
        ("30", 0),  # back under ULN
    ],
)
def test_transaminases_with_an_abnormal_baseline_use_baseline_multiples(
    term: str, value: str, expected: int
) -> None:
    result = grade(term, v(value, high="40"), HIGH_BASE)
    assert result.grade == expected
    if expected:
        assert "x baseline" in result.basis


@pytest.mark.parametrize(
    ("value", "context", "expected"),
    [
        ("100", Context(baseline=v("80", high="100")), 0),  # = ULN
        ("250", Context(baseline=v("80", high="100")), 1),  # exactly 2.5 x ULN
        ("250.1", Context(baseline=v("80", high="100")), 2),
        ("500", Context(baseline=v("80", high="100")), 2),  # exactly 5.0 x ULN
        ("2000.1", Context(baseline=v("80", high="100")), 4),
        ("399", Context(baseline=v("200", high="100")), 0),  # 1.995 x abnormal baseline
        ("400", Context(baseline=v("200", high="100")), 1),  # exactly 2.0 x baseline
        ("500", Context(baseline=v("200", high="100")), 1),  # exactly 2.5 x baseline
        ("500.2", Context(baseline=v("200", high="100")), 2),
        ("1000", Context(baseline=v("200", high="100")), 2),  # exactly 5.0 x baseline
        ("4000", Context(baseline=v("200", high="100")), 3),  # exactly 20.0 x baseline
        ("4000.2", Context(baseline=v("200", high="100")), 4),
    ],
)
def test_alkaline_phosphatase(value: str, context: Context, expected: int) -> None:
    assert grade(ALP, v(value, high="100"), context).grade == expected


@pytest.mark.parametrize(
    ("value", "context", "expected"),
    [
        ("1.2", Context(baseline=v("0.8", high="1.2")), 0),  # = ULN
        ("1.8", Context(baseline=v("0.8", high="1.2")), 1),  # exactly 1.5 x ULN
        ("1.81", Context(baseline=v("0.8", high="1.2")), 2),
        ("3.6", Context(baseline=v("0.8", high="1.2")), 2),  # exactly 3.0 x ULN
        ("12", Context(baseline=v("0.8", high="1.2")), 3),  # exactly 10.0 x ULN
        ("12.01", Context(baseline=v("0.8", high="1.2")), 4),
        ("3", Context(baseline=v("3", high="1.2")), 0),  # exactly 1.0 x abnormal baseline
        ("3.01", Context(baseline=v("3", high="1.2")), 1),  # "> 1.0 - 1.5 x baseline"
        ("4.5", Context(baseline=v("3", high="1.2")), 1),  # exactly 1.5 x baseline
        ("9", Context(baseline=v("3", high="1.2")), 2),  # exactly 3.0 x baseline
        ("30", Context(baseline=v("3", high="1.2")), 3),  # exactly 10.0 x baseline
        ("30.1", Context(baseline=v("3", high="1.2")), 4),
    ],
)
def test_blood_bilirubin(value: str, context: Context, expected: int) -> None:
    assert grade(BILI, v(value, high="1.2"), context).grade == expected


@pytest.mark.parametrize(
    ("value", "low", "expected"),
    [
        ("3.5", "3.5", 0),  # = LLN
        ("3.49", "3.5", 1),
        ("3", "3.5", 1),  # exactly 3 g/dL: grade 1 is "<LLN - 3"
        ("2.99", "3.5", 2),
        ("2", "3.5", 2),  # exactly 2: grade 2 is "<3 - 2"
        ("1.99", "3.5", 3),
        ("1.5", None, 3),  # below 2 needs no LLN
        ("2.5", None, 2),
    ],
)
def test_hypoalbuminemia(value: str, low: str | None, expected: int) -> None:
    assert grade(ALB, v(value, low=low, unit="g/dL")).grade == expected


def test_hypoalbuminemia_in_g_per_litre_and_in_no_known_unit() -> None:
    assert grade(ALB, v("29.9", low="35", unit="g/L")).grade == 2  # 2.99 g/dL
    assert grade(ALB, v("34", low="35", unit="g/L")).grade == 1
    result = grade(ALB, v("2.5", low="3.5"))
    assert result.grade is None and "thresholds are in g/dL" in result.basis


def test_hypoalbuminemia_needs_lln_only_for_grades_0_and_1() -> None:
    result = grade(ALB, v("3.2", unit="g/dL"))
    assert result.grade is None and "LLN" in result.basis


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("135", 0),  # = LLN
        ("134.9", 1),
        ("130", 1),  # exactly 130: grade 1 is "<LLN - 130"
        ("124.9", 3),  # 120-124 regardless of symptoms
        ("120", 3),
        ("119.9", 4),
    ],
)
def test_hyponatremia(value: str, expected: int) -> None:
    assert grade(SODIUM, v(value, low="135", unit="mmol/L")).grade == expected


@pytest.mark.parametrize("value", ["129.9", "129", "125"])
def test_hyponatremia_125_to_129_depends_on_symptoms_and_is_not_graded(value: str) -> None:
    result = grade(SODIUM, v(value, low="135", unit="mmol/L"))
    assert result.grade is None and "symptom" in result.basis


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.2", 0), ("1.21", 1), ("1.5", 1), ("1.51", 2), ("2.5", 2), ("2.51", 3)],
)
def test_inr_without_anticoagulation_grades_the_value(value: str, expected: int) -> None:
    assert grade(INR, v(value), Context(anticoagulated=False)).grade == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 0), ("2.01", 1), ("3", 1), ("3.01", 2), ("5", 2), ("5.01", 3)],
)
def test_inr_on_anticoagulation_grades_multiples_of_baseline(value: str, expected: int) -> None:
    context = Context(baseline=v("2"), anticoagulated=True)
    assert grade(INR, v(value), context).grade == expected


def test_inr_without_recorded_anticoagulation_is_not_graded() -> None:
    result = grade(INR, v("3.0"))
    assert result.grade is None and "anticoagulation" in result.basis


@pytest.mark.parametrize(
    ("value", "baseline", "expected"),
    [
        ("1.0", "0.9", 0),  # = ULN, 1.1 x baseline
        ("1.5", "1.4", 1),  # exactly 1.5 x ULN; 1.07 x baseline
        ("1.5", "0.9", 2),  # 1.67 x baseline: "1.5 - 3.0 x baseline" gives grade 2
        ("1.35", "0.9", 1),  # exactly 1.5 x baseline is not above it; 1.35 x ULN
        ("3.0", "2.0", 2),  # exactly 3.0 x ULN; 1.5 x baseline (not above)
        ("3.01", "2.0", 3),  # above 3.0 x ULN
        ("2.8", "0.9", 3),  # 3.11 x baseline: grade 3 though only 2.8 x ULN
        ("6.0", "5.0", 3),  # exactly 6.0 x ULN
        ("6.01", "5.0", 4),
    ],
)
def test_creatinine_takes_the_higher_of_uln_and_baseline_grades(
    value: str, baseline: str, expected: int
) -> None:
    context = Context(baseline=v(baseline, high="1.0"))
    assert grade(CREAT, v(value, high="1.0"), context).grade == expected


def test_creatinine_without_a_baseline() -> None:
    assert grade(CREAT, v("1.2", high="1.0")).grade is None  # a baseline could make it 2 or 3
    assert grade(CREAT, v("3.5", high="1.0")).grade == 3  # no baseline multiple exceeds 3
    assert grade(CREAT, v("7", high="1.0")).grade == 4


@pytest.mark.parametrize(
    ("result", "context", "reason"),
    [
        (v("50"), NORMAL_BASE, "no upper reference limit"),
        (v("50", high="40"), Context(), "no baseline result"),
        (v("50", high="40"), Context(baseline=v("30")), "baseline has no upper reference"),
        (v("50", high="40"), Context(baseline=v("100", high="40", cmp=">")), "censored"),
        (v("1000", high="40", cmp=">"), NORMAL_BASE, "censored value (>1000)"),
        (v(None, high="40"), NORMAL_BASE, "no numeric value"),
    ],
)
def test_ungradeable_results_say_why(result: Value, context: Context, reason: str) -> None:
    graded = grade(ALT, result, context)
    assert graded.grade is None and not graded.graded
    assert reason in graded.basis


def test_a_value_at_or_below_uln_needs_no_baseline() -> None:
    assert grade(ALT, v("35", high="40")).grade == 0


def test_the_baseline_itself_is_graded_against_uln() -> None:
    assert grade(ALT, v("130", high="40"), Context(is_baseline=True)).grade == 2


def test_series_picks_the_last_result_on_or_before_day_0_as_baseline() -> None:
    points = [
        Point(v("300", high="40"), -10),  # screening, 7.5 x ULN
        Point(v("100", high="40"), 0),  # baseline: 2.5 x ULN (grade 1), abnormal
        Point(v("160", high="40"), 7),  # 1.6 x baseline -> 1 (4 x ULN would be 2)
        Point(v("510", high="40"), 28),  # 5.1 x baseline -> 3
        Point(v("20", high="40"), None),  # no study day: after the baseline in time
    ]
    assert baseline_index(points) == 1
    assert [g.grade for g in grade_series(ALT, points)] == [3, 1, 1, 3, 0]
    assert [is_post_baseline(i, points) for i in range(5)] == [False, False, True, True, True]


def test_series_without_a_baseline_grades_what_needs_none() -> None:
    points = [Point(v("30", high="40"), 5), Point(v("90", high="40"), 9)]
    assert baseline_index(points) is None
    grades = grade_series(ALT, points)
    assert grades[0].grade == 0
    assert grades[1].grade is None and "no baseline" in grades[1].basis


def test_every_listed_term_has_a_loinc() -> None:
    assert set(TERM_BY_LOINC.values()) == {ALT, AST, ALP, BILI, ALB, INR, CREAT, SODIUM}

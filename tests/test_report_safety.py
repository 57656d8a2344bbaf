"""The report's safety section (CTCAE v5.0 worst grade per subject and test, shift table) and
excluded.csv's reasons for score Observations, on hand-made data with hand-computed grades.

Study: config/study.yaml (time zone +08:00). ALT's reference range is 7-40 U/L throughout.

low-dose
  A1  day 0 2024-01-10. ALT day -3 100 (the baseline: 2.5 x ULN, grade 1, abnormal), day 7
      160 (1.6 x baseline: grade 1), day 30 520 (5.2 x baseline: grade 3), day 60 "<20"
      (censored: not graded). INR day 7 2.0 (anticoagulation not recorded: not graded).
  A2  day 0 2024-01-12. ALT day -1 30 (baseline, grade 0, normal), day 7 130 (3.25 x ULN:
      grade 2).
medium-high-dose
  B1  day 0 2024-01-15. ALT day 5 90: above ULN with no baseline, so not graded.
"""

from __future__ import annotations

import csv
import zipfile
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from adapter.mappings import load_mappings
from adapter.report import Report, build_report, write_report
from adapter.report.extract import catalogue, measurement_of
from adapter.report.model import Measurement, Skipped, SubjectData, TrialData
from adapter.trial.study import Study, load_study

TZ = timezone(timedelta(hours=8))
DAY0 = {"A1": date(2024, 1, 10), "A2": date(2024, 1, 12), "B1": date(2024, 1, 15)}
ARM = {"A1": "low-dose", "A2": "low-dose", "B1": "medium-high-dose"}


def _subject(sid: str) -> SubjectData:
    return SubjectData(
        subject=sid,
        arm=ARM[sid],
        status="on-study",
        consent=DAY0[sid] - timedelta(days=20),
        period_end=None,
        day0=DAY0[sid],
        last_known_alive=None,
        death=None,
        patient_ref=f"Patient/{sid}",
    )


def _m(
    sid: str, measure: str, day: int, value: str, cmp: str = "", high: str = "40"
) -> Measurement:
    when = datetime.combine(DAY0[sid] + timedelta(days=day), datetime.min.time(), TZ)
    return Measurement(
        subject=sid,
        measure=measure,
        value=Decimal(value),
        comparator=cmp,
        effective=when.replace(hour=9).isoformat(),
        status="final",
        observation_id=f"{sid}-{measure}-{day}",
        tag="",
        low=Decimal(7) if measure == "alt" else None,
        high=Decimal(high) if measure == "alt" else None,
    )


DATA = TrialData(
    "study-1",
    tuple(_subject(s) for s in ("A1", "A2", "B1")),
    (
        _m("A1", "alt", -3, "100"),
        _m("A1", "alt", 7, "160"),
        _m("A1", "alt", 30, "520"),
        _m("A1", "alt", 60, "20", "<"),
        _m("A1", "inr", 7, "2.0"),
        _m("A2", "alt", -1, "30"),
        _m("A2", "alt", 7, "130"),
        _m("B1", "alt", 5, "90"),
    ),
    (),
)


@pytest.fixture(scope="module")
def study() -> Study:
    return load_study()


@pytest.fixture(scope="module")
def report(study: Study) -> Report:
    measures = catalogue(study, load_mappings()).measures
    return build_report(DATA, study, measures, as_of=date(2024, 6, 25))


def row(report: Report, subject: str, measure: str) -> dict[str, object]:
    table = report.safety.subjects
    [found] = table[(table["subject"] == subject) & (table["measure"] == measure)].to_dict(
        "records"
    )
    return dict(found)


def test_worst_post_baseline_grade_uses_the_abnormal_baseline(report: Report) -> None:
    a1 = row(report, "A1", "alt")
    assert {
        k: a1[k]
        for k in (
            "term",
            "baseline_value",
            "baseline_grade",
            "worst_grade",
            "worst_value",
            "worst_study_day",
            "post_baseline_results",
            "graded",
            "not_graded",
            "not_graded_reasons",
        )
    } == {
        "term": "Alanine aminotransferase increased",
        "baseline_value": "100",
        "baseline_grade": "1",
        "worst_grade": "3",
        "worst_value": "520",
        "worst_study_day": 30,
        "post_baseline_results": 3,
        "graded": 2,
        "not_graded": 1,
        "not_graded_reasons": "censored value (<20)",
    }


def test_a_normal_baseline_grades_against_uln(report: Report) -> None:
    a2 = row(report, "A2", "alt")
    assert (a2["baseline_grade"], a2["worst_grade"], a2["worst_value"]) == ("0", "2", "130")


def test_no_baseline_and_no_recorded_anticoagulation_give_no_grade(report: Report) -> None:
    b1 = row(report, "B1", "alt")
    assert (b1["baseline_grade"], b1["worst_grade"], b1["not_graded"]) == ("none", "none", 1)
    assert "no baseline result" in str(b1["not_graded_reasons"])
    inr = row(report, "A1", "inr")
    assert (inr["worst_grade"], inr["not_graded"]) == ("none", 1)
    assert "anticoagulation is not recorded" in str(inr["not_graded_reasons"])
    bilirubin = row(report, "A1", "bilirubin_total")  # no results at all
    assert (bilirubin["post_baseline_results"], bilirubin["worst_grade"]) == (0, "none")


def test_every_subject_has_a_row_per_graded_test(report: Report) -> None:
    graded = {"alt", "ast", "alp", "bilirubin_total", "albumin", "inr", "creatinine", "sodium"}
    assert set(report.safety.subjects["measure"]) == graded  # not PT seconds, not scores
    assert len(report.safety.subjects) == 3 * len(graded)


def test_shift_table_counts_subjects_by_baseline_and_worst_grade(report: Report) -> None:
    shift = report.safety.shift
    alt = shift[(shift["measure"] == "alt") & (shift["subjects"] > 0)]
    cells = {
        (r["arm"], r["baseline_grade"]): {g: r[f"worst_{g}"] for g in "01234" if r[f"worst_{g}"]}
        | ({"none": r["worst_none"]} if r["worst_none"] else {})
        for r in alt.to_dict("records")
    }
    assert cells == {
        ("low-dose", "1"): {"3": 1},  # A1
        ("low-dose", "0"): {"2": 1},  # A2
        ("medium-high-dose", "none"): {"none": 1},  # B1
    }


def test_safety_is_written_as_csv_html_and_workbook_sheets(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path, xlsx=True)
    with (tmp_path / "safety.csv").open(encoding="utf-8", newline="") as handle:
        written = list(csv.DictReader(handle))
    a1 = next(r for r in written if r["subject"] == "A1" and r["measure"] == "alt")
    assert (a1["baseline_grade"], a1["worst_grade"]) == ("1", "3")
    assert (tmp_path / "safety_shift.csv").exists()
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Safety: CTCAE v5.0 grades" in html and 'id="safety-shift"' in html
    with zipfile.ZipFile(tmp_path / "report.xlsx") as book:
        assert "xl/worksheets/sheet8.xml" in book.namelist()  # subjects ... safety_shift


def test_the_workbook_is_byte_identical_and_dated_by_as_of(report: Report, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write_report(report, one, xlsx=True)
    write_report(report, two, xlsx=True)
    assert (one / "report.xlsx").read_bytes() == (two / "report.xlsx").read_bytes()
    with zipfile.ZipFile(one / "report.xlsx") as book:
        core = book.read("docProps/core.xml").decode()
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in book.infolist())
    assert "2024-06-25T00:00:00Z</dcterms:created>" in core
    assert "2024-06-25T00:00:00Z</dcterms:modified>" in core


# excluded.csv: a score's own reason ----------------------------------------------------------


def test_a_not_computable_score_is_excluded_with_its_own_reason(study: Study) -> None:
    cat = catalogue(study, load_mappings())
    observation = {
        "resourceType": "Observation",
        "id": "m1",
        "status": "final",
        "code": {"coding": [{"system": "urn:trialbridge:score", "code": "meld"}]},
        "effectiveDateTime": "2024-01-10T09:00:00+08:00",
        "dataAbsentReason": {"coding": [{"code": "unknown"}]},
        "note": [
            {
                "text": "Not computable: dialysis status unknown (inputs are paired within "
                "48 h of the bilirubin result)."
            }
        ],
    }
    result = measurement_of(observation, "S1", cat, "ResearchStudy/x", study)
    assert result == Skipped("S1", "m1", "meld: not computable: dialysis status unknown")
    bare = {k: v for k, v in observation.items() if k != "note"}
    skipped = measurement_of(bare, "S1", cat, "ResearchStudy/x", study)
    assert isinstance(skipped, Skipped) and skipped.reason == "meld: no value (unknown)"


def test_a_lab_results_note_never_becomes_a_reason(study: Study) -> None:
    cat = catalogue(study, load_mappings())
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
        "effectiveDateTime": "2024-01-10T09:00:00+08:00",
        "valueString": "see comment",
        "note": [{"text": "free text from the laboratory"}],
    }
    result = measurement_of(observation, "S1", cat, "ResearchStudy/x", study)
    assert isinstance(result, Skipped) and result.reason == "alt: no numeric value"

"""``trialbridge report`` against the local FHIR server, on a small trial with known values.

The trial (config/study.yaml: XHNKKY-DDSC, windows baseline [-14, 0], week-1 [4, 10],
week-4 [21, 35], week-8 [49, 63], week-12 [77, 91], week-24 [161, 175], week-48 [329, 343];
time zone +08:00) is written with the trial builders of :mod:`adapter.trial.resources`:

low-dose
  S01  day 0 2024-01-10, alive, known alive 2025-01-20 (376 days, censored). ALT: day -10
       40, day -2 50, 2024-01-10T16:30Z 99 (tagged baseline, but 00:30 on day 1 in +08:00:
       outside every window), day 5 60, day 8 70, day 10 65, day 40 55 (out of window, nearest
       week-4), day 56 entered-in-error, day 5 in ukat/L (no conversion: excluded).
       Bilirubin: day -2 34.2 umol/L (= 2 mg/dL), day 56 1.5 mg/dL. MELD: day -2 18, day 8 16.
  S02  day 0 2024-01-15, died 2024-06-01 (day 138). ALT: day -1 80, day 7 60.
  S03  day 0 2024-01-20, died 2024-09-06 (day 230). ALT: day 0 30, day 6 45.
  S04  day 0 2024-02-01, withdrawn 2024-05-01 (day 90, censored). ALT: day -3 100.
  S05  day 0 2024-02-10, alive, known alive 2025-03-01 (385 days, censored). No results.
medium-high-dose
  S11  day 0 2024-01-12, alive, known alive 2024-10-01 (263 days). ALT day 0 200;
       Child-Pugh day 0 9.
  S12  day 0 2024-01-25, died 2024-03-05 (day 40).

Reports are written as of 2024-06-25 and read with a page size of 5, so every search
(ResearchSubject with _include, each subject's Observations) spans several pages.
"""

from __future__ import annotations

import csv
import json
import math
import socket
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from openpyxl import load_workbook
from pytest import MonkeyPatch

from adapter.build.observation import LOINC, UCUM
from adapter.cli import main
from adapter.dev_fhir import DevFhirServer
from adapter.fhir_client import FhirClient
from adapter.mappings import load_mappings
from adapter.report.extract import catalogue
from adapter.report.model import TrialData
from adapter.report.reader import read_trial
from adapter.report.tables import compute_tables
from adapter.scores.codes import SCORE_CODES, SCORE_UNIT
from adapter.trial.resources import (
    SubjectRecord,
    link_observation,
    pseudonymous_patient,
    research_study,
    research_subject,
)
from adapter.trial.study import Study, load_study
from adapter.trial.visits import visit_of

AS_OF = "2024-06-25"
TZ = timezone(timedelta(hours=8))
ALT, TBIL = "1742-6", "1975-2"


def _subject(
    sid: str,
    arm: str,
    day0: str,
    *,
    died: str | None = None,
    alive: str | None = None,
    withdrawn: str | None = None,
) -> SubjectRecord:
    start = date.fromisoformat(day0)
    return SubjectRecord(
        subject_id=sid,
        arm=arm,
        sex="F",
        birth_year=1960,
        consent_date=start - timedelta(days=20),
        status="withdrawn" if withdrawn else "on-study",
        withdrawn_on=date.fromisoformat(withdrawn) if withdrawn else None,
        died_on=date.fromisoformat(died) if died else None,
        day0=start,
        last_known_alive=date.fromisoformat(alive or withdrawn) if alive or withdrawn else None,
    )


SUBJECTS = [
    _subject("S01", "low-dose", "2024-01-10", alive="2025-01-20"),
    _subject("S02", "low-dose", "2024-01-15", died="2024-06-01"),
    _subject("S03", "low-dose", "2024-01-20", died="2024-09-06"),
    _subject("S04", "low-dose", "2024-02-01", withdrawn="2024-05-01"),
    _subject("S05", "low-dose", "2024-02-10", alive="2025-03-01"),
    _subject("S11", "medium-high-dose", "2024-01-12", alive="2024-10-01"),
    _subject("S12", "medium-high-dose", "2024-01-25", died="2024-03-05"),
]


def _at(sid: str, day: int, hour: int = 9) -> str:
    """The local (+08:00) time ``hour``:00 on a subject's study day ``day``."""
    day0 = next(s.day0 for s in SUBJECTS if s.subject_id == sid)
    assert day0 is not None
    moment = datetime.combine(day0 + timedelta(days=day), datetime.min.time(), TZ)
    return moment.replace(hour=hour).isoformat()


def _quantity(value: str, unit: str) -> dict[str, Any]:
    return {"valueQuantity": {"value": Decimal(value), "unit": unit, "system": UCUM, "code": unit}}


# (subject, system, code, effective, value element, status)
RESULTS: list[tuple[str, str, str, str, dict[str, Any], str]] = [
    ("S01", LOINC, ALT, _at("S01", -10), _quantity("40", "U/L"), "final"),
    ("S01", LOINC, ALT, _at("S01", -2), _quantity("50", "U/L"), "final"),
    ("S01", LOINC, ALT, "2024-01-10T16:30:00Z", _quantity("99", "U/L"), "final"),
    ("S01", LOINC, ALT, _at("S01", 5), _quantity("60", "U/L"), "final"),
    ("S01", LOINC, ALT, _at("S01", 8), _quantity("70", "U/L"), "corrected"),
    ("S01", LOINC, ALT, _at("S01", 10), _quantity("65", "U/L"), "preliminary"),
    ("S01", LOINC, ALT, _at("S01", 40), _quantity("55", "U/L"), "final"),
    ("S01", LOINC, ALT, _at("S01", 56), _quantity("999", "U/L"), "entered-in-error"),
    ("S01", LOINC, ALT, _at("S01", 5, 10), _quantity("1.0", "ukat/L"), "final"),
    ("S01", LOINC, TBIL, _at("S01", -2), _quantity("34.2", "umol/L"), "final"),
    ("S01", LOINC, TBIL, _at("S01", 56), _quantity("1.5", "mg/dL"), "final"),
    ("S01", "urn:trialbridge:score", "meld", _at("S01", -2), _quantity("18", SCORE_UNIT), "final"),
    ("S01", "urn:trialbridge:score", "meld", _at("S01", 8), {"valueInteger": 16}, "final"),
    ("S02", LOINC, ALT, _at("S02", -1, 8), _quantity("80", "U/L"), "final"),
    ("S02", LOINC, ALT, _at("S02", 7), _quantity("60", "U/L"), "final"),
    ("S03", LOINC, ALT, _at("S03", 0, 7), _quantity("30", "U/L"), "final"),
    ("S03", LOINC, ALT, _at("S03", 6), _quantity("45", "U/L"), "amended"),
    ("S04", LOINC, ALT, _at("S04", -3), _quantity("100", "U/L"), "final"),
    ("S11", LOINC, ALT, _at("S11", 0, 10), _quantity("200", "U/L"), "final"),
    ("S11", "urn:trialbridge:score", "child-pugh", _at("S11", 0, 10), {"valueInteger": 9}, "final"),
]


def trial_bundle(study: Study) -> dict[str, Any]:
    """One transaction: the ResearchStudy, each Patient and ResearchSubject, the results."""
    study_ref = "urn:uuid:00000000-0000-4000-8000-000000000000"
    entries: list[dict[str, Any]] = [_post(study_ref, research_study(study))]
    patients = {}
    for i, subject in enumerate(SUBJECTS, start=1):
        patients[subject.subject_id] = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        entries.append(_post(patients[subject.subject_id], pseudonymous_patient(study, subject)))
        entries.append(
            _post(None, research_subject(study, subject, patients[subject.subject_id], study_ref))
        )
    for sid, system, code, effective, value, status in RESULTS:
        observation = {
            "resourceType": "Observation",
            "status": status,
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": patients[sid]},
            "effectiveDateTime": effective,
            **value,
        }
        day0 = next(s.day0 for s in SUBJECTS if s.subject_id == sid)
        assert day0 is not None
        # The tag as a careless writer would set it: from the UTC date.
        utc_date = datetime.fromisoformat(effective.replace("Z", "+00:00")).astimezone(UTC)
        visit = visit_of(utc_date.date().isoformat(), day0, study)
        entries.append(_post(None, link_observation(observation, study, study_ref, visit)))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _post(full_url: str | None, resource: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


@pytest.fixture(scope="module")
def study() -> Study:
    return load_study()


@pytest.fixture
def trial(fhir_url: str, study: Study) -> str:
    """The small trial above on an empty local FHIR server; its base URL."""
    with FhirClient(fhir_url, timeout=10, retries=0) as client:
        client.transaction(trial_bundle(study))
    return fhir_url


def run_report(fhir_url: str, out: Path, *extra: str) -> Result:
    args = ["report", "--fhir-url", fhir_url, "--study", "XHNKKY-DDSC", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--as-of", AS_OF, "--page-size", "5", *extra])
    return result


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def pick(table: list[dict[str, str]], **where: str) -> dict[str, str]:
    [row] = [r for r in table if all(r[k] == v for k, v in where.items())]
    return row


@pytest.fixture(scope="module")
def written(
    dev_fhir_server: DevFhirServer, study: Study, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, TrialData]:
    """The report of the small trial (with xlsx) and the data read for it: written once."""
    dev_fhir_server.reset()
    url = dev_fhir_server.base_url
    with FhirClient(url, timeout=10, retries=0) as client:
        client.transaction(trial_bundle(study))
        data = read_trial(client, study, catalogue(study, load_mappings()), page_size=5)
    out = tmp_path_factory.mktemp("report")
    result = run_report(url, out, "--format", "xlsx")
    assert result.exit_code == 0, result.output
    return out, data


@pytest.fixture
def report_dir(written: tuple[Path, TrialData]) -> Path:
    return written[0]


# visits.csv --------------------------------------------------------------------------------


def test_the_nearest_value_in_each_window_counts_by_recomputed_study_day(report_dir: Path) -> None:
    visits = rows(report_dir / "visits.csv")
    baseline = pick(visits, subject="S01", visit="baseline", measure="alt")
    assert baseline == {
        "subject": "S01",
        "arm": "low-dose",
        "visit": "baseline",
        "target_day": "0",
        "measure": "alt",
        "kind": "analyte",
        "value": "50",
        "comparator": "",
        "unit": "U/L",
        "effective": "2024-01-08T09:00:00+08:00",
        "study_day": "-2",
        "status": "final",
        "observation_id": baseline["observation_id"],
        "tag": "baseline",
        "in_window": "2",  # day -10 and day -2; the 16:30Z draw is day 1 in +08:00
        "state": "present",
    }
    assert baseline["observation_id"]
    week1 = pick(visits, subject="S01", visit="week-1", measure="alt")
    assert (week1["value"], week1["study_day"], week1["status"], week1["in_window"]) == (
        "70",
        "8",
        "corrected",
        "3",
    )


@pytest.mark.parametrize(
    ("rule", "baseline", "week1"),
    [
        ("nearest", "50", "70"),
        ("first", "40", "60"),
        ("last", "50", "65"),  # not the 16:30Z result of 99, which is day 1 locally
        ("min", "40", "60"),
        ("max", "50", "70"),
    ],
)
def test_each_visit_value_rule_picks_its_value(
    written: tuple[Path, TrialData], study: Study, rule: str, baseline: str, week1: str
) -> None:
    measures = catalogue(study, load_mappings()).measures
    tables = compute_tables(written[1], study, measures, rule, date.fromisoformat(AS_OF))
    visits = tables.visits.astype(str).to_dict("records")
    assert pick(visits, subject="S01", visit="baseline", measure="alt")["value"] == baseline
    assert pick(visits, subject="S01", visit="week-1", measure="alt")["value"] == week1


def test_values_are_in_the_canonical_unit_and_unusable_ones_are_listed(report_dir: Path) -> None:
    visits = rows(report_dir / "visits.csv")
    bilirubin = pick(visits, subject="S01", visit="baseline", measure="bilirubin_total")
    assert (bilirubin["value"], bilirubin["unit"]) == ("2", "mg/dL")  # 34.2 umol/L / 17.1
    assert {r["unit"] for r in visits if r["measure"] == "alt"} == {"U/L"}
    excluded = rows(report_dir / "excluded.csv")
    reasons = sorted(r["reason"] for r in excluded)
    assert reasons == [
        "alt: status entered-in-error does not count",
        "alt: value in ukat/L, which has no conversion to U/L",
    ]
    assert all(r["subject"] == "S01" and r["observation_id"] for r in excluded)


def test_score_observations_are_read_by_their_codes(report_dir: Path) -> None:
    visits = rows(report_dir / "visits.csv")
    meld = [
        (r["visit"], r["value"], r["unit"])
        for r in visits
        if r["subject"] == "S01" and r["measure"] == "meld" and r["value"]
    ]
    assert meld == [("baseline", "18", SCORE_UNIT), ("week-1", "16", SCORE_UNIT)]
    child_pugh = pick(visits, subject="S11", visit="baseline", measure="child_pugh")
    assert (child_pugh["value"], child_pugh["kind"]) == ("9", "score")
    assert SCORE_CODES["child_pugh"].code == "child-pugh"


def test_every_subject_visit_and_measure_has_a_row(report_dir: Path, study: Study) -> None:
    visits = rows(report_dir / "visits.csv")
    measures = len(study.analytes) + len(study.scores)
    assert len(visits) == len(SUBJECTS) * len(study.visits) * measures
    missing = pick(visits, subject="S05", visit="baseline", measure="alt")
    assert (missing["value"], missing["observation_id"], missing["state"]) == ("", "", "overdue")


# summary.csv -------------------------------------------------------------------------------


def test_summary_medians_iqr_and_change_from_baseline(report_dir: Path) -> None:
    summary = rows(report_dir / "summary.csv")
    # low-dose ALT at baseline: S01 50, S02 80, S03 30, S04 100 (S05 has none).
    # Sorted 30 50 80 100: median 65; q1 at rank 0.75 -> 30 + 0.75 * 20 = 45;
    # q3 at rank 2.25 -> 80 + 0.25 * 20 = 85.
    base = pick(summary, arm="low-dose", visit="baseline", measure="alt")
    assert [base[k] for k in ("n", "median", "q1", "q3", "iqr", "min", "max")] == [
        "4", "65", "45", "85", "40", "30", "100",
    ]  # fmt: skip
    assert base["change_n"] == ""  # no change from baseline at baseline
    # week 1: S01 70, S02 60, S03 45 -> median 60, q1 52.5, q3 65.
    # Change per subject: S01 70-50 = 20, S02 60-80 = -20, S03 45-30 = 15 (S04: no week 1);
    # sorted -20 15 20 -> median 15, q1 -20 + 0.5 * 35 = -2.5, q3 15 + 0.5 * 5 = 17.5.
    week1 = pick(summary, arm="low-dose", visit="week-1", measure="alt")
    assert [week1[k] for k in ("n", "median", "q1", "q3", "iqr", "min", "max")] == [
        "3", "60", "52.5", "65", "12.5", "45", "70",
    ]  # fmt: skip
    assert [week1[f"change_{k}"] for k in ("n", "median", "q1", "q3", "min", "max")] == [
        "3", "15", "-2.5", "17.5", "-20", "20",
    ]  # fmt: skip
    other = pick(summary, arm="medium-high-dose", visit="baseline", measure="alt")
    assert [other[k] for k in ("n", "median", "iqr")] == ["1", "200", "0"]
    empty = pick(summary, arm="medium-high-dose", visit="week-1", measure="alt")
    assert (empty["n"], empty["median"], empty["change_n"]) == ("0", "", "0")


# completeness.csv --------------------------------------------------------------------------


def test_completeness_states_relative_to_the_as_of_date(report_dir: Path) -> None:
    table = rows(report_dir / "completeness.csv")
    s01 = {r["visit"]: r for r in table if r["subject"] == "S01" and r["measure"] == "alt"}
    assert {visit: row["state"] for visit, row in s01.items()} == {
        "baseline": "present",
        "week-1": "present",
        "week-4": "out-of-window",  # day 40 lies between week-4 (21..35) and week-8 (49..63)
        "week-8": "missing",  # bilirubin was drawn, ALT entered in error
        "week-12": "overdue",  # window 2024-03-27..2024-04-10 closed with nothing
        "week-24": "due",  # window 2024-06-19..2024-07-03 holds 2024-06-25
        "week-48": "not-due",
    }
    assert s01["week-4"]["detail"] == "study day 40"
    assert (s01["week-12"]["window_start"], s01["week-12"]["window_end"]) == (
        "2024-03-27",
        "2024-04-10",
    )
    state = {(r["subject"], r["visit"]): r["state"] for r in table if r["measure"] == "alt"}
    assert state[("S02", "week-24")] == "not-expected"  # died on day 138
    assert state[("S04", "week-12")] == "overdue"  # withdrawn on day 90, inside the window
    assert state[("S04", "week-24")] == "not-expected"
    assert {r["measure"] for r in table} == set(load_study().analytes)  # scores not counted


# subjects.csv and survival -----------------------------------------------------------------


def test_subjects_table(report_dir: Path) -> None:
    subjects = rows(report_dir / "subjects.csv")
    assert [s["subject"] for s in subjects] == [s.subject_id for s in SUBJECTS]
    s01 = pick(subjects, subject="S01")
    assert {k: s01[k] for k in ("arm", "status", "day_0", "last_visit", "last_visit_date")} == {
        "arm": "low-dose",
        "status": "on-study",
        "day_0": "2024-01-10",
        "last_visit": "week-8",
        "last_visit_date": "2024-03-06",
    }
    s02 = pick(subjects, subject="S02")
    assert (s02["vital_status"], s02["death_date"], s02["survival_days"], s02["died"]) == (
        "dead",
        "2024-06-01",
        "138",
        "1",
    )
    s04 = pick(subjects, subject="S04")
    assert (s04["status"], s04["period_end"], s04["survival_days"], s04["died"]) == (
        "withdrawn",
        "2024-05-01",
        "90",
        "0",
    )


def test_kaplan_meier_one_year_estimate_matches_the_hand_computation(report_dir: Path) -> None:
    survival = {r["arm"]: r for r in rows(report_dir / "survival.csv")}
    # low-dose, days: S04 90 censored, S02 138 death, S03 230 death, S01 376 censored,
    # S05 385 censored. Product-limit: at 138, 4 at risk, 1 death -> 3/4; at 230, 3 at risk,
    # 1 death -> 3/4 * 2/3 = 1/2; no death between 230 and 365, so S(365) = 0.5.
    estimate = (3 / 4) * (2 / 3)
    # Greenwood: sum of d / (n (n - d)) over death times = 1/(4*3) + 1/(3*2) = 1/4.
    greenwood = 1 / (4 * 3) + 1 / (3 * 2)
    # Log-log (exponential Greenwood) 95% interval: S ** exp(+-z sqrt(greenwood) / |log S|).
    z = 1.959963984540054
    spread = z * math.sqrt(greenwood) / abs(math.log(estimate))
    low, high = estimate ** math.exp(spread), estimate ** math.exp(-spread)
    low_dose = survival["low-dose"]
    assert (low_dose["n"], low_dose["events"], low_dose["censored"], low_dose["at_risk"]) == (
        "5",
        "2",
        "3",
        "2",
    )
    assert float(low_dose["survival"]) == pytest.approx(0.5, abs=1e-12)
    assert float(low_dose["ci_lower"]) == pytest.approx(low, abs=1e-9)
    assert float(low_dose["ci_upper"]) == pytest.approx(high, abs=1e-9)
    assert (round(low, 4), round(high, 4)) == (0.0578, 0.8449)
    # medium-high-dose: S12 died on day 40, S11 followed 263 days only: no one-year estimate.
    other = survival["medium-high-dose"]
    assert (other["n"], other["events"], other["survival"], other["ci_lower"]) == (
        "2",
        "1",
        "",
        "",
    )


# xlsx, determinism, paging, errors ---------------------------------------------------------


def test_the_workbook_has_a_sheet_per_table(report_dir: Path) -> None:
    book = load_workbook(report_dir / "report.xlsx", read_only=True)
    assert book.sheetnames == [
        "subjects",
        "visits",
        "summary",
        "completeness",
        "survival",
        "excluded",
        "safety",
        "safety_shift",
    ]
    visits = book["visits"]
    assert visits.max_row == len(rows(report_dir / "visits.csv")) + 1
    book.close()


def test_two_runs_write_byte_identical_files(trial: str, tmp_path: Path) -> None:
    for name in ("one", "two"):  # the workbook too (its zip and core.xml times are fixed)
        assert (
            run_report(trial, tmp_path / name, "--rule", "last", "--format", "xlsx").exit_code == 0
        )
    visits = rows(tmp_path / "one" / "visits.csv")
    assert pick(visits, subject="S01", visit="week-1", measure="alt")["value"] == "65"
    for path in sorted((tmp_path / "one").iterdir()):
        assert path.read_bytes() == (tmp_path / "two" / path.name).read_bytes(), path.name


def test_every_page_is_read(trial: str, tmp_path: Path) -> None:
    # Pages of 1 (every search spans many pages) and of 500 (one page): the same report.
    counts = []
    for size in ("1", "500"):
        out = tmp_path / size
        result = run_report(trial, out, "--page-size", size, "--json")
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        counts.append((summary["subjects"], summary["results"], summary["excluded"]))
    assert counts == [(7, 18, 2), (7, 18, 2)]  # 20 Observations, 2 not used
    assert (tmp_path / "1" / "visits.csv").read_bytes() == (
        tmp_path / "500" / "visits.csv"
    ).read_bytes()


def test_an_unknown_study_is_a_clear_error(fhir_url: str, tmp_path: Path) -> None:
    result = run_report(fhir_url, tmp_path / "out")
    assert result.exit_code == 1
    assert "no ResearchStudy with identifier urn:trialbridge:study|XHNKKY-DDSC" in result.output
    assert not (tmp_path / "out").exists()


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setenv("TRIALBRIDGE_FHIR_RETRIES", "0")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_report(f"http://127.0.0.1:{port}/fhir", tmp_path / "out")
    assert result.exit_code == 1
    assert f"cannot reach the FHIR server at http://127.0.0.1:{port}/fhir" in result.output
    assert "Traceback" not in result.output


def test_a_study_file_for_another_study_is_refused(trial: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["report", "--fhir-url", trial, "--study", "OTHER-1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "defines study XHNKKY-DDSC, not OTHER-1" in result.output

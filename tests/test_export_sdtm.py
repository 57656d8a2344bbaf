"""``trialbridge export sdtm`` against the local FHIR server, on a small trial with known values,
and on the demo trial.

The trial (config/study.yaml: windows baseline [-14, 0], week-1 [4, 10], week-4 [21, 35]...,
time zone +08:00) is written with the trial builders, its Observations in the shape
adapter.build.observation writes:

E01  low-dose, F, born 1970, consent 2024-02-10, day 0 2024-03-01, on study.
     ALT (range "7-40" U/L): day -10 30; day 0 100 (the baseline: last on or before day 0,
     2.5 x ULN, so later ALT is graded in multiples of it); day 7 150 (1.5 x baseline: grade
     1, week 1); day 15 510 (between week 1 and week 4: unscheduled 2.01; 5.1 x baseline:
     grade 3); day 28 cancelled.
     Bilirubin sent as 34.2 umol/L (range "5.13-20.52"), stored 2 mg/dL (range 0.3-1.2), H.
     AST at 2024-03-01T16:30Z with no range: 00:30 on 2024-03-02 in +08:00, so study day 1
     (SDTM day 2, unscheduled 1.01), not gradeable.
     Sodium 128 (range 135-145): 125-129 is grade 2 or 3 by symptoms: not graded.
E02  medium-high-dose, M, consent 2024-02-20, day 0 2024-03-05, died 2024-04-20 (day 46).
     ALT day -2 35.
E03  low-dose, consent 2024-02-25, day 0 2024-03-10, withdrawn 2024-05-01 (day 52).
E04  low-dose, consent 2024-03-01, never infused (no day 0).
"""

from __future__ import annotations

import csv
import json
import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pyreadstat
import pytest
from click.testing import CliRunner

from adapter.build.observation import LOINC, UCUM, VALUE_AS_SENT
from adapter.cli import main
from adapter.dev_fhir import DevFhirServer
from adapter.fhir_client import FhirClient
from adapter.trial.resources import (
    SubjectRecord,
    link_observation,
    pseudonymous_patient,
    research_study,
    research_subject,
)
from adapter.trial.study import Study, load_study

DATA = Path(__file__).parent / "data" / "cdisc"
SCHEMA = json.loads((DATA / "dataset-json-1.1.schema.json").read_text(encoding="utf-8"))
DOMAINS = ["ts", "ta", "te", "tv", "dm", "lb", "supplb", "sv", "ds"]
TZ = timezone(timedelta(hours=8))
ALT, AST, TBIL, NA = "1742-6", "1920-8", "1975-2", "2951-2"
_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _subject(
    sid: str, arm: str, sex: str, consent: str, day0: str | None, **kw: Any
) -> SubjectRecord:
    return SubjectRecord(
        subject_id=sid,
        arm=arm,
        sex=sex,
        birth_year=kw.get("born", 1970),
        consent_date=date.fromisoformat(consent),
        status="withdrawn" if "withdrawn" in kw else "on-study",
        withdrawn_on=date.fromisoformat(kw["withdrawn"]) if "withdrawn" in kw else None,
        died_on=date.fromisoformat(kw["died"]) if "died" in kw else None,
        day0=date.fromisoformat(day0) if day0 else None,
    )


SUBJECTS = [
    _subject("E01", "low-dose", "F", "2024-02-10", "2024-03-01"),
    _subject("E02", "medium-high-dose", "M", "2024-02-20", "2024-03-05", died="2024-04-20"),
    _subject("E03", "low-dose", "F", "2024-02-25", "2024-03-10", withdrawn="2024-05-01"),
    _subject("E04", "low-dose", "M", "2024-03-01", None, born=1981),
]


def _at(sid: str, day: int, hour: int = 9) -> str:
    day0 = next(s.day0 for s in SUBJECTS if s.subject_id == sid)
    assert day0 is not None
    return (
        datetime.combine(day0 + timedelta(days=day), datetime.min.time(), TZ)
        .replace(hour=hour)
        .isoformat()
    )


def _qty(value: str, unit: str) -> dict[str, Any]:
    return {"value": Decimal(value), "unit": unit, "system": UCUM, "code": unit}


def _range(low: str, high: str, unit: str, text: str) -> dict[str, Any]:
    return {"referenceRange": [{"low": _qty(low, unit), "high": _qty(high, unit), "text": text}]}


ALT_RANGE = _range("7", "40", "U/L", "7-40")
# (subject, LOINC, effective, extra elements, status)
RESULTS: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("E01", ALT, _at("E01", -10), {"valueQuantity": _qty("30", "U/L"), **ALT_RANGE}, "final"),
    ("E01", ALT, _at("E01", 0, 7), {"valueQuantity": _qty("100", "U/L"), **ALT_RANGE}, "final"),
    ("E01", ALT, _at("E01", 7), {"valueQuantity": _qty("150", "U/L"), **ALT_RANGE}, "final"),
    ("E01", ALT, _at("E01", 15), {"valueQuantity": _qty("510", "U/L"), **ALT_RANGE}, "final"),
    (
        "E01",
        ALT,
        _at("E01", 28),
        {"dataAbsentReason": {"coding": [{"code": "not-performed"}]}, **ALT_RANGE},
        "cancelled",
    ),
    (
        "E01",
        TBIL,
        _at("E01", 0, 8),
        {
            "valueQuantity": _qty("2", "mg/dL"),
            "extension": [{"url": VALUE_AS_SENT, "valueQuantity": _qty("34.2", "umol/L")}],
            "interpretation": [{"coding": [{"system": _INTERP, "code": "H"}]}],
            **_range("0.3", "1.2", "mg/dL", "5.13-20.52"),
        },
        "final",
    ),
    ("E01", AST, "2024-03-01T16:30:00Z", {"valueQuantity": _qty("45", "U/L")}, "final"),
    (
        "E01",
        NA,
        _at("E01", 7),
        {"valueQuantity": _qty("128", "mmol/L"), **_range("135", "145", "mmol/L", "135-145")},
        "final",
    ),
    ("E02", ALT, _at("E02", -2), {"valueQuantity": _qty("35", "U/L"), **ALT_RANGE}, "final"),
]


def trial_bundle(study: Study) -> dict[str, Any]:
    study_ref = "urn:uuid:00000000-0000-4000-8000-000000000000"
    entries = [_post(study_ref, research_study(study))]
    patients = {}
    for i, subject in enumerate(SUBJECTS, start=1):
        patients[subject.subject_id] = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        entries.append(_post(patients[subject.subject_id], pseudonymous_patient(study, subject)))
        entries.append(
            _post(None, research_subject(study, subject, patients[subject.subject_id], study_ref))
        )
    for n, (sid, code, effective, extra, status) in enumerate(RESULTS):
        observation = {
            "resourceType": "Observation",
            "identifier": [{"system": "urn:test:lab", "value": f"R{n:03d}"}],
            "status": status,
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": patients[sid]},
            "effectiveDateTime": effective,
            **extra,
        }
        entries.append(_post(None, link_observation(observation, study, study_ref, None)))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _post(full_url: str | None, resource: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def export(url: str, out: Path, *extra: str) -> None:
    args = ["export", "sdtm", "--fhir-url", url, "--study", "XHNKKY-DDSC", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--page-size", "3", *extra])
    assert result.exit_code == 0, result.output


def report(url: str, out: Path) -> None:
    args = ["report", "--fhir-url", url, "--study", "XHNKKY-DDSC", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--as-of", "2024-06-25", "--page-size", "3"])
    assert result.exit_code == 0, result.output


def load(out: Path, domain: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = json.loads((out / f"{domain}.json").read_text(encoding="utf-8"))
    names = [c["name"] for c in doc["columns"]]
    return doc, [dict(zip(names, row, strict=True)) for row in doc["rows"]]


@pytest.fixture(scope="module")
def exported(
    dev_fhir_server: DevFhirServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    """The trial above exported twice and reported once: (export, second export, report)."""
    dev_fhir_server.reset()
    url = dev_fhir_server.base_url
    with FhirClient(url, timeout=10, retries=0) as client:
        client.transaction(trial_bundle(load_study()))
    first, second, rep = (tmp_path_factory.mktemp(n) for n in ("sdtm", "sdtm2", "report"))
    export(url, first)
    export(url, second)
    report(url, rep)
    return first, second, rep


def lb_row(out: Path, usubjid: str, testcd: str, lbdy: int | None = None, **where: Any) -> Any:
    _, rows = load(out, "lb")
    found = [
        r
        for r in rows
        if r["USUBJID"] == usubjid
        and r["LBTESTCD"] == testcd
        and (lbdy is None or r["LBDY"] == lbdy)
        and all(r[k] == v for k, v in where.items())
    ]
    assert len(found) == 1, found
    return found[0]


# Files, schema, XPT -------------------------------------------------------------------------


def check_files(out: Path) -> None:
    """Every domain in both formats: JSON valid against Dataset-JSON 1.1, XPT reads back to the
    same values within the XPORT v5 limits."""
    validator = jsonschema.Draft201909Validator(SCHEMA)
    for domain in DOMAINS:
        doc, rows = load(out, domain)
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == [], (domain, errors)
        assert doc["records"] == len(rows) and doc["name"] == domain.upper()
        frame, meta = pyreadstat.read_xport(str(out / f"{domain}.xpt"))
        assert meta.table_name == domain.upper()
        assert list(frame.columns) == [c["name"] for c in doc["columns"]]
        assert meta.column_labels == [c["label"] for c in doc["columns"]]
        assert all(len(n) <= 8 for n in frame.columns)
        assert all(len(label) <= 40 for label in meta.column_labels)
        assert len(frame) == len(rows)
        for column in doc["columns"]:
            back = frame[column["name"]].tolist()
            sent = [r[column["name"]] for r in rows]
            if column["dataType"] in ("integer", "float"):
                assert [None if pd.isna(x) else x for x in back] == sent, column["name"]
            else:
                assert back == [s or "" for s in sent], column["name"]
                assert all(len(str(s).encode()) <= 200 for s in sent)
                if column["dataType"] == "string":
                    assert max([1, *(len(s or "") for s in sent)]) == column["length"]


def test_every_domain_is_written_in_both_formats_valid_and_round_tripping(
    exported: tuple[Path, Path, Path],
) -> None:
    out = exported[0]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"{d}.{ext}" for d in DOMAINS for ext in ("json", "xpt")] + ["derivations.csv"]
    )
    check_files(out)


def test_the_same_server_content_gives_byte_identical_files(
    exported: tuple[Path, Path, Path],
) -> None:
    first, second, _ = exported
    for path in sorted(first.iterdir()):
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name
    doc, _ = load(first, "dm")
    assert doc["datasetJSONCreationDateTime"] == doc["dbLastModifiedDateTime"]


def test_created_stamps_the_time_of_the_run(
    exported: tuple[Path, Path, Path], dev_fhir_server: DevFhirServer, tmp_path: Path
) -> None:
    export(dev_fhir_server.base_url, tmp_path, "--created", "--format", "json")
    doc, _ = load(tmp_path, "ts")
    stamp = datetime.fromisoformat(doc["datasetJSONCreationDateTime"])
    assert abs((datetime.now(stamp.tzinfo) - stamp).total_seconds()) < 600
    assert not list(tmp_path.glob("*.xpt"))


def test_shape_matches_the_cdisc_pilot_examples(exported: tuple[Path, Path, Path]) -> None:
    """Variables both have: same label and type, in the same relative order."""
    for domain in ("dm", "ds", "lb", "sv", "ta", "te", "tv", "ts"):
        ours, _ = load(exported[0], domain)
        pilot = json.loads((DATA / "sdtm-msg-examples" / f"{domain}.json").read_text())
        theirs = {c["name"]: c for c in pilot["columns"]}
        shared = [c["name"] for c in ours["columns"] if c["name"] in theirs]
        assert shared == [c["name"] for c in pilot["columns"] if c["name"] in set(shared)]
        assert len(shared) >= len(theirs) - 3, (domain, set(theirs) - set(shared))
        for column in ours["columns"]:
            if column["name"] in theirs:
                pilot_column = theirs[column["name"]]
                assert column["label"] == pilot_column["label"], column["name"]
                if column["name"] != "LBDTC":
                    assert column["dataType"] == pilot_column["dataType"], column["name"]
        assert ours["label"] == pilot["label"]


def test_values_xport_v5_cannot_hold_are_refused_with_their_place() -> None:
    from adapter.errors import ExportError
    from adapter.export.datasets import TE, Dataset
    from adapter.export.writers import check_limits

    row = ["XHNKKY-DDSC", "TE", "SCRN", "Screening", "Informed consent", "First infusion"]
    check_limits(Dataset(TE, [row]))
    with pytest.raises(ExportError, match=r"TE row 2, ELEMENT: .* is not ASCII"):
        check_limits(Dataset(TE, [row, [*row[:3], "Screening \u00e9", *row[4:]]]))
    with pytest.raises(ExportError, match="TE row 1, TESTRL: 201 characters"):
        check_limits(Dataset(TE, [[*row[:4], "x" * 201, row[5]]]))


def test_an_unwritable_output_folder_is_one_clean_error(
    exported: tuple[Path, Path, Path], dev_fhir_server: DevFhirServer, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    args = ["export", "sdtm", "--fhir-url", dev_fhir_server.base_url, "--study", "XHNKKY-DDSC"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "file" / "sdtm")])
    assert result.exit_code == 1
    assert "cannot create the output folder" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_study_is_a_clear_error(fhir_url: str, tmp_path: Path) -> None:
    args = ["export", "sdtm", "--fhir-url", fhir_url, "--study", "XHNKKY-DDSC"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no ResearchStudy with identifier urn:trialbridge:study|XHNKKY-DDSC" in result.output


# LB, by hand --------------------------------------------------------------------------------


def test_lbdy_has_no_day_zero_and_counts_local_dates(exported: tuple[Path, Path, Path]) -> None:
    out = exported[0]
    assert lb_row(out, "XHNKKY-DDSC-E01", "ALT", LBDTC=_at("E01", -10))["LBDY"] == -10
    assert lb_row(out, "XHNKKY-DDSC-E01", "ALT", LBDTC=_at("E01", 0, 7))["LBDY"] == 1
    assert lb_row(out, "XHNKKY-DDSC-E01", "ALT", LBDTC=_at("E01", 7))["LBDY"] == 8
    ast = lb_row(out, "XHNKKY-DDSC-E01", "AST")
    # 16:30Z on 2024-03-01 is 00:30 on 2024-03-02 in +08:00: study day 1, SDTM day 2.
    assert (ast["LBDTC"], ast["LBDY"]) == ("2024-03-01T16:30:00Z", 2)


def test_visits_scheduled_and_unscheduled(exported: tuple[Path, Path, Path]) -> None:
    out = exported[0]
    week1 = lb_row(out, "XHNKKY-DDSC-E01", "ALT", 8)
    assert (week1["VISITNUM"], week1["VISIT"], week1["VISITDY"], week1["EPOCH"]) == (
        2,
        "WEEK 1",
        8,
        "TREATMENT",
    )
    stray = lb_row(out, "XHNKKY-DDSC-E01", "ALT", 16)  # day 15: after week 1's window
    assert (stray["VISITNUM"], stray["VISIT"], stray["VISITDY"]) == (2.01, "UNSCHEDULED 2.01", None)
    ast = lb_row(out, "XHNKKY-DDSC-E01", "AST")  # day 1: after the baseline window
    assert (ast["VISITNUM"], ast["VISIT"]) == (1.01, "UNSCHEDULED 1.01")
    base = lb_row(out, "XHNKKY-DDSC-E01", "ALT", -10)
    assert (base["VISITNUM"], base["VISIT"], base["VISITDY"], base["EPOCH"]) == (
        1,
        "BASELINE (WEEK 0)",
        1,
        "SCREENING",
    )
    _, sv = load(out, "sv")
    e01 = [
        (r["VISITNUM"], r["SVSTDTC"], r["SVENDTC"], r["SVSTDY"])
        for r in sv
        if r["USUBJID"] == "XHNKKY-DDSC-E01"
    ]
    assert e01 == [
        (1, "2024-02-20", "2024-03-01", -10),  # baseline: day -10 and day 0 draws
        (1.01, "2024-03-02", "2024-03-02", 2),
        (2, "2024-03-08", "2024-03-08", 8),
        (2.01, "2024-03-16", "2024-03-16", 16),  # the day 28 result was cancelled
    ]


def test_baseline_flag_is_the_last_result_on_or_before_day_0(
    exported: tuple[Path, Path, Path],
) -> None:
    _, rows = load(exported[0], "lb")
    flagged = {(r["USUBJID"], r["LBTESTCD"], r["LBDY"]) for r in rows if r["LBLOBXFL"] == "Y"}
    assert flagged == {
        ("XHNKKY-DDSC-E01", "ALT", 1),  # day 0 at 07:00, not day -10
        ("XHNKKY-DDSC-E01", "BILI", 1),
        ("XHNKKY-DDSC-E02", "ALT", -2),
    }  # AST (day 1) and sodium (day 7) have no baseline


def test_values_as_sent_and_in_standard_units(exported: tuple[Path, Path, Path]) -> None:
    bili = lb_row(exported[0], "XHNKKY-DDSC-E01", "BILI")
    assert {
        k: bili[k]
        for k in (
            "LBORRES",
            "LBORRESU",
            "LBORNRLO",
            "LBORNRHI",
            "LBSTRESC",
            "LBSTRESN",
            "LBSTRESU",
            "LBSTNRLO",
            "LBSTNRHI",
            "LBNRIND",
            "LBLOINC",
            "LBCAT",
            "LBTEST",
        )
    } == {
        "LBORRES": "34.2",
        "LBORRESU": "umol/L",
        "LBORNRLO": "5.13",
        "LBORNRHI": "20.52",
        "LBSTRESC": "2",
        "LBSTRESN": 2,
        "LBSTRESU": "mg/dL",
        "LBSTNRLO": 0.3,
        "LBSTNRHI": 1.2,
        "LBNRIND": "HIGH",
        "LBLOINC": "1975-2",
        "LBCAT": "CHEMISTRY",
        "LBTEST": "Bilirubin",
    }


def test_a_cancelled_result_is_not_done(exported: tuple[Path, Path, Path]) -> None:
    row = lb_row(exported[0], "XHNKKY-DDSC-E01", "ALT", 29)
    assert {
        k: row[k] for k in ("LBSTAT", "LBREASND", "LBORRES", "LBSTRESN", "LBTOXGR", "VISITNUM")
    } == {
        "LBSTAT": "NOT DONE",
        "LBREASND": "Cancelled by the laboratory",
        "LBORRES": "",
        "LBSTRESN": None,
        "LBTOXGR": "",
        "VISITNUM": 3,
    }


def test_ctcae_grades_and_the_reasons_for_none(exported: tuple[Path, Path, Path]) -> None:
    out = exported[0]
    grades = {
        r["LBDY"]: r["LBTOXGR"]
        for r in load(out, "lb")[1]
        if r["USUBJID"] == "XHNKKY-DDSC-E01" and r["LBTESTCD"] == "ALT"
    }
    # -10: 30 <= ULN; 1: the baseline, 100 = 2.5 x ULN; 8: 150 = 1.5 x baseline (abnormal);
    # 16: 510 = 5.1 x baseline; 29: cancelled.
    assert grades == {-10: "0", 1: "1", 8: "1", 16: "3", 29: ""}
    assert lb_row(out, "XHNKKY-DDSC-E01", "ALT", 8)["LBTOX"] == (
        "Alanine aminotransferase increased"
    )
    ast = lb_row(out, "XHNKKY-DDSC-E01", "AST")
    sodium = lb_row(out, "XHNKKY-DDSC-E01", "SODIUM")
    assert ast["LBTOXGR"] == sodium["LBTOXGR"] == ""
    _, supp = load(out, "supplb")
    reasons = {r["IDVARVAL"]: r["QVAL"] for r in supp if r["USUBJID"] == "XHNKKY-DDSC-E01"}
    assert "no upper reference limit" in reasons[str(ast["LBSEQ"])]
    assert "symptoms are not recorded" in reasons[str(sodium["LBSEQ"])]
    assert {r["QNAM"] for r in supp} == {"LBTOXNR"}


def test_lbseq_numbers_each_subject_in_key_order(exported: tuple[Path, Path, Path]) -> None:
    _, rows = load(exported[0], "lb")
    e01 = [(r["LBSEQ"], r["LBTESTCD"], r["LBDY"]) for r in rows if r["USUBJID"].endswith("E01")]
    assert e01 == [
        (1, "ALT", -10),
        (2, "ALT", 1),
        (3, "ALT", 8),
        (4, "ALT", 16),
        (5, "ALT", 29),
        (6, "AST", 2),
        (7, "BILI", 1),
        (8, "SODIUM", 8),
    ]


# DM, DS -------------------------------------------------------------------------------------


def test_dm_death_arms_and_age(exported: tuple[Path, Path, Path]) -> None:
    _, dm = load(exported[0], "dm")
    by = {r["SUBJID"]: r for r in dm}
    assert (by["E02"]["DTHDTC"], by["E02"]["DTHFL"], by["E02"]["RFENDTC"]) == (
        "2024-04-20",
        "Y",
        "2024-04-20",
    )
    assert (by["E01"]["DTHDTC"], by["E01"]["DTHFL"]) == ("", "")
    e01 = by["E01"]
    assert {
        k: e01[k]
        for k in (
            "USUBJID",
            "RFSTDTC",
            "RFICDTC",
            "BRTHDTC",
            "AGE",
            "AGEU",
            "SEX",
            "ARMCD",
            "ACTARMCD",
            "COUNTRY",
            "SITEID",
        )
    } == {
        "USUBJID": "XHNKKY-DDSC-E01",
        "RFSTDTC": "2024-03-01",
        "RFICDTC": "2024-02-10",
        "BRTHDTC": "1970",
        "AGE": 53,  # 2024 - 1970 - 1: certainly reached by 2024-02-10
        "AGEU": "YEARS",
        "SEX": "F",
        "ARMCD": "LOW_DOSE",
        "ACTARMCD": "LOW_DOSE",
        "COUNTRY": "CHN",
        "SITEID": "01",
    }
    e04 = by["E04"]
    assert (e04["ARMCD"], e04["ACTARMCD"], e04["ARMNRS"], e04["RFSTDTC"]) == (
        "LOW_DOSE",
        "",
        "NOT TREATED",
        "",
    )
    assert not {"name", "mrn"} & {k.lower() for k in e01}


def test_ds_death_and_withdrawal(exported: tuple[Path, Path, Path]) -> None:
    _, ds = load(exported[0], "ds")
    events = {
        (r["USUBJID"][-3:], r["DSDECOD"], r["DSSTDTC"], r["DSSTDY"], r["EPOCH"])
        for r in ds
        if r["DSCAT"] == "DISPOSITION EVENT"
    }
    assert events == {
        ("E02", "DEATH", "2024-04-20", 47, "TREATMENT"),  # day 46 after 2024-03-05 -> 47
        ("E03", "WITHDRAWAL BY SUBJECT", "2024-05-01", 53, "TREATMENT"),
    }
    consent = next(r for r in ds if r["USUBJID"].endswith("E01") and r["DSSEQ"] == 1)
    assert (consent["DSDECOD"], consent["DSSTDTC"], consent["DSSTDY"]) == (
        "INFORMED CONSENT OBTAINED",
        "2024-02-10",
        -20,
    )


# LB against the report ----------------------------------------------------------------------


def check_against_report(sdtm: Path, report_dir: Path) -> int:
    """Every value the report counts (visits.csv) is an LB row of the same value and visit."""
    _, lb = load(sdtm, "lb")
    by_id = {r["LBSPID"]: r for r in lb}
    study = load_study()
    number = {v.code: i + 1 for i, v in enumerate(study.visits)}
    with (report_dir / "visits.csv").open(encoding="utf-8", newline="") as handle:
        visits = [r for r in csv.DictReader(handle) if r["kind"] == "analyte" and r["value"]]
    for row in visits:
        lb_row_ = by_id[f"Observation/{row['observation_id']}"]
        assert math.isclose(lb_row_["LBSTRESN"], float(row["value"]), rel_tol=1e-9), row
        assert lb_row_["VISITNUM"] == number[row["visit"]], row
        assert lb_row_["LBDY"] == int(row["study_day"]) + (int(row["study_day"]) >= 0)
    return len(visits)


def test_lb_rows_match_the_reports_values_and_visits(exported: tuple[Path, Path, Path]) -> None:
    # E01: ALT at baseline and week 1, bilirubin at baseline, sodium at week 1; E02: ALT.
    assert check_against_report(exported[0], exported[2]) == 5


def test_the_demo_trial_exports_every_domain(
    dev_fhir_server: DevFhirServer, tmp_path: Path
) -> None:
    """The demo (simulated feed pushed through the adapter) writes the export next to the
    report; it is valid, round-trips, and agrees with the report."""
    from adapter.config import load_settings
    from adapter.demo import run_demo
    from adapter.mappings import load_mappings

    dev_fhir_server.reset()
    settings = load_settings()
    with FhirClient(dev_fhir_server.base_url, timeout=30, retries=0) as client:
        result = run_demo(
            tmp_path / "feed",
            client,
            settings,
            load_mappings(settings.mappings_dir),
            lambda items, label: items,
        )
    sdtm = tmp_path / "sdtm"
    assert sorted(Path(p).name for p in result.export_files) == sorted(
        [f"{d}.{ext}" for d in DOMAINS for ext in ("json", "xpt")] + ["derivations.csv"]
    )
    check_files(sdtm)
    assert check_against_report(sdtm, tmp_path / "report") > 500

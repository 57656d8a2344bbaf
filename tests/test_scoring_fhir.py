"""Scores in the flow, against the real dev FHIR server and a real SQLite store: a visit's
labs and a clinical assessment give MELD, MELD-Na, MELD 3.0, Child-Pugh and ALBI with the
published numbers; corrections change them, cancellations withdraw them, a missing input
gives the reason, the pairing window holds, recomputing changes nothing, and the report
shows them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from adapter.cli import main
from adapter.fhir_client import FhirClient
from adapter.scores import child_pugh, meld_3
from tests.messages import ALB, INR, TBIL, obx, oru

CREA = "CREA^Creatinine^L"
NA = "NA^Sodium^L"
SCORE = "urn:trialbridge:score"
TIMEPOINT = "urn:trialbridge:study:XHNKKY-DDSC:timepoint"
ENROL = [
    "enrol", "DDSC-001", "--id", "MRN001^NTCH", "--arm", "low-dose", "--consent", "2024-01-02",
    "--infusion", "2024-01-15", "--sex", "F", "--birth-year", "1961",
]  # fmt: skip
WEEK1 = "20240122083000+0800"  # study day 7: week-1 window


@pytest.fixture
def client(fhir_url: str) -> Iterator[FhirClient]:
    with FhirClient(fhir_url, timeout=10, retries=0) as fhir:
        yield fhir


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def push(fhir_url: str, folder: Path, text: str) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{len(list(folder.glob('*.hl7'))) + 1:04d}.hl7").write_text(text)
    output = cli("push", str(folder), "--fhir-url", fhir_url, "--json").output
    summary: dict[str, Any] = json.JSONDecoder().raw_decode(output[output.index("{") :])[0]
    return summary


def visit_labs(
    *, bili: str = "2.5", bili_status: str = "F", sodium: bool = True, inr_at: str = WEEK1
) -> str:
    results = [
        obx(1, TBIL, bili, "mg/dL", status=bili_status, observed=WEEK1),
        obx(2, INR, "1.8", "", observed=inr_at),
        obx(3, CREA, "1.4", "mg/dL", observed=WEEK1),
        obx(4, ALB, "2.9", "g/dL", observed=WEEK1),
    ]
    if sodium:
        results.append(obx(5, NA, "131", "mmol/L", observed=WEEK1))
    return oru(*results, message_id=f"M-{bili}-{bili_status}", order="240122-0001")


def assess(fhir_url: str, **answers: str) -> None:
    given = {"ascites": "mild", "encephalopathy": "none", "dialysis": "no", **answers}
    args = [f"--{key}={value}" for key, value in given.items()]
    cli("assess", "DDSC-001", "--date", "2024-01-22", *args, "--fhir-url", fhir_url)


def scores(client: FhirClient) -> dict[str, dict[str, Any]]:
    found = client.search("Observation", {"code": f"{SCORE}|meld,{SCORE}|meld-na,"
                          f"{SCORE}|meld-3,{SCORE}|child-pugh,{SCORE}|albi"})  # fmt: skip
    by_code: dict[str, dict[str, Any]] = {}
    for observation in found:
        code = next(c["code"] for c in observation["code"]["coding"] if c["system"] == SCORE)
        assert code not in by_code, "one score of each kind per occasion"
        by_code[code] = observation
    return by_code


def value(observation: dict[str, Any]) -> Decimal:
    return Decimal(str(observation["valueQuantity"]["value"]))


def meld_by_hand(bili: float, inr: float, crea: float) -> int:
    """OPTN policy 9.1.D, written out independently: bounds, tenth, x10, 6..40."""
    bili, inr, crea = max(bili, 1.0), max(inr, 1.0), min(max(crea, 1.0), 4.0)
    raw = 0.957 * math.log(crea) + 0.378 * math.log(bili) + 1.120 * math.log(inr) + 0.643
    tenth = Decimal(repr(raw)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return min(max(int(tenth * 10), 6), 40)


def meld_na_by_hand(meld_i: int, sodium: float) -> int:
    if meld_i <= 11:
        return meld_i
    gap = 137 - min(max(sodium, 125), 137)
    raw = meld_i + 1.32 * gap - 0.033 * meld_i * gap
    return min(max(int(Decimal(repr(raw)).quantize(Decimal(1), rounding=ROUND_HALF_UP)), 6), 40)


def test_a_visits_labs_and_assessment_give_every_score_with_the_published_numbers(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    cli(*ENROL, "--fhir-url", fhir_url)
    summary = push(fhir_url, tmp_path / "feed", visit_labs())
    assert summary["scores"]["occasions"] == 1
    assess(fhir_url)
    found = scores(client)
    assert set(found) == {"meld", "meld-na", "meld-3", "child-pugh", "albi"}
    meld_i = meld_by_hand(2.5, 1.8, 1.4)
    assert value(found["meld"]) == meld_i == 20
    assert value(found["meld-na"]) == meld_na_by_hand(meld_i, 131) == 24
    expected_3 = meld_3(
        bilirubin=(2.5, "mg/dL"), inr=1.8, creatinine=(1.4, "mg/dL"), sodium=(131, "mmol/L"),
        albumin=(2.9, "g/dL"), sex="F", age_years=62, dialysis=False,
    )  # fmt: skip
    assert value(found["meld-3"]) == expected_3.score
    # Child-Pugh by hand: bilirubin 2.5 -> 2, albumin 2.9 -> 2, INR 1.8 -> 2, mild ascites
    # -> 2, no encephalopathy -> 1: 9 points, class B.
    expected_cp = child_pugh(bilirubin=(2.5, "mg/dL"), albumin=(2.9, "g/dL"), inr=1.8,
                             ascites="mild", encephalopathy="none")  # fmt: skip
    assert value(found["child-pugh"]) == expected_cp.score == 9
    [klass] = found["child-pugh"]["component"]
    assert klass["valueCodeableConcept"]["coding"][0]["code"] == "B"
    # ALBI by hand: 0.66 * log10(2.5 * 17.1) - 0.085 * 29 = -1.389...: grade 3 (> -1.39).
    albi = 0.66 * math.log10(2.5 * 17.1) - 0.085 * 29
    assert value(found["albi"]) == Decimal(repr(albi)).quantize(Decimal("0.01"))
    meld = found["meld"]
    assert meld["status"] == "final" and meld["effectiveDateTime"] == "2024-01-22T08:30:00+08:00"
    assert meld["valueQuantity"]["code"] == "{score}"
    loinc = {c["code"] for c in meld["code"]["coding"] if c["system"] == "http://loinc.org"}
    assert loinc == {"44760-7"}
    assert meld["meta"]["tag"][0] == {"system": TIMEPOINT, "code": "week-1", "display": "Week 1"}
    assert meld["method"]["text"] == "MELD (UNOS/OPTN 2002)"
    [patient] = client.search("Patient", {})
    assert meld["subject"]["reference"] == f"Patient/{patient['id']}"
    derived = {d["reference"] for d in meld["derivedFrom"]}
    inputs = {
        o["id"]: o for o in client.search("Observation", {"subject": f"Patient/{patient['id']}"})
    }
    kinds = {inputs[r.removeprefix("Observation/")]["code"]["coding"][0]["code"] for r in derived}
    assert kinds == {"1975-2", "6301-6", "2160-0", "dialysis"}
    provenances = client.search("Provenance", {"target": f"Observation/{meld['id']}"})
    assert any({e["what"]["reference"] for e in p["entity"]} >= derived for p in provenances)


def test_a_score_needs_its_assessment_and_says_so(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    cli(*ENROL, "--fhir-url", fhir_url)
    push(fhir_url, tmp_path / "feed", visit_labs())
    found = scores(client)
    meld = found["meld"]
    assert "valueQuantity" not in meld
    assert meld["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "dialysis status unknown" in meld["note"][0]["text"]
    assert "ascites missing" in found["child-pugh"]["note"][0]["text"]
    assert "valueQuantity" in found["albi"]  # bilirubin and albumin only


def test_a_correction_of_bilirubin_changes_the_score_in_place(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    cli(*ENROL, "--fhir-url", fhir_url)
    feed = tmp_path / "feed"
    push(fhir_url, feed, visit_labs())
    assess(fhir_url)
    before = scores(client)["meld"]
    push(fhir_url, feed, visit_labs(bili="6.0", bili_status="C"))
    after = scores(client)["meld"]
    assert after["id"] == before["id"]
    assert after["meta"]["versionId"] != before["meta"]["versionId"]
    assert value(after) == meld_by_hand(6.0, 1.8, 1.4) != value(before)
    assert after["status"] == "corrected"


def test_a_cancelled_input_withdraws_the_score(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    cli(*ENROL, "--fhir-url", fhir_url)
    feed = tmp_path / "feed"
    push(fhir_url, feed, visit_labs())
    assess(fhir_url)
    push(fhir_url, feed, visit_labs(bili="", bili_status="X"))
    for code, observation in scores(client).items():
        assert observation["status"] == "entered-in-error", code
        assert "valueQuantity" not in observation
        assert observation["dataAbsentReason"]["coding"][0]["code"] == "error"
        assert "is cancelled" in observation["note"][0]["text"]


def test_missing_sodium_leaves_meld_na_not_computable_and_meld_computed(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    cli(*ENROL, "--fhir-url", fhir_url)
    push(fhir_url, tmp_path / "feed", visit_labs(sodium=False))
    assess(fhir_url)
    found = scores(client)
    assert value(found["meld"]) == 20
    assert "valueQuantity" not in found["meld-na"]
    assert "sodium missing" in found["meld-na"]["note"][0]["text"]
    assert "sodium missing" in found["meld-3"]["note"][0]["text"]


def test_an_inr_three_days_away_is_not_paired(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    cli(*ENROL, "--fhir-url", fhir_url)
    push(fhir_url, tmp_path / "feed", visit_labs(inr_at="20240125090000+0800"))
    assess(fhir_url)
    meld = scores(client)["meld"]
    assert "INR missing" in meld["note"][0]["text"]
    assert "within 48 h" in meld["note"][0]["text"]


def test_recomputing_twice_changes_no_version(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    cli(*ENROL, "--fhir-url", fhir_url)
    push(fhir_url, tmp_path / "feed", visit_labs())
    assess(fhir_url)
    versions = {c: o["meta"]["versionId"] for c, o in scores(client).items()}
    provenances = len(client.search("Provenance", {}))
    output = cli("scores", "recompute", "--all", "--fhir-url", fhir_url, "--json").output
    summary = json.loads(output)
    assert (summary["written"], summary["unchanged"]) == (0, 5)
    cli("scores", "recompute", "DDSC-001", "--fhir-url", fhir_url)
    assert {c: o["meta"]["versionId"] for c, o in scores(client).items()} == versions
    assert len(client.search("Provenance", {})) == provenances


def test_the_report_shows_meld_and_child_pugh(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    cli(*ENROL, "--fhir-url", fhir_url)
    push(fhir_url, tmp_path / "feed", visit_labs())
    assess(fhir_url)
    out = tmp_path / "report"
    cli(
        "report",
        "--fhir-url",
        fhir_url,
        "--study",
        "XHNKKY-DDSC",
        "--out",
        str(out),
        "--as-of",
        "2024-02-01",
    )
    visits = (out / "visits.csv").read_text()
    rows = [line for line in visits.splitlines() if "DDSC-001" in line and "week-1" in line]
    meld = next(r for r in rows if ",meld," in r)
    child_pugh_row = next(r for r in rows if ",child_pugh," in r)
    assert ",20," in meld and ",9," in child_pugh_row
    html = (out / "report.html").read_text()
    assert "MELD" in html and "Child-Pugh" in html

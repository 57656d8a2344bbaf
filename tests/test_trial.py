"""The trial in the flow, against the real dev FHIR server and a real SQLite store: only
enrolled subjects' results leave, under their pseudonym, linked to study and visit, and
traceable to their message; everyone else's leave no trace."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from adapter.cli import main
from adapter.fhir_client import FhirClient
from adapter.store import open_store
from adapter.store.schema import messages
from tests.messages import ALT, TBIL, obx, oru

SUBJECT_SYSTEM = "urn:trialbridge:study:XHNKKY-DDSC:subject"
ENROL = [
    "enrol", "DDSC-001", "--id", "MRN001^NTCH", "--arm", "low-dose", "--consent", "2024-01-02",
    "--infusion", "2024-01-15", "--infusion", "2024-02-12", "--sex", "F", "--birth-year", "1961",
]  # fmt: skip


@pytest.fixture
def client(fhir_url: str) -> Iterator[FhirClient]:
    with FhirClient(fhir_url, timeout=10, retries=0) as fhir:
        yield fhir


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def ok(*args: str) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def push(fhir_url: str, folder: Path, *texts: str | bytes) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts, start=len(list(folder.glob("*.hl7"))) + 1):
        data = text.encode() if isinstance(text, str) else text
        (folder / f"{i:04d}.hl7").write_bytes(data)
    result = cli("push", str(folder), "--fhir-url", fhir_url, "--json")
    text = result.output[result.output.index("{") :]
    summary: dict[str, Any] = json.JSONDecoder().raw_decode(text)[0]
    return summary


def the_subject(client: FhirClient, subject_id: str = "DDSC-001") -> dict[str, Any]:
    [subject] = client.search("ResearchSubject", {"identifier": f"{SUBJECT_SYSTEM}|{subject_id}"})
    return subject


def test_enrolment_publishes_study_pseudonymous_patient_and_research_subject(
    fhir_url: str, client: FhirClient
) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    [study] = client.search("ResearchStudy", {"identifier": "urn:trialbridge:study|XHNKKY-DDSC"})
    assert [a["name"] for a in study["arm"]] == ["low-dose", "medium-high-dose"]
    [patient] = client.search("Patient", {})
    assert patient["identifier"] == [{"system": SUBJECT_SYSTEM, "value": "DDSC-001"}]
    assert patient["gender"] == "female" and patient["birthDate"] == "1961"
    assert "name" not in patient and "address" not in patient
    subject = the_subject(client)
    assert subject["status"] == "on-study" and subject["assignedArm"] == "low-dose"
    assert subject["individual"]["reference"] == f"Patient/{patient['id']}"
    assert subject["study"]["reference"] == f"ResearchStudy/{study['id']}"
    assert {"url": "http://trialbridge.org/fhir/StructureDefinition/study-day-zero",
            "valueDate": "2024-01-15"} in subject["extension"]  # fmt: skip


def test_an_enrolled_subjects_results_arrive_under_the_pseudonym_with_study_and_visit(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    week1 = "20240122083000+0800"  # day 7
    summary = push(fhir_url, tmp_path / "feed", oru(obx(1, ALT, "42", "U/L", observed=week1)))
    assert (summary["pushed"], summary["observations"], summary["dropped"]) == (1, 1, 0)
    [patient] = client.search("Patient", {})
    assert patient["identifier"][0]["system"] == SUBJECT_SYSTEM
    [observation] = client.search("Observation", {"subject": f"Patient/{patient['id']}"})
    assert observation["meta"]["tag"] == [
        {"system": "urn:trialbridge:study:XHNKKY-DDSC:timepoint", "code": "week-1",
         "display": "Week 1"}
    ]  # fmt: skip
    [link] = [e for e in observation["extension"] if e["url"].endswith("workflow-researchStudy")]
    [study] = client.search("ResearchStudy", {})
    assert link["valueReference"]["reference"] == f"ResearchStudy/{study['id']}"


def test_a_result_outside_every_window_is_sent_untagged_and_before_baseline_dropped(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    text = oru(
        obx(1, ALT, "42", "U/L", observed="20240129083000+0800"),  # day 14: between windows
        obx(2, TBIL, "2.0", "mg/dL", observed="20231225083000+0800"),  # day -21
    )
    summary = push(fhir_url, tmp_path / "feed", text)
    assert (summary["observations"], summary["dropped_results"]) == (1, 1)
    [observation] = client.search("Observation", {})
    assert "tag" not in observation.get("meta", {})
    assert observation["code"]["coding"][0]["code"] == "1742-6"


def test_a_patient_who_is_not_enrolled_leaves_no_trace(
    fhir_url: str, client: FhirClient, tmp_path: Path, own_state_store: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    ok(*ENROL, "--fhir-url", fhir_url)
    stranger = oru(obx(1, ALT, "42", "U/L"), mrn="77123456", message_id="STRANGER1")
    stranger = stranger.replace("Patient^Test", "Qiaolian^Wuming")
    summary = push(fhir_url, tmp_path / "feed", stranger)
    assert (summary["dropped"], summary["pushed"], summary["messages"]) == (1, 0, 1)
    assert client.search("Observation", {}) == []
    assert len(client.search("Patient", {})) == 1  # the enrolled subject's only
    database = Path(own_state_store.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    for trace in (b"77123456", b"Qiaolian", b"STRANGER1"):
        assert trace not in stored
    logged = caplog.text
    assert "77123456" not in logged and "Qiaolian" not in logged


def test_withdrawal_stops_forwarding_and_keeps_what_was_sent(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    feed = tmp_path / "feed"
    push(fhir_url, feed, oru(obx(1, ALT, "42", "U/L"), message_id="M1", order="A1"))
    ok("withdraw", "DDSC-001", "--fhir-url", fhir_url)
    later = tmp_path / "later"
    summary = push(fhir_url, later, oru(obx(1, ALT, "44", "U/L"), message_id="M2", order="A2"))
    assert (summary["dropped"], summary["pushed"]) == (1, 0)
    assert [o["valueQuantity"]["value"] for o in client.search("Observation", {})] == [42]
    subject = the_subject(client)
    assert subject["status"] == "withdrawn" and "end" in subject["period"]


ADT_DEATH = (
    "MSH|^~\\&|NTC-HIS|NTCH|TB|NTCH|20240601101500+0800||ADT^A03^ADT_A03|ADT1|P|2.5.1\r"
    "EVN|A03|20240601101000+0800\r"
    + "|".join(["PID", "1", "", "MRN001^^^NTCH^MR", "", "Patient^Test", "", "19610304", "F"]
               + [""] * 20 + ["20240601093000+0800", "Y"])
    + "\r"
)  # fmt: skip


def test_a_death_message_updates_patient_and_research_subject(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    summary = push(fhir_url, tmp_path / "feed", ADT_DEATH)
    assert summary["vital"] == 1 and summary["refused"] == 0
    [patient] = client.search("Patient", {})
    assert patient["deceasedDateTime"] == "2024-06-01"
    subject = the_subject(client)
    assert subject["status"] == "off-study" and subject["period"]["end"] == "2024-06-01"
    shown = json.loads(ok("subjects", "show", "DDSC-001", "--json").output)
    assert shown["died_on"] == "2024-06-01"


def test_vital_status_by_hand(fhir_url: str, client: FhirClient) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    ok("vital-status", "DDSC-001", "--alive", "2024-12-01", "--fhir-url", fhir_url)
    extensions = the_subject(client)["extension"]
    assert {"url": "http://trialbridge.org/fhir/StructureDefinition/last-known-alive",
            "valueDate": "2024-12-01"} in extensions  # fmt: skip
    refused = cli("vital-status", "DDSC-404", "--died", "2024-06-01", "--fhir-url", fhir_url)
    assert refused.exit_code == 1 and "DDSC-404 is not enrolled" in refused.output


def test_every_observation_traces_to_its_message_through_provenance(
    fhir_url: str, client: FhirClient, tmp_path: Path, own_state_store: str
) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    push(fhir_url, tmp_path / "feed", oru(obx(1, ALT, "42", "U/L"), obx(2, TBIL, "1.1", "mg/dL")))
    with open_store(own_state_store) as store, store.engine.connect() as conn:
        row = conn.execute(
            select(messages.c.sender, messages.c.control_id, messages.c.content_hash)
        ).one()
    for observation in client.search("Observation", {"category": "laboratory"}):
        [provenance] = client.search("Provenance", {"target": f"Observation/{observation['id']}"})
        what = provenance["entity"][0]["what"]["identifier"]["value"]
        assert what == f"{row.sender}/{row.control_id}/sha256:{row.content_hash}"
        assert provenance["agent"][0]["who"]["identifier"]["value"].startswith("trialbridge/")
        assert provenance["policy"][0].startswith("urn:trialbridge:mappings:2026-11-22")


def test_identifiers_of_two_subjects_are_held_for_review(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    ok("enrol", "DDSC-002", "--id", "MRN002^NTCH", "--arm", "low-dose", "--consent",
       "2024-01-02", "--infusion", "2024-01-15", "--sex", "M", "--birth-year", "1970",
       "--fhir-url", fhir_url)  # fmt: skip
    both = oru(obx(1, ALT, "42", "U/L")).replace(
        "MRN001^^^NTCH^MR", "MRN001^^^NTCH^MR~MRN002^^^NTCH^MR"
    )
    summary = push(fhir_url, tmp_path / "feed", both)
    assert summary["refused"] == 1 and client.search("Observation", {}) == []
    assert any("held for review" in e and "DDSC-001, DDSC-002" in e for e in summary["errors"])


def test_enrolment_is_checked(fhir_url: str) -> None:
    ok(*ENROL, "--fhir-url", fhir_url)
    again = cli(*ENROL, "--fhir-url", fhir_url)
    assert again.exit_code == 1 and "DDSC-001 is already enrolled" in again.output
    child = [a if a != "1961" else "2010" for a in ENROL]
    child[1] = "DDSC-009"
    child[3] = "MRN009^NTCH"
    refused = cli(*child, "--fhir-url", fhir_url)
    assert refused.exit_code == 1 and "outside the study's 18-80" in refused.output
    ok(*child, "--override-age", "--fhir-url", fhir_url)
    listing = ok("subjects", "list").output
    assert "DDSC-001" in listing and "DDSC-009" in listing and "MRN001" not in listing


CSV = """subject_id,mrn,mrn_authority,arm,consent_date,infusion_dates,sex,birth_year,death_date
DDSC-101,500101,NTCH,low-dose,2024-01-10,2024-01-28;2024-02-25,M,1954,
DDSC-102,500102,NTCH,medium-high-dose,2024-01-11,2024-01-31,F,1963,2024-05-02
"""


def test_the_coordinators_list_imports_with_a_dry_run_and_line_numbered_errors(
    fhir_url: str, client: FhirClient, tmp_path: Path
) -> None:
    good = tmp_path / "enrolment.csv"
    good.write_text(CSV)
    dry = ok("subjects", "import", str(good), "--dry-run", "--fhir-url", fhir_url)
    assert "would enrol 2 subject(s)" in dry.output
    assert client.search("ResearchSubject", {}) == []
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV.replace("low-dose", "placebo").replace("2024-01-31", "31/01/2024"))
    refused = cli("subjects", "import", str(bad), "--fhir-url", fhir_url)
    assert refused.exit_code == 1
    assert "bad.csv:2: DDSC-101: arm 'placebo' is not one of" in refused.output
    assert "bad.csv:3: infusion_dates '31/01/2024' is not a date" in refused.output
    ok("subjects", "import", str(good), "--fhir-url", fhir_url)
    assert len(client.search("ResearchSubject", {})) == 2
    [dead] = client.search("Patient", {"identifier": f"{SUBJECT_SYSTEM}|DDSC-102"})
    assert dead["deceasedDateTime"] == "2024-05-02"


def test_map_and_explain_are_dry_runs_that_say_what_the_filter_would_do(
    fhir_url: str, tmp_path: Path
) -> None:
    message = tmp_path / "one.hl7"
    message.write_text(oru(obx(1, ALT, "42", "U/L")))
    before = cli("map", str(message))
    assert (
        before.exit_code == 0 and "enrolment filter would not pass (not-enrolled)" in before.output
    )
    assert '"resourceType": "Bundle"' in before.output
    ok(*ENROL, "--fhir-url", fhir_url)
    after = ok("map", str(message)).output
    assert "enrolment filter would pass, as DDSC-001" in after and SUBJECT_SYSTEM in after
    explained = ok("explain", str(message)).output
    assert "enrolment filter: would pass, as DDSC-001" in explained


def test_the_subjects_to_score_survive_a_restart(
    fhir_url: str, tmp_path: Path, own_state_store: str
) -> None:
    """What the scores job must recompute is read back from the outbox (sent since its last
    success), so a crash between a push and the scores run loses nothing."""
    from adapter.store.service import ServiceStore

    ok(*ENROL, "--fhir-url", fhir_url)
    push(fhir_url, tmp_path / "feed", oru(obx(1, ALT, "42", "U/L")))
    with open_store(own_state_store) as store:
        service = ServiceStore(store)
        assert service.subjects_sent_since(None) == ["DDSC-001"]
        service.record_run("scores", "test", 1)
        [run] = [r for r in service.job_runs() if r.name == "scores"]
        assert service.subjects_sent_since(run.last_success_at) == []

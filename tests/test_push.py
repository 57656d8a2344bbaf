"""Pushing to a real FHIR server (the local dev server): what research staff would then see."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.config import Settings, load_settings
from adapter.errors import FhirError
from adapter.fhir_client import FhirClient
from adapter.service.summary import PushSummary
from tests.conftest import push_texts
from tests.messages import ALB, ALT, INR, TBIL, obx, oru

LOINC_ALT = "http://loinc.org|1742-6"


@pytest.fixture
def client(fhir_url: str) -> Any:
    with FhirClient(fhir_url, timeout=10, retries=0) as fhir:
        yield fhir


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def push(client: FhirClient, settings: Settings, *messages: str) -> PushSummary:
    return push_texts(client, *messages)


def alt_observations(client: FhirClient) -> list[dict[str, Any]]:
    return client.search("Observation", {"code": LOINC_ALT})


PANEL = oru(
    obx(1, ALT, "42", "U/L", ref="7-56"),
    obx(2, TBIL, "51.3", "umol/L"),
    obx(3, ALB, "28", "g/L"),
    obx(4, INR, "1.4", ""),
)


def test_a_liver_panel_is_found_by_subject_and_loinc_code(
    client: FhirClient, settings: Settings
) -> None:
    summary = push(client, settings, PANEL)
    assert (summary.pushed, summary.observations, summary.errors) == (1, 4, [])
    [patient] = client.search("Patient", {"identifier": "urn:trialbridge:lis-patient:NTCH|MRN001"})
    found = client.search("Observation", {"subject": f"Patient/{patient['id']}", "code": LOINC_ALT})
    assert len(found) == 1 and found[0]["valueQuantity"]["value"] == 42
    [bilirubin] = client.search("Observation", {"code": "http://loinc.org|1975-2"})
    assert bilirubin["valueQuantity"]["value"] == 3.0
    assert bilirubin["valueQuantity"]["code"] == "mg/dL"


def test_pushing_twice_changes_nothing(
    client: FhirClient, settings: Settings, tmp_path: Path
) -> None:
    push(client, settings, PANEL)
    before = {o["id"]: o["meta"]["versionId"] for o in client.search("Observation", {})}
    patients = client.search("Patient", {})
    # Sent again from a store that never saw it (a restored store, another adapter): the
    # inbox cannot recognise it, so the conditional writes are what keep it harmless.
    again = push_texts(client, PANEL, store_url=f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert (again.pushed, again.duplicates) == (1, 0)
    after = {o["id"]: o["meta"]["versionId"] for o in client.search("Observation", {})}
    assert after == before and len(after) == 4
    assert client.search("Patient", {}) == patients


def test_a_final_replaces_its_preliminary(client: FhirClient, settings: Settings) -> None:
    preliminary = oru(obx(1, ALT, "40", "U/L", status="P"), order_status="P", message_id="M1")
    final = oru(obx(1, ALT, "42", "U/L", status="F"), message_id="M2")
    push(client, settings, preliminary, final)
    [observation] = alt_observations(client)
    assert observation["status"] == "final" and observation["valueQuantity"]["value"] == 42


def test_a_correction_updates_the_observation(client: FhirClient, settings: Settings) -> None:
    push(client, settings, oru(obx(1, ALT, "42", "U/L"), message_id="M1"))
    [final] = alt_observations(client)
    push(client, settings, oru(obx(1, ALT, "24", "U/L", status="C"), message_id="M2"))
    [corrected] = alt_observations(client)
    assert corrected["id"] == final["id"]
    assert corrected["status"] == "corrected" and corrected["valueQuantity"]["value"] == 24
    assert int(corrected["meta"]["versionId"]) > int(final["meta"]["versionId"])
    history = client._request("GET", f"{client.base_url}/Observation/{final['id']}/_history")
    assert history["total"] == 2


def test_a_cancelled_result_is_cancelled_not_deleted(
    client: FhirClient, settings: Settings
) -> None:
    push(client, settings, oru(obx(1, ALT, "42", "U/L", status="P"), message_id="M1"))
    push(client, settings, oru(obx(1, ALT, "", "U/L", status="X"), message_id="M2"))
    [observation] = alt_observations(client)
    assert observation["status"] == "cancelled" and "valueQuantity" not in observation
    assert observation["dataAbsentReason"]["coding"][0]["code"] == "not-performed"


def test_the_servers_outcome_is_reported_when_it_refuses(client: FhirClient) -> None:
    bad = {"resourceType": "Observation", "status": "bogus", "code": {"text": "ALT"}}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": bad, "request": {"method": "POST", "url": "Observation"}}],
    }
    with pytest.raises(FhirError) as refused:
        client.transaction(bundle)
    assert refused.value.status == 400
    assert "bogus" in str(refused.value)


def test_push_command_reports_counts_and_refusals(
    fhir_url: str, tmp_path: Path, client: FhirClient, enrol: Callable[..., object]
) -> None:
    enrol()  # MRN001: the patient of tests/messages.py
    (tmp_path / "1.hl7").write_text(PANEL)
    bad_bytes = oru(obx(1, ALT, "42", "U/L"), charset="UNICODE UTF-8", notes=("Hämolyse",))
    (tmp_path / "2.hl7").write_bytes(bad_bytes.replace("MSG0001", "MSG0002").encode("latin-1"))
    (tmp_path / "3.hl7").write_text("not hl7")
    (tmp_path / "4.hl7").write_text(PANEL.replace("MRN001", "MRN999").replace("MSG0001", "M4"))
    result = CliRunner().invoke(main, ["push", str(tmp_path), "--fhir-url", fhir_url, "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
    assert (summary["pushed"], summary["refused"]) == (1, 1)
    assert (summary["dropped"], summary["unattributable"]) == (1, 1)
    assert "is not valid utf-8" in result.output
    assert len(alt_observations(client)) == 1


def test_an_unreachable_server_is_named(tmp_path: Path, enrol: Callable[..., object]) -> None:
    enrol()
    (tmp_path / "1.hl7").write_text(PANEL)
    url = "http://127.0.0.1:9/fhir"
    result = CliRunner().invoke(main, ["push", str(tmp_path), "--fhir-url", url])
    assert result.exit_code == 1
    assert "cannot reach the FHIR server at http://127.0.0.1:9/fhir" in result.output
    assert "Traceback" not in result.output

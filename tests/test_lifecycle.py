"""Status lifecycle across messages, against the real dev FHIR server (DESIGN.md's table)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapter.config import Settings, load_settings
from adapter.fhir_client import FhirClient
from adapter.lifecycle import reconcile
from adapter.service.summary import PushSummary
from tests.conftest import push_texts
from tests.messages import ALT, obx, oru

LOINC_ALT = "http://loinc.org|1742-6"


@pytest.fixture
def client(fhir_url: str) -> Iterator[FhirClient]:
    with FhirClient(fhir_url, timeout=10, retries=0) as fhir:
        yield fhir


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def send(client: FhirClient, settings: Settings, text: str) -> PushSummary:
    return push_texts(client, text)


def alt(client: FhirClient) -> dict[str, Any]:
    [observation] = client.search("Observation", {"code": LOINC_ALT})
    return observation


def message(status: str, value: str, message_id: str) -> str:
    return oru(obx(1, ALT, value, "U/L", status=status), message_id=message_id)


def test_a_preliminary_after_the_final_does_not_overwrite_it(
    client: FhirClient, settings: Settings
) -> None:
    send(client, settings, message("F", "42", "M1"))
    version = alt(client)["meta"]["versionId"]
    summary = send(client, settings, message("P", "40", "M2"))
    assert summary.skipped == 1 and summary.observations == 0
    observation = alt(client)
    assert observation["status"] == "final" and observation["valueQuantity"]["value"] == 42
    assert observation["meta"]["versionId"] == version


def test_u_finalises_the_stored_preliminary_and_keeps_its_value(
    client: FhirClient, settings: Settings
) -> None:
    send(client, settings, message("P", "40", "M1"))
    send(client, settings, message("U", "", "M2"))
    observation = alt(client)
    assert observation["status"] == "final" and observation["valueQuantity"]["value"] == 40


def test_u_with_nothing_stored_is_skipped_not_written(
    client: FhirClient, settings: Settings
) -> None:
    summary = send(client, settings, message("U", "", "M1"))
    assert summary.skipped == 1
    assert client.search("Observation", {"code": LOINC_ALT}) == []


@pytest.mark.parametrize("obx11", ["D", "W"])
def test_entered_in_error_after_a_final(obx11: str, client: FhirClient, settings: Settings) -> None:
    send(client, settings, message("F", "42", "M1"))
    send(client, settings, message(obx11, "", "M2"))
    observation = alt(client)
    assert observation["status"] == "entered-in-error" and "valueQuantity" not in observation
    send(client, settings, message("C", "41", "M3"))  # nothing overrides entered-in-error
    assert alt(client)["status"] == "entered-in-error"


def test_p_f_c_in_order_leaves_one_corrected_observation_with_three_versions(
    client: FhirClient, settings: Settings
) -> None:
    for status, value, message_id in (("P", "40", "M1"), ("F", "42", "M2"), ("C", "24", "M3")):
        send(client, settings, message(status, value, message_id))
    observation = alt(client)
    assert observation["status"] == "corrected" and observation["valueQuantity"]["value"] == 24
    assert observation["meta"]["versionId"] == "3"


def test_the_same_order_twice_in_one_message_keeps_the_latest(
    client: FhirClient, settings: Settings
) -> None:
    text = oru(obx(1, ALT, "40", "U/L"), obx(2, ALT, "44", "U/L"))
    summary = send(client, settings, text)
    assert summary.errors == [] and summary.observations == 1
    assert alt(client)["valueQuantity"]["value"] == 44


def test_reconcile_is_pure_and_leaves_its_input_alone() -> None:
    observation = {
        "resourceType": "Observation",
        "identifier": [{"system": "s", "value": "v"}],
        "status": "preliminary",
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": observation}]}
    stored = {"v": {**observation, "status": "final"}}
    sent, skipped = reconcile(bundle, stored)
    assert sent["entry"] == [] and skipped[0].identifier == "v"
    assert bundle["entry"] == [{"resource": observation}]

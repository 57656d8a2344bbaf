"""Stage "build": the Observation and Patient a result becomes, and the transaction Bundle."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
import simplejson
from fhir.resources.R4B.bundle import Bundle

from adapter.build import _UUID_NAMESPACE, build_transaction, search_token, uuid5
from adapter.config import Identifiers
from adapter.mapping import map_report
from adapter.mappings import load_mappings
from adapter.parse import parse_bytes
from tests.messages import ALT, TBIL, obx, oru

IDS = Identifiers(result="urn:test:result", patient="urn:test:patient", local_code="urn:test:code")


def transaction(text: str) -> dict[str, Any]:
    [parsed] = parse_bytes(text.encode())
    assert parsed.report is not None
    return build_transaction(
        map_report(parsed.report, load_mappings(), default_offset="+08:00"), IDS
    )


def observations(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]


def test_the_bundle_is_a_valid_r4_transaction_with_conditional_writes() -> None:
    bundle = transaction(oru(obx(1, ALT, "42", "U/L"), obx(2, TBIL, "51.3", "umol/L")))
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    patient, *results = bundle["entry"]
    assert patient["request"]["method"] == "POST"
    assert patient["request"]["ifNoneExist"].startswith("identifier=urn%3Atest%3Apatient")
    assert [e["request"]["method"] for e in results] == ["PUT", "PUT"]
    assert all(e["request"]["url"].startswith("Observation?identifier=") for e in results)
    assert all(e["resource"]["subject"]["reference"] == patient["fullUrl"] for e in results)


def test_the_patient_placeholder_holds_only_the_lis_identifier() -> None:
    patient = transaction(oru(obx(1, ALT, "42", "U/L")))["entry"][0]["resource"]
    assert patient == {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:patient:NTCH", "value": "MRN001"}],
    }


def test_identity_is_order_code_and_sub_id_not_time_or_message() -> None:
    first = observations(transaction(oru(obx(1, ALT, "42", "U/L", status="P"), message_id="A")))
    final = observations(
        transaction(oru(obx(1, ALT, "40", "U/L", observed="20240116"), message_id="B"))
    )
    assert first[0]["identifier"] == final[0]["identifier"]
    assert first[0]["identifier"][0]["value"] == "240115-0001^NTC-LIS/ALT^L/1"
    other_sub_id = observations(transaction(oru(obx(1, ALT, "40", "U/L", sub_id="2"))))
    assert other_sub_id[0]["identifier"] != first[0]["identifier"]


def test_observation_content() -> None:
    text = oru(
        obx(1, TBIL, "51.3", "µmol/L", ref="3.4-20.5", flags="H"),
        "NTE|1||sample slightly haemolysed",
        notes=("fasting",),
    )
    [observation] = observations(transaction(text))
    assert observation["status"] == "final"
    assert observation["category"][0]["coding"][0]["code"] == "laboratory"
    codings = observation["code"]["coding"]
    assert codings[0]["system"] == "http://loinc.org" and codings[0]["code"] == "1975-2"
    assert codings[1] == {
        "system": "urn:test:code:NTC-LIS:L",
        "code": "TBIL",
        "display": "Total bilirubin",
    }
    quantity = observation["valueQuantity"]
    assert simplejson.dumps(quantity["value"], use_decimal=True) == "3.00"
    assert quantity["system"] == "http://unitsofmeasure.org" and quantity["code"] == "mg/dL"
    [sent] = observation["extension"]
    assert (
        sent["valueQuantity"]["value"] == Decimal("51.3")
        and sent["valueQuantity"]["code"] == "umol/L"
    )
    assert observation["referenceRange"][0]["text"] == "3.4-20.5"
    assert observation["referenceRange"][0]["high"]["code"] == "mg/dL"
    assert observation["interpretation"][0]["coding"][0]["code"] == "H"
    assert [n["text"] for n in observation["note"]] == ["sample slightly haemolysed", "fasting"]
    assert observation["effectiveDateTime"] == "2024-01-15T08:30:00+08:00"
    assert observation["issued"] == "2024-01-15T09:30:00+08:00"


def test_a_cancelled_result_says_why_it_has_no_value() -> None:
    [observation] = observations(transaction(oru(obx(1, ALT, "", "U/L", status="X"))))
    assert observation["status"] == "cancelled" and "valueQuantity" not in observation
    assert observation["dataAbsentReason"]["coding"][0]["code"] == "not-performed"


def test_building_is_deterministic() -> None:
    text = oru(obx(1, ALT, "42", "U/L"))
    assert transaction(text) == transaction(text)


@pytest.mark.parametrize(
    ("value", "escaped"),
    [("a|b", "a\\|b"), ("a,b", "a\\,b"), ("a$b", "a\\$b"), ("a\\b", "a\\\\b")],
)
def test_search_tokens_escape_fhir_search_characters(value: str, escaped: str) -> None:
    from urllib.parse import unquote

    assert unquote(search_token("urn:x", value)) == f"urn:x|{escaped}"


@pytest.mark.parametrize("name", ["", "identifier=urn%3Aa%7Cb", "ResearchStudy?x", "é/中|\\"])
def test_uuid5_is_the_standard_name_based_uuid(name: str) -> None:
    assert uuid5(name) == str(uuid.uuid5(_UUID_NAMESPACE, name))

"""The local FHIR R4 dev server, exercised over real HTTP."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from adapter.dev_fhir import DevFhirServer
from adapter.errors import DevServerError

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
LAB = "urn:oid:2.16.840.1.113883.3.9999.1"  # a made-up lab's filler order numbers
SUBJECTS = "urn:trialbridge:subject"
ALT, AST, ALB = "1742-6", "1920-8", "1751-7"

Json = dict[str, Any]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update({"Accept": FHIR_JSON, "Content-Type": FHIR_JSON})
        yield session


def patient(subject_number: str, **extra: Any) -> Json:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SUBJECTS, "value": subject_number}],
        **extra,
    }


def observation(
    filler: str,
    code: str = ALT,
    *,
    subject: str | None = None,
    when: str = "2024-01-10T08:30:00+08:00",
    value: float = 42.0,
    status: str = "final",
) -> Json:
    obs: Json = {
        "resourceType": "Observation",
        "identifier": [{"system": LAB, "value": filler}],
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": "U/L",
            "system": "http://unitsofmeasure.org",
            "code": "U/L",
        },
    }
    if subject:
        obs["subject"] = {"reference": subject}
    return obs


def create(http: requests.Session, base: str, resource: Json) -> Json:
    response = http.post(f"{base}/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


def search(http: requests.Session, base: str, query: str) -> Json:
    response = http.get(f"{base}/{query}")
    assert response.status_code == 200, response.text
    bundle: Json = response.json()
    assert bundle["type"] == "searchset"
    return bundle


def ids(bundle: Json, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def issue_texts(outcome: Json) -> str:
    assert outcome["resourceType"] == "OperationOutcome"
    return " | ".join(i.get("details", {}).get("text", "") for i in outcome["issue"])


def transaction(*entries: Json, kind: str = "transaction") -> Json:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


# -- capability, errors ---------------------------------------------------------------------------


def test_metadata_is_an_r4_capability_statement(http: requests.Session, fhir_url: str) -> None:
    response = http.get(f"{fhir_url}/metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    assert {i["code"] for i in rest["interaction"]} >= {"transaction", "batch"}
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {"Observation", "Patient", "ResearchSubject", "ResearchStudy", "Provenance"} <= set(
        by_type
    )
    assert "Project" not in by_type  # Medplum-only types are not offered
    observation_caps = by_type["Observation"]
    assert {i["code"] for i in observation_caps["interaction"]} >= {
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    }
    assert observation_caps["conditionalUpdate"] is True
    assert {"identifier", "subject", "date", "code"} <= {
        p["name"] for p in observation_caps["searchParam"]
    }


def test_required_code_binding_is_enforced(http: requests.Session, fhir_url: str) -> None:
    response = http.post(f"{fhir_url}/Observation", json=observation("F1", status="bogus"))
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    outcome = response.json()
    text = issue_texts(outcome)
    assert "Observation.status" in text and '"bogus"' in text
    assert outcome["issue"][0]["expression"] == ["Observation.status"]
    assert search(http, fhir_url, "Observation")["total"] == 0


@pytest.mark.parametrize(
    ("resource", "element", "code"),
    [
        (patient("S-01", gender="M"), "Patient.gender", "M"),
        (
            {
                "resourceType": "ResearchSubject",
                "status": "enrolled",
                "study": {"reference": "ResearchStudy/x"},
                "individual": {"reference": "Patient/y"},
            },
            "ResearchSubject.status",
            "enrolled",
        ),
        (
            {**observation("F2"), "valueQuantity": {"value": 0.5, "comparator": "<<"}},
            "comparator",
            "<<",
        ),
    ],
)
def test_other_required_bindings(
    http: requests.Session, fhir_url: str, resource: Json, element: str, code: str
) -> None:
    response = http.post(f"{fhir_url}/{resource['resourceType']}", json=resource)
    assert response.status_code == 400
    text = issue_texts(response.json())
    assert element in text and f'"{code}"' in text


def test_valid_codes_pass(http: requests.Session, fhir_url: str) -> None:
    create(http, fhir_url, patient("S-02", gender="female"))
    create(
        http, fhir_url, {**observation("F3"), "valueQuantity": {"value": 0.5, "comparator": "<"}}
    )


def test_structurally_invalid_resources_are_rejected(http: requests.Session, fhir_url: str) -> None:
    unknown_property = {**observation("F4"), "colour": "red"}
    response = http.post(f"{fhir_url}/Observation", json=unknown_property)
    assert response.status_code == 400
    assert "colour" in issue_texts(response.json())

    missing_code = observation("F5")
    del missing_code["code"]
    response = http.post(f"{fhir_url}/Observation", json=missing_code)
    assert response.status_code == 400
    assert "code" in issue_texts(response.json())

    wrong_type = {**observation("F6"), "effectiveDateTime": 20240110}
    assert http.post(f"{fhir_url}/Observation", json=wrong_type).status_code == 400


def test_errors_are_operation_outcomes(http: requests.Session, fhir_url: str) -> None:
    malformed = http.post(f"{fhir_url}/Observation", data='{"resourceType": "Observation",')
    assert malformed.status_code == 400
    assert "Malformed" in issue_texts(malformed.json())

    cases = [
        (http.get(f"{fhir_url}/Observation/does-not-exist"), 404),
        (http.get(f"{fhir_url}/NoSuchType/1"), 404),
        (http.get(f"{fhir_url}/Observation?no-such-param=1"), 400),
        (http.post(f"{fhir_url}/Observation", json=patient("S-03")), 400),
        (http.get(fhir_url.removesuffix("/fhir") + "/elsewhere"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"].startswith(FHIR_JSON)
        assert response.json()["resourceType"] == "OperationOutcome"


# -- instance interactions ----------------------------------------------------------------------


def test_create_read_vread_with_etag_and_location(http: requests.Session, fhir_url: str) -> None:
    response = http.post(f"{fhir_url}/Patient", json={**patient("S-10"), "id": "ignored"})
    assert response.status_code == 201
    created = response.json()
    pid = created["id"]
    assert pid != "ignored"  # like HAPI, create assigns the id
    assert created["meta"]["versionId"] == "1"
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"] == f"{fhir_url}/Patient/{pid}/_history/1"

    read = http.get(f"{fhir_url}/Patient/{pid}")
    assert read.status_code == 200
    assert read.headers["ETag"] == 'W/"1"'
    assert read.json() == created
    vread = http.get(f"{fhir_url}/Patient/{pid}/_history/1")
    assert vread.status_code == 200 and vread.json() == created
    assert http.get(f"{fhir_url}/Patient/{pid}/_history/9").status_code == 404


def test_update_versions_and_unchanged_update_keeps_version(
    http: requests.Session, fhir_url: str
) -> None:
    created = create(http, fhir_url, observation("F10", subject="Patient/p1"))
    oid = created["id"]

    changed = {**created, "valueQuantity": {**created["valueQuantity"], "value": 43.0}}
    response = http.put(f"{fhir_url}/Observation/{oid}", json=changed)
    assert response.status_code == 200
    assert response.headers["ETag"] == 'W/"2"'
    assert response.headers["Location"] == f"{fhir_url}/Observation/{oid}/_history/2"
    v2 = response.json()

    # Same content, stale meta and another key order: no new version, same lastUpdated.
    same = {
        "meta": {"versionId": "1", "lastUpdated": "2000-01-01T00:00:00Z"},
        **{k: v for k, v in reversed(list(changed.items())) if k != "meta"},
    }
    response = http.put(f"{fhir_url}/Observation/{oid}", json=same)
    assert response.status_code == 200
    assert response.json()["meta"] == v2["meta"]
    assert response.headers["ETag"] == 'W/"2"'

    history = http.get(f"{fhir_url}/Observation/{oid}/_history").json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert history["total"] == 2


def test_update_can_create_and_checks_if_match(http: requests.Session, fhir_url: str) -> None:
    new = {**patient("S-11"), "id": "subject-11"}
    response = http.put(f"{fhir_url}/Patient/subject-11", json=new)
    assert response.status_code == 201
    assert response.headers["ETag"] == 'W/"1"'

    stale = http.put(
        f"{fhir_url}/Patient/subject-11",
        json={**new, "gender": "male"},
        headers={"If-Match": 'W/"7"'},
    )
    assert stale.status_code == 412
    fresh = http.put(
        f"{fhir_url}/Patient/subject-11",
        json={**new, "gender": "male"},
        headers={"If-Match": 'W/"1"'},
    )
    assert fresh.status_code == 200 and fresh.headers["ETag"] == 'W/"2"'

    mismatch = http.put(f"{fhir_url}/Patient/other", json=new)
    assert mismatch.status_code == 400


def test_delete_and_history(http: requests.Session, fhir_url: str) -> None:
    first = create(http, fhir_url, observation("F20"))
    second = create(http, fhir_url, observation("F21"))
    http.put(f"{fhir_url}/Observation/{first['id']}", json={**first, "status": "amended"})

    response = http.delete(f"{fhir_url}/Observation/{first['id']}")
    assert response.status_code == 200
    assert http.get(f"{fhir_url}/Observation/{first['id']}").status_code == 410
    assert http.delete(f"{fhir_url}/Observation/{first['id']}").status_code == 200  # idempotent
    assert http.delete(f"{fhir_url}/Observation/never-was").status_code == 404
    assert search(http, fhir_url, "Observation")["total"] == 1

    instance = http.get(f"{fhir_url}/Observation/{first['id']}/_history").json()
    methods = [e["request"]["method"] for e in instance["entry"]]
    assert methods == ["DELETE", "PUT", "POST"]
    assert "resource" not in instance["entry"][0]
    assert instance["entry"][0]["response"]["etag"] == 'W/"3"'

    type_level = http.get(f"{fhir_url}/Observation/_history").json()
    assert type_level["total"] == 4
    assert {e["fullUrl"].rsplit("/", 1)[1] for e in type_level["entry"]} == {
        first["id"],
        second["id"],
    }
    assert http.get(f"{fhir_url}/Patient/_history").json()["total"] == 0
    assert http.get(f"{fhir_url}/_history").json()["total"] == 4


# -- conditional interactions ---------------------------------------------------------------------


def test_conditional_create(http: requests.Session, fhir_url: str) -> None:
    condition = {"If-None-Exist": f"identifier={SUBJECTS}|S-30"}
    first = http.post(f"{fhir_url}/Patient", json=patient("S-30"), headers=condition)
    assert first.status_code == 201
    again = http.post(f"{fhir_url}/Patient", json=patient("S-30"), headers=condition)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]

    create(http, fhir_url, patient("S-30"))  # a second one, made without the condition
    many = http.post(f"{fhir_url}/Patient", json=patient("S-30"), headers=condition)
    assert many.status_code == 412
    assert search(http, fhir_url, "Patient")["total"] == 2


def test_conditional_update(http: requests.Session, fhir_url: str) -> None:
    url = f"{fhir_url}/Observation?identifier={quote(f'{LAB}|F40')}"
    first = http.put(url, json=observation("F40", status="preliminary"))
    assert first.status_code == 201
    oid = first.json()["id"]

    final = http.put(url, json=observation("F40", status="final"))
    assert final.status_code == 200
    assert final.json()["id"] == oid
    assert final.headers["ETag"] == 'W/"2"'

    replay = http.put(url, json=observation("F40", status="final"))
    assert replay.status_code == 200
    assert replay.headers["ETag"] == 'W/"2"'  # replaying is harmless

    create(http, fhir_url, observation("F40"))
    assert http.put(url, json=observation("F40")).status_code == 412


# -- transactions and batches ---------------------------------------------------------------------


def lab_transaction(subject_number: str, fillers: list[str], patient_url: str) -> Json:
    entries: list[Json] = [
        {
            "fullUrl": patient_url,
            "resource": patient(subject_number),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={SUBJECTS}|{subject_number}",
            },
        }
    ]
    for filler in fillers:
        entries.append(
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{abs(hash(filler)) % 10**12:012d}",
                "resource": observation(filler, subject=patient_url),
                "request": {"method": "PUT", "url": f"Observation?identifier={LAB}|{filler}"},
            }
        )
    return transaction(*entries)


def test_transaction_resolves_references_and_reports_each_entry(
    http: requests.Session, fhir_url: str
) -> None:
    patient_url = "urn:uuid:6f1f5e9a-3c0b-4f7e-9a55-0d6c3c1f7a11"
    bundle = lab_transaction("S-50", ["F50", "F51", "F52"], patient_url)
    # The Observations come before the Patient they reference.
    bundle["entry"] = bundle["entry"][1:] + bundle["entry"][:1]
    response = http.post(fhir_url, json=bundle)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created"] * 4
    for entry in result["entry"]:
        assert entry["response"]["etag"] == 'W/"1"'
        assert entry["response"]["location"].endswith("/_history/1")
    patient_id = result["entry"][3]["response"]["location"].split("/")[1]

    found = search(http, fhir_url, f"Observation?subject=Patient/{patient_id}")
    assert found["total"] == 3

    # Replaying the same transaction creates nothing and changes no version.
    again = http.post(fhir_url, json=bundle).json()
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 4
    assert [e["response"]["etag"] for e in again["entry"]] == ['W/"1"'] * 4
    assert search(http, fhir_url, "Observation")["total"] == 3
    assert search(http, fhir_url, "Patient")["total"] == 1


def test_transaction_is_all_or_nothing(http: requests.Session, fhir_url: str) -> None:
    existing = create(http, fhir_url, observation("F60", status="preliminary"))
    bundle = lab_transaction(
        "S-60", ["F60", "F61"], "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    )
    bundle["entry"][1]["resource"]["status"] = "final"  # would update F60
    bundle["entry"].append(
        {
            "resource": observation("F62", status="bogus"),
            "request": {"method": "POST", "url": "Observation"},
        }
    )
    response = http.post(fhir_url, json=bundle)
    assert response.status_code == 400
    outcome = response.json()
    text = issue_texts(outcome)
    assert "Bundle.entry[3]" in text and '"bogus"' in text
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[3].resource.status"]

    # Nothing of it stayed: no Patient, no new Observation, F60 still version 1 preliminary.
    assert search(http, fhir_url, "Patient")["total"] == 0
    assert search(http, fhir_url, "Observation")["total"] == 1
    stored = http.get(f"{fhir_url}/Observation/{existing['id']}").json()
    assert stored == existing
    history = http.get(f"{fhir_url}/Observation/{existing['id']}/_history").json()
    assert history["total"] == 1
    assert http.get(f"{fhir_url}/_history").json()["total"] == 1


def test_transaction_failures_keep_their_status(http: requests.Session, fhir_url: str) -> None:
    create(http, fhir_url, observation("F70"))
    create(http, fhir_url, observation("F70"))
    bundle = lab_transaction("S-70", ["F70"], "urn:uuid:2b4e28ba-2fa1-11d2-883f-0016d3cca427")
    response = http.post(fhir_url, json=bundle)
    assert response.status_code == 412
    assert "Bundle.entry[1]" in issue_texts(response.json())
    assert search(http, fhir_url, "Patient")["total"] == 0

    dangling = transaction(
        {
            "resource": observation("F71", subject="urn:uuid:3b4e28ba-2fa1-11d2-883f-0016d3cca427"),
            "request": {"method": "POST", "url": "Observation"},
        }
    )
    response = http.post(fhir_url, json=dangling)
    assert response.status_code == 400
    assert "urn:uuid:3b4e28ba" in issue_texts(response.json())


def test_transaction_beyond_medplum_limits(http: requests.Session, fhir_url: str) -> None:
    fillers = [f"F8{i:02d}" for i in range(60)]  # 60 conditional PUTs + 1 conditional POST
    bundle = lab_transaction("S-80", fillers, "urn:uuid:4b4e28ba-2fa1-11d2-883f-0016d3cca427")
    response = http.post(fhir_url, json=bundle)
    assert response.status_code == 200, response.text
    assert search(http, fhir_url, "Observation?_count=0")["total"] == 60


def test_transaction_runs_entries_in_fhir_order(http: requests.Session, fhir_url: str) -> None:
    old = create(http, fhir_url, patient("S-90"))
    bundle = transaction(
        {"request": {"method": "GET", "url": f"Patient?identifier={SUBJECTS}|S-91"}},
        {
            "fullUrl": "urn:uuid:5b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "resource": patient("S-91"),
            "request": {"method": "POST", "url": "Patient"},
        },
        {"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}},
        {
            "resource": observation("F90", subject="Patient?identifier=" + f"{SUBJECTS}|S-90"),
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    # The conditional reference names a Patient this very transaction deletes first.
    response = http.post(fhir_url, json=bundle)
    assert response.status_code == 400
    assert "matches no resource" in issue_texts(response.json())
    assert http.get(f"{fhir_url}/Patient/{old['id']}").status_code == 200  # rolled back

    del bundle["entry"][3]
    result = http.post(fhir_url, json=bundle).json()
    searched = result["entry"][0]["resource"]
    assert searched["total"] == 1  # the GET ran after the POST
    assert [e["response"]["status"].split()[0] for e in result["entry"]] == ["200", "201", "200"]


def test_batch_reports_each_entry(http: requests.Session, fhir_url: str) -> None:
    bundle = transaction(
        {"resource": observation("F100"), "request": {"method": "POST", "url": "Observation"}},
        {
            "resource": observation("F101", status="bogus"),
            "request": {"method": "POST", "url": "Observation"},
        },
        {
            "resource": observation("F100"),
            "request": {"method": "PUT", "url": f"Observation?identifier={LAB}|F100"},
        },
        {"request": {"method": "GET", "url": "Observation/missing"}},
        kind="batch",
    )
    response = http.post(fhir_url, json=bundle)
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in result["entry"]]
    assert statuses == ["201", "400", "200", "404"]
    assert '"bogus"' in issue_texts(result["entry"][1]["response"]["outcome"])
    assert search(http, fhir_url, "Observation")["total"] == 1


def test_bad_bundles_are_rejected(http: requests.Session, fhir_url: str) -> None:
    for bundle in (
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        {"resourceType": "Patient"},
        transaction({"resource": patient("S-1"), "request": {"method": "FETCH", "url": "Patient"}}),
    ):
        response = http.post(fhir_url, json=bundle)
        assert response.status_code == 400, bundle
        assert response.json()["resourceType"] == "OperationOutcome"


# -- search ---------------------------------------------------------------------------------------


@pytest.fixture
def labs(http: requests.Session, fhir_url: str) -> dict[str, str]:
    """Two subjects with a few results each; returns names -> ids."""
    p1 = create(http, fhir_url, patient("S-200"))["id"]
    p2 = create(http, fhir_url, patient("S-201"))["id"]
    made = {"p1": p1, "p2": p2}
    rows = [
        ("o1", "F201", ALT, p1, "2024-01-10T08:00:00+08:00"),
        ("o2", "F202", AST, p1, "2024-02-10T08:00:00+08:00"),
        ("o3", "F203", ALT, p1, "2024-03-10T08:00:00+08:00"),
        ("o4", "F204", ALT, p2, "2024-01-20T08:00:00Z"),
        ("o5", "F205", ALB, p2, "2024-02-20"),
    ]
    for name, filler, code, subject, when in rows:
        made[name] = create(
            http, fhir_url, observation(filler, code, subject=f"Patient/{subject}", when=when)
        )["id"]
    return made


def test_search_by_reference_code_identifier_and_id(
    http: requests.Session, fhir_url: str, labs: dict[str, str]
) -> None:
    p1 = labs["p1"]
    assert sorted(ids(search(http, fhir_url, f"Observation?subject=Patient/{p1}"))) == sorted(
        [labs["o1"], labs["o2"], labs["o3"]]
    )
    assert len(ids(search(http, fhir_url, f"Observation?patient={p1}"))) == 3
    assert set(ids(search(http, fhir_url, f"Observation?code={LOINC}|{ALT}"))) == {
        labs["o1"],
        labs["o3"],
        labs["o4"],
    }
    assert ids(
        search(http, fhir_url, f"Observation?code={LOINC}|{ALT}&subject=Patient/{labs['p2']}")
    ) == [labs["o4"]]
    assert ids(search(http, fhir_url, f"Observation?identifier={LAB}|F202")) == [labs["o2"]]
    assert ids(search(http, fhir_url, f"Observation?identifier={LAB}|nope")) == []
    assert ids(search(http, fhir_url, f"Observation?_id={labs['o5']}")) == [labs["o5"]]
    assert ids(search(http, fhir_url, f"Patient?identifier={SUBJECTS}|S-201")) == [labs["p2"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("date=2024-02-10", ["o2"]),
        ("date=eq2024-02", ["o2", "o5"]),
        ("date=ge2024-02-10", ["o2", "o3", "o5"]),
        ("date=gt2024-02-10", ["o3", "o5"]),
        ("date=le2024-01-20", ["o1", "o4"]),
        ("date=lt2024-01-20T08:00:00Z", ["o1"]),
        ("date=ge2024-01-15&date=lt2024-03-01", ["o2", "o4", "o5"]),
    ],
)
def test_search_by_date(
    http: requests.Session, fhir_url: str, labs: dict[str, str], query: str, expected: list[str]
) -> None:
    found = ids(search(http, fhir_url, f"Observation?{query}"))
    assert sorted(found) == sorted(labs[name] for name in expected)


def test_search_sort(http: requests.Session, fhir_url: str, labs: dict[str, str]) -> None:
    newest_first = ids(search(http, fhir_url, "Observation?_sort=-date"))
    # o4 is 2024-01-20T08:00Z, i.e. after o1 (2024-01-10T00:00Z), whatever the offsets.
    assert newest_first == [labs[n] for n in ("o3", "o5", "o2", "o4", "o1")]
    oldest_first = ids(search(http, fhir_url, "Observation?_sort=date"))
    assert oldest_first == list(reversed(newest_first))
    by_code_then_date = ids(search(http, fhir_url, "Observation?_sort=code,-date"))
    assert by_code_then_date == [labs[n] for n in ("o3", "o4", "o1", "o5", "o2")]


def test_search_include_and_revinclude(
    http: requests.Session, fhir_url: str, labs: dict[str, str]
) -> None:
    bundle = search(http, fhir_url, f"Observation?code={LOINC}|{AST}&_include=Observation:subject")
    assert ids(bundle) == [labs["o2"]]
    assert ids(bundle, "include") == [labs["p1"]]
    assert bundle["total"] == 1

    bundle = search(http, fhir_url, f"Patient?_id={labs['p2']}&_revinclude=Observation:subject")
    assert ids(bundle) == [labs["p2"]]
    assert sorted(ids(bundle, "include")) == sorted([labs["o4"], labs["o5"]])


def test_search_paging_links_work(
    http: requests.Session, fhir_url: str, labs: dict[str, str]
) -> None:
    page = search(http, fhir_url, "Observation?_sort=date&_count=2")
    assert page["total"] == 5
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen += ids(page)
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert links["self"].startswith(fhir_url)
        if pages > 1:
            assert "previous" in links
        if "next" not in links:
            break
        page = http.get(links["next"]).json()
        assert page["total"] == 5
    assert pages == 3
    assert seen == [labs[n] for n in ("o1", "o4", "o2", "o5", "o3")]
    back = http.get(links["previous"]).json()
    assert ids(back) == [labs["o2"], labs["o5"]]
    for entry in back["entry"]:
        assert entry["fullUrl"] == f"{fhir_url}/Observation/{entry['resource']['id']}"


def test_identifier_search_with_one_or_several_tokens(
    http: requests.Session, fhir_url: str
) -> None:
    """Answered from the identifier index (speed is measured by `make bench`, not here):
    one token, several joined by "," (OR), and unknown ones give exactly the right matches."""
    n = 300
    entries = [
        {"resource": observation(f"P{i:04d}"), "request": {"method": "POST", "url": "Observation"}}
        for i in range(n)
    ]
    assert http.post(fhir_url, json=transaction(*entries)).status_code == 200

    def found(query: str) -> list[str]:
        bundle = search(http, fhir_url, f"Observation?identifier={query}&_count=500")
        return sorted(e["resource"]["identifier"][0]["value"] for e in bundle.get("entry", []))

    assert found(f"{LAB}|P0007") == ["P0007"]
    assert found(f"{LAB}|P0007,{LAB}|P0123,{LAB}|P0299") == ["P0007", "P0123", "P0299"]
    assert found(f"{LAB}|P0007,{LAB}|NOPE") == ["P0007"]
    assert found("urn:other|P0007") == []


# -- dev endpoints and persistence ----------------------------------------------------------------


def test_reset_empties_the_store(
    http: requests.Session, fhir_url: str, dev_fhir_server: DevFhirServer
) -> None:
    create(http, fhir_url, patient("S-300"))
    dev_fhir_server.reset()
    assert search(http, fhir_url, "Patient")["total"] == 0
    assert http.get(f"{fhir_url}/_history").json()["total"] == 0


def test_data_file_survives_restart(http: requests.Session, tmp_path: Path) -> None:
    data = tmp_path / "store.json"
    with DevFhirServer(data=data) as server:
        created = create(http, server.base_url, patient("S-400"))
        updated = http.put(
            f"{server.base_url}/Patient/{created['id']}", json={**created, "gender": "female"}
        ).json()
    assert data.exists()
    with DevFhirServer(data=data) as server:
        assert http.get(f"{server.base_url}/Patient/{created['id']}").json() == updated
        history = http.get(f"{server.base_url}/Patient/{created['id']}/_history").json()
        assert history["total"] == 2
        again = http.put(
            f"{server.base_url}/Patient/{created['id']}", json={**updated, "gender": "male"}
        )
        assert again.headers["ETag"] == 'W/"3"'


def test_identifier_search_follows_updates_deletes_and_rollbacks(
    http: requests.Session, fhir_url: str
) -> None:
    def found(filler: str) -> list[str]:
        return ids(search(http, fhir_url, f"Observation?identifier={LAB}|{filler}"))

    created = create(http, fhir_url, observation("I1"))
    oid = created["id"]
    renamed = {**created, "identifier": [{"system": LAB, "value": "I2"}]}
    assert http.put(f"{fhir_url}/Observation/{oid}", json=renamed).status_code == 200
    assert found("I1") == [] and found("I2") == [oid]

    failing = transaction(
        {
            "resource": {**renamed, "identifier": [{"system": LAB, "value": "I3"}]},
            "request": {"method": "PUT", "url": f"Observation/{oid}"},
        },
        {
            "resource": observation("I4", status="bogus"),
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    assert http.post(fhir_url, json=failing).status_code == 400
    assert found("I3") == [] and found("I2") == [oid]

    assert http.delete(f"{fhir_url}/Observation/{oid}").status_code == 200
    assert found("I2") == []
    # The index is a shortcut only: other filters still apply.
    create(http, fhir_url, observation("I5", AST))
    assert found("I5") != []
    assert ids(search(http, fhir_url, f"Observation?identifier={LAB}|I5&code={LOINC}|{ALT}")) == []


# -- launcher and command line --------------------------------------------------------------------


def test_missing_node_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevServerError, match="`node` was not found"):
        DevFhirServer().start()


def test_cli_runs_in_the_foreground_until_sigterm(http: requests.Session, tmp_path: Path) -> None:
    data = tmp_path / "sub" / "store.json"
    command = [sys.executable, "-c", "from adapter.cli import main; main()", "dev-fhir"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--data", str(data), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        stdout = process.stdout
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        ready = lines.get(timeout=60)
        match = re.fullmatch(r"dev-fhir ready on (http://127\.0\.0\.1:\d+/fhir)\n", ready)
        assert match, ready
        base = match.group(1)
        assert http.get(f"{base}/metadata").status_code == 200
        create(http, base, patient("S-500"))

        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "S-500" in data.read_text()
        with pytest.raises(requests.ConnectionError):
            http.get(f"{base}/metadata", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_subject_search_finds_exactly_the_subjects_results(
    http: requests.Session, fhir_url: str
) -> None:
    """Answered from the subject index, with Medplum's matcher applying every filter."""
    patient_id = create(http, fhir_url, patient("S-900"))["id"]
    other_id = create(http, fhir_url, patient("S-901"))["id"]
    create(http, fhir_url, observation("R1", subject=f"Patient/{patient_id}"))
    create(http, fhir_url, observation("R2", subject=f"Patient/{patient_id}", code="1920-8"))
    create(http, fhir_url, observation("R3", subject=f"Patient/{other_id}"))

    def found(query: str) -> list[str]:
        bundle = search(http, fhir_url, f"Observation?{query}")
        return sorted(e["resource"]["identifier"][0]["value"] for e in bundle.get("entry", []))

    assert found(f"subject=Patient/{patient_id}") == ["R1", "R2"]
    assert found(f"subject=Patient/{patient_id}&code={LOINC}|{ALT}") == ["R1"]
    assert found(f"subject=Patient/{other_id}") == ["R3"]

"""Stage "build": a mapped report -> one FHIR R4 transaction Bundle.

Pure: the Bundle is a JSON-ready dict (decimals stay ``Decimal`` so no float artefacts reach
the wire). Each resource is checked against ``fhir.resources.R4B`` before it is returned, and
codes that library does not check (Observation.status, Bundle.type) come from fixed tables.

Writes are conditional, so replaying a message changes nothing: the Patient is created only
if its identifier is unknown (``ifNoneExist``) and each Observation is updated in place by
its identifier (``PUT Observation?identifier=...``).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from adapter.build.observation import build_observation, result_identifier
from adapter.build.patient import build_patient
from adapter.config import Identifiers
from adapter.errors import MappingError
from adapter.mapping import MappedReport

__all__ = ["build_transaction", "result_identifier", "search_token"]

_UUID_NAMESPACE = uuid.UUID("7f1c9f7e-6c1b-4f0e-9d64-5a6f7d1e2b30")


def search_token(system: str, value: str) -> str:
    """A ``system|value`` token for a search URL, escaped as FHIR search requires."""
    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,")
    escaped = escaped.replace("$", "\\$")
    return quote(f"{system}|{escaped}", safe="")


def build_transaction(mapped: MappedReport, ids: Identifiers) -> dict[str, Any]:
    """The transaction Bundle for one report: its Patient and an Observation per result."""
    report = mapped.report
    patient = build_patient(report, ids)
    patient_token = _token(patient)
    patient_url = _urn(patient_token)
    entries = [
        {
            "fullUrl": patient_url,
            "resource": _checked(Patient, patient, report.message_id, "PID"),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": _query(patient_token)},
        }
    ]
    observations: dict[str, dict[str, Any]] = {}
    for result in mapped.results:
        observation = build_observation(result, report, patient_url, ids)
        token = _token(observation)
        # The same order repeated in one message: the latest occurrence wins.
        observations[token] = {
            "fullUrl": _urn(token),
            "resource": _checked(
                Observation, observation, report.message_id, result.result.location
            ),
            "request": {"method": "PUT", "url": f"Observation?{_query(token)}"},
        }
    entries.extend(observations.values())
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    _checked(Bundle, bundle, report.message_id, "MSH")
    return bundle


def _token(resource: dict[str, Any]) -> str:
    identifier = resource["identifier"][0]
    return search_token(identifier["system"], identifier["value"])


def _query(token: str) -> str:
    return f"identifier={token}"


def _urn(token: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, token)}"


def _checked(
    model: Any, resource: dict[str, Any], message_id: str, location: str
) -> dict[str, Any]:
    """Validate against the R4B model; the dict (with exact decimals) is what is sent."""
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        raise MappingError(
            f"the {resource['resourceType']} built from it is not valid FHIR R4: "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}",
            message_id=message_id,
            location=location,
            hint="this is a TrialBridge bug: report it with the message",
        ) from exc
    return resource

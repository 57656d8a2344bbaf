"""Stage "build": a mapped report -> one FHIR R4 transaction Bundle.

Pure: the Bundle is a JSON-ready dict (decimals stay ``Decimal`` so no float artefacts reach
the wire). Each resource is checked against ``fhir.resources.R4B`` before it is returned, and
codes that library does not check (Observation.status, Bundle.type) come from fixed tables.

Writes are conditional, so replaying a message changes nothing: the Patient is created only
if its identifier is unknown (``ifNoneExist``), each Observation is updated in place by its
identifier (``PUT Observation?identifier=...``), and the Provenance has an id derived from
the message and the mappings (``PUT Provenance/<id>``).

With a :class:`TrialLink`, the Patient is the subject's pseudonymous one and each Observation
carries the study link and its visit tag; without one (dry runs, the pre-trial demo), a
placeholder Patient keyed by the LIS identifier.
"""

from __future__ import annotations

import hashlib
import importlib
import uuid
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.provenance import Provenance
from pydantic import ValidationError

from adapter.build.observation import build_observation, result_identifier
from adapter.build.patient import build_patient
from adapter.build.provenance import MessageSource, provenance
from adapter.build.shapes import ShapeValidator
from adapter.config import Identifiers
from adapter.errors import MappingError, MessageError
from adapter.mapping import MappedReport, MappedResult
from adapter.trial.resources import (
    SubjectRecord,
    link_observation,
    pseudonymous_patient,
    research_study,
    study_search,
)
from adapter.trial.study import Study, Visit
from adapter.trial.visits import visit_of

__all__ = ["TrialLink", "build_transaction", "result_identifier", "search_token"]

# The element models of the resources built here: fhir.resources imports them on first use,
# which made the first message's validation ~16 ms; imported here, that is paid at start-up.
_ELEMENTS = (
    "codeableconcept",
    "coding",
    "extension",
    "identifier",
    "meta",
    "quantity",
    "reference",
)
for _element in _ELEMENTS:
    importlib.import_module(f"fhir.resources.R4B.{_element}")

_UUID_NAMESPACE = uuid.UUID("7f1c9f7e-6c1b-4f0e-9d64-5a6f7d1e2b30")
_NAMESPACE_BYTES = _UUID_NAMESPACE.bytes


@dataclass(frozen=True, slots=True)
class TrialLink:
    """The enrolled subject a report belongs to, and the study's day 0 for them."""

    study: Study
    subject: SubjectRecord
    day0: date


def uuid5(name: str) -> str:
    """``str(uuid.uuid5(<TrialBridge's namespace>, name))``, the same text without building a
    ``uuid.UUID`` (that was half the cost; a message needs one per entry)."""
    sha1 = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False)
    digest = bytearray(sha1.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def search_token(system: str, value: str) -> str:
    """A ``system|value`` token for a search URL, escaped as FHIR search requires."""
    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,")
    escaped = escaped.replace("$", "\\$")
    # quote() works byte by byte, so the system (a handful per study) is quoted once.
    return _quoted_system(system) + quote(escaped, safe="")


@lru_cache(maxsize=256)
def _quoted_system(system: str) -> str:
    return quote(f"{system}|", safe="")


def build_transaction(
    mapped: MappedReport,
    ids: Identifiers,
    *,
    trial: TrialLink | None = None,
    source: MessageSource | None = None,
) -> dict[str, Any]:
    """The transaction Bundle for one report: its Patient, an Observation per result, and
    (given the message's source) the Provenance that ties them to it."""
    report = mapped.report
    patient_entry = _patient_entry(mapped, ids, trial)
    study_entry = _study_entry(trial.study) if trial is not None else None
    observations: dict[str, dict[str, Any]] = {}
    for result in mapped.results:
        observation = build_observation(result, report, patient_entry["fullUrl"], ids)
        if trial is not None:
            visit = _visit(result, trial, report.message_id)
            assert study_entry is not None
            observation = link_observation(observation, trial.study, study_entry["fullUrl"], visit)
        token = _token(observation)
        # The same order repeated in one message: the latest occurrence wins.
        observations[token] = {
            "fullUrl": _urn(token),
            "resource": _checked(
                Observation, observation, report.message_id, result.result.location
            ),
            "request": {"method": "PUT", "url": f"Observation?{_query(token)}"},
        }
    entries = [*([study_entry] if study_entry else []), patient_entry, *observations.values()]
    if source is not None:
        entries.append(
            _provenance_entry(source, [e["fullUrl"] for e in entries], report.message_id)
        )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    _check_envelope(bundle, report.message_id)
    return bundle


def _visit(result: MappedResult, trial: TrialLink, message_id: str) -> Visit | None:
    """The visit window a result falls in (None: outside every window, or no time)."""
    if not result.effective:
        return None
    try:
        return visit_of(result.effective, trial.day0, trial.study)
    except MessageError as exc:  # the mapping stage holds times with no day: not expected
        raise MappingError(
            exc.reason, message_id=message_id, location=f"{result.result.location}.14"
        ) from exc


def _patient_entry(
    mapped: MappedReport, ids: Identifiers, trial: TrialLink | None
) -> dict[str, Any]:
    report = mapped.report
    if trial is None:
        patient = build_patient(report, ids)
    else:
        patient = pseudonymous_patient(trial.study, trial.subject)
    token = _token(patient)
    return {
        "fullUrl": _urn(token),
        "resource": _checked(Patient, patient, report.message_id, "PID"),
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": _query(token)},
    }


def _study_entry(study: Study) -> dict[str, Any]:
    """The ResearchStudy, created if absent, so Observations can reference it literally."""
    query = study_search(study)
    return {
        "fullUrl": f"urn:uuid:{uuid5('ResearchStudy?' + query)}",
        "resource": research_study(study),
        "request": {"method": "POST", "url": "ResearchStudy", "ifNoneExist": query},
    }


def _provenance_entry(source: MessageSource, targets: list[str], message_id: str) -> dict[str, Any]:
    key = f"{source.message_key()}|{source.mappings_version}"
    resource_id = uuid5(key)
    resource = {**provenance(source, targets), "id": resource_id}
    return {
        "fullUrl": f"urn:uuid:{resource_id}",
        "resource": _checked(Provenance, resource, message_id, "MSH"),
        "request": {"method": "PUT", "url": f"Provenance/{resource_id}"},
    }


def _token(resource: dict[str, Any]) -> str:
    identifier = resource["identifier"][0]
    return search_token(identifier["system"], identifier["value"])


def _query(token: str) -> str:
    return f"identifier={token}"


def _urn(token: str) -> str:
    return f"urn:uuid:{uuid5(token)}"


# One validator per model: each learns the shapes it has validated (see adapter.build.shapes).
_VALIDATORS = {model: ShapeValidator(model) for model in (Observation, Patient, Provenance)}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})


def _check_envelope(bundle: dict[str, Any], message_id: str) -> None:
    """The Bundle around resources that were each validated already (validating the whole
    Bundle again would check every resource twice: it was half of the build time)."""
    for entry in bundle["entry"]:
        request = entry.get("request", {})
        if request.get("method") not in _METHODS or not request.get("url"):
            raise MappingError(
                f"a transaction entry has no valid request ({request!r})",
                message_id=message_id,
                location="MSH",
                hint="this is a TrialBridge bug: report it with the message",
            )


def _checked(
    model: Any, resource: dict[str, Any], message_id: str, location: str
) -> dict[str, Any]:
    """Validate against the R4B model; the dict (with exact decimals) is what is sent."""
    try:
        _VALIDATORS[model].validate(resource)
    except ValidationError as exc:
        raise MappingError(
            f"the {resource['resourceType']} built from it is not valid FHIR R4: "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}",
            message_id=message_id,
            location=location,
            hint="this is a TrialBridge bug: report it with the message",
        ) from exc
    return resource

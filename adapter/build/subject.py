"""The transaction that publishes one subject's enrolment state: the ResearchStudy (created
if absent), the pseudonymous Patient and the ResearchSubject (both updated in place by their
identifier, so re-sending changes nothing)."""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from adapter.build import search_token
from adapter.trial.resources import (
    SubjectRecord,
    pseudonymous_patient,
    research_study,
    research_subject,
    study_search,
    subject_identifier,
)
from adapter.trial.study import Study

_NAMESPACE = uuid.UUID("1d0f3c55-93a4-4f6e-8f0c-2f6a2f9b8e11")


def subject_transaction(study: Study, subject: SubjectRecord) -> dict[str, Any]:
    """ResearchStudy + Patient + ResearchSubject for one subject, as one transaction."""
    identifier = subject_identifier(study, subject.subject_id)
    token = search_token(identifier["system"], identifier["value"])
    study_url = f"urn:uuid:{uuid.uuid5(_NAMESPACE, 'study|' + study.identifier)}"
    patient_url = f"urn:uuid:{uuid.uuid5(_NAMESPACE, 'patient|' + token)}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": study_url,
                "resource": research_study(study),
                "request": {
                    "method": "POST",
                    "url": "ResearchStudy",
                    "ifNoneExist": study_search(study),
                },
            },
            {
                "fullUrl": patient_url,
                "resource": pseudonymous_patient(study, subject),
                "request": {"method": "PUT", "url": f"Patient?identifier={token}"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, 'subject|' + token)}",
                "resource": research_subject(study, subject, patient_url, study_url),
                "request": {"method": "PUT", "url": f"ResearchSubject?identifier={token}"},
            },
        ],
    }
    Bundle.model_validate(bundle)
    return bundle

"""FHIR R4 resources of the trial: ResearchStudy, the pseudonymous Patient, ResearchSubject,
and the study links on each Observation. Pure builders of JSON-ready dicts.

Profiles: http://hl7.org/fhir/R4/researchstudy.html, researchsubject.html, patient.html.
The Patient carries the subject number in the study's namespace, gender and birth year only:
no name, MRN, address or full birth date leaves the hospital.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

from adapter.trial.study import Study, Visit

RESEARCH_STUDY_EXTENSION = "http://hl7.org/fhir/StructureDefinition/workflow-researchStudy"
# TrialBridge's own extensions on ResearchSubject (valueDate each): the subject's study day 0
# (first infusion) and the last date the subject was known to be alive (survival censoring).
DAY_ZERO_EXTENSION = "http://trialbridge.org/fhir/StructureDefinition/study-day-zero"
LAST_KNOWN_ALIVE_EXTENSION = "http://trialbridge.org/fhir/StructureDefinition/last-known-alive"
_PHASE = "http://terminology.hl7.org/CodeSystem/research-study-phase"
_PURPOSE = "http://terminology.hl7.org/CodeSystem/research-study-prim-purp-type"
_GENDER = {"F": "female", "M": "male", "O": "other", "U": "unknown"}


@dataclass(frozen=True, slots=True)
class SubjectRecord:
    """What the registry knows of one subject that may leave the hospital."""

    subject_id: str
    arm: str
    sex: str  # F / M / O / U
    birth_year: int
    consent_date: date
    status: str  # FHIR ResearchSubject.status, e.g. on-study, withdrawn
    withdrawn_on: date | None = None
    died_on: date | None = None
    day0: date | None = None  # first infusion
    last_known_alive: date | None = None


def study_reference(study: Study, reference: str) -> dict[str, Any]:
    """A reference to the ResearchStudy: literal (``reference``, e.g. the ``urn:uuid`` of the
    ResearchStudy entry in the same transaction) plus its identifier."""
    return {
        "reference": reference,
        "identifier": {"system": study.identifier_system, "value": study.identifier},
        "display": study.identifier,
    }


def study_search(study: Study) -> str:
    """The query that finds the ResearchStudy by its identifier (for ifNoneExist)."""
    return f"identifier={quote(study.identifier_system + '|' + study.identifier, safe='')}"


def research_study(study: Study) -> dict[str, Any]:
    """The ResearchStudy: identifier, title, status, phase, purpose, period, arms, enrolment."""
    period = {"start": study.period_start.isoformat()}
    if study.period_end:
        period["end"] = study.period_end.isoformat()
    return {
        "resourceType": "ResearchStudy",
        "identifier": [{"system": study.identifier_system, "value": study.identifier}],
        "title": study.title,
        "status": study.status,
        "phase": {"coding": [{"system": _PHASE, "code": study.phase}]},
        "primaryPurposeType": {"coding": [{"system": _PURPOSE, "code": study.primary_purpose}]},
        "condition": [{"coding": [study.condition]}] if study.condition else [],
        "period": period,
        "contained": [
            {
                "resourceType": "Group",
                "id": "target-enrolment",
                "type": "person",
                "actual": False,
                "quantity": study.target_enrolment,
            }
        ],
        "enrollment": [{"reference": "#target-enrolment", "display": "target enrolment"}],
        "arm": [{"name": a.code, "description": f"{a.name}: {a.description}"} for a in study.arms],
        "description": f"Site: {study.site}. Intervention: {study.intervention}.",
    }


def subject_identifier(study: Study, subject_id: str) -> dict[str, str]:
    """The subject number in the study's namespace: the pseudonym results travel under."""
    return {"system": f"{study.identifier_system}:{study.identifier}:subject", "value": subject_id}


def pseudonymous_patient(study: Study, subject: SubjectRecord) -> dict[str, Any]:
    """The Patient a subject's results point to: subject number, gender, birth year only."""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [subject_identifier(study, subject.subject_id)],
        "gender": _GENDER.get(subject.sex.upper(), "unknown"),
        "birthDate": f"{subject.birth_year:04d}",
    }
    if subject.died_on:
        patient["deceasedDateTime"] = subject.died_on.isoformat()
    return patient


def research_subject(
    study: Study, subject: SubjectRecord, patient_ref: str, study_ref: str
) -> dict[str, Any]:
    """The ResearchSubject linking the pseudonymous Patient to the study and its arm."""
    period = {"start": subject.consent_date.isoformat()}
    end = subject.withdrawn_on or subject.died_on
    if end:
        period["end"] = end.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "ResearchSubject",
        "identifier": [subject_identifier(study, subject.subject_id)],
        "status": subject.status,
        "period": period,
        "study": study_reference(study, study_ref),
        "individual": {"reference": patient_ref},
        "assignedArm": study.arm(subject.arm).code,
    }
    extensions = [
        {"url": url, "valueDate": value.isoformat()}
        for url, value in (
            (DAY_ZERO_EXTENSION, subject.day0),
            (LAST_KNOWN_ALIVE_EXTENSION, subject.last_known_alive),
        )
        if value is not None
    ]
    if extensions:
        resource["extension"] = extensions
    return resource


def visit_tag(study: Study, visit: Visit) -> dict[str, str]:
    """The timepoint tag an Observation in a visit window carries."""
    return {"system": study.timepoint_system, "code": visit.code, "display": visit.name}


def link_observation(
    observation: dict[str, Any], study: Study, study_ref: str, visit: Visit | None
) -> dict[str, Any]:
    """The Observation with its study link and, when in a window, its visit tag."""
    linked = dict(observation)
    extension = {
        "url": RESEARCH_STUDY_EXTENSION,
        "valueReference": study_reference(study, study_ref),
    }
    linked["extension"] = [*observation.get("extension", []), extension]
    if visit is not None:
        linked["meta"] = {"tag": [visit_tag(study, visit)]}
    return linked

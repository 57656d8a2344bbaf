"""Clinical assessments that do not come from the LIS: ascites, hepatic encephalopathy and
dialysis, as coded Observations (http://hl7.org/fhir/R4/observation.html). Pure.

Codes (``code.coding``; readers match the study's code first, then SNOMED CT):

* ascites: ``urn:trialbridge:assessment|ascites``, plus SNOMED CT 389026000 "Ascites
  (disorder)" as the finding assessed (as used, e.g., by the German Medical Informatics
  Initiative's examples); answer in ``urn:trialbridge:assessment:ascites``: ``none``,
  ``mild``, ``moderate-severe`` (Child-Pugh's grades, Pugh 1973).
* encephalopathy: ``urn:trialbridge:assessment|hepatic-encephalopathy``, plus SNOMED CT
  13920009 "Hepatic encephalopathy"; answer in
  ``urn:trialbridge:assessment:hepatic-encephalopathy``: ``none``, ``grade-1-2``,
  ``grade-3-4`` (West Haven grades grouped as Child-Pugh groups them).
* dialysis: ``urn:trialbridge:assessment|dialysis`` only — "two or more dialyses, or 24 h of
  CVVHD, in the week before" is the OPTN's MELD criterion, for which no standard code was
  found; answer ``valueBoolean``.

LOINC's Child-Pugh panel (98153-0) has member questions for these findings, but their codes
and answer lists could not be verified here, so they are not written (a wrong code is worse
than the study's own). Research staff who enter assessments straight into the FHIR server
use the same codes and answers; such Observations are scoring inputs exactly like the ones
``trialbridge assess`` writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from adapter.trial.resources import link_observation
from adapter.trial.study import Study, Visit

ASSESSMENT_SYSTEM = "urn:trialbridge:assessment"
SNOMED = "http://snomed.info/sct"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


@dataclass(frozen=True, slots=True)
class Finding:
    """One assessed finding: its code, the scoring input it is, and its answers."""

    code: str
    kind: str
    display: str
    snomed: tuple[str, str] | None
    answers: tuple[str, ...]  # empty: a yes/no answer (valueBoolean)

    def codings(self) -> list[dict[str, str]]:
        own = {"system": ASSESSMENT_SYSTEM, "code": self.code, "display": self.display}
        if self.snomed is None:
            return [own]
        return [own, {"system": SNOMED, "code": self.snomed[0], "display": self.snomed[1]}]

    @property
    def answer_system(self) -> str:
        return f"{ASSESSMENT_SYSTEM}:{self.code}"


FINDINGS: MappingProxyType[str, Finding] = MappingProxyType(
    {
        f.code: f
        for f in (
            Finding(
                "ascites",
                "ascites",
                "Ascites (Child-Pugh grade)",
                ("389026000", "Ascites"),
                ("none", "mild", "moderate-severe"),
            ),
            Finding(
                "hepatic-encephalopathy",
                "encephalopathy",
                "Hepatic encephalopathy (Child-Pugh grade)",
                ("13920009", "Hepatic encephalopathy"),
                ("none", "grade-1-2", "grade-3-4"),
            ),
            Finding(
                "dialysis",
                "dialysis",
                "Two or more dialyses, or 24 h of CVVHD, in the prior week",
                None,
                (),
            ),
        )
    }
)
"""Finding code -> finding."""

BY_KIND: Mapping[str, Finding] = MappingProxyType({f.kind: f for f in FINDINGS.values()})


@dataclass(frozen=True, slots=True)
class Assessment:
    """What ``trialbridge assess`` records for one subject on one date (or date-time)."""

    subject_id: str
    effective: str  # FHIR date or dateTime with offset
    ascites: str | None
    encephalopathy: str | None
    dialysis: bool | None


def answer_of(kind: str, observation: Mapping[str, Any]) -> str | bool | None:
    """The answer an assessment Observation holds, or None when it holds none we know."""
    finding = BY_KIND[kind]
    if not finding.answers:
        value = observation.get("valueBoolean")
        return value if isinstance(value, bool) else None
    concept = observation.get("valueCodeableConcept") or {}
    for coding in concept.get("coding", []):
        if coding.get("system") == finding.answer_system and coding.get("code") in finding.answers:
            return str(coding["code"])
    return None


def assessment_observations(
    assessment: Assessment,
    *,
    study: Study,
    study_ref: str,
    patient_ref: str,
    visit: Visit | None,
) -> list[dict[str, Any]]:
    """One Observation per finding given, identified by subject, finding and date."""
    given: list[tuple[Finding, str | bool]] = [
        (BY_KIND[kind], answer)
        for kind, answer in (
            ("ascites", assessment.ascites),
            ("encephalopathy", assessment.encephalopathy),
            ("dialysis", assessment.dialysis),
        )
        if answer is not None
    ]
    return [
        link_observation(
            _observation(finding, answer, assessment, patient_ref), study, study_ref, visit
        )
        for finding, answer in given
    ]


def assessment_identifier(subject_id: str, finding: Finding, effective: str) -> dict[str, str]:
    """The same subject, finding and time: the same Observation (re-assessing corrects it)."""
    return {"system": ASSESSMENT_SYSTEM, "value": f"{subject_id}/{finding.code}/{effective}"}


def _observation(
    finding: Finding, answer: str | bool, assessment: Assessment, patient_ref: str
) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [assessment_identifier(assessment.subject_id, finding, assessment.effective)],
        "status": "final",
        "category": [{"coding": [{"system": _CATEGORY, "code": "exam"}]}],
        "code": {"coding": finding.codings(), "text": finding.display},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": assessment.effective,
    }
    if isinstance(answer, bool):
        observation["valueBoolean"] = answer
    else:
        coding = {"system": finding.answer_system, "code": answer}
        observation["valueCodeableConcept"] = {"coding": [coding], "text": answer}
    return observation

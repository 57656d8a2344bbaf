"""MappedResult -> FHIR R4 Observation (as a JSON-ready dict, validated by fhir.resources).

Profile: http://hl7.org/fhir/R4/observation.html, shaped like the US Core Laboratory Result
Observation (https://hl7.org/fhir/us/core/StructureDefinition-us-core-observation-lab.html)
without its US-only bindings.

Identity (DESIGN.md): the performing lab's order number (OBR-3, else OBR-2), the result
code as sent (OBX-3) and the sub-id (OBX-4) — never OBX-14 or MSH-10 — so a final and a
correction land on the Observation their preliminary created.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapter.config import Identifiers
from adapter.mapping import MappedResult, Quantity
from adapter.parse.model import Coding, Report

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
VALUE_AS_SENT = "http://trialbridge.org/fhir/StructureDefinition/value-as-sent"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_CODE_SYSTEMS = {"LN": LOINC, "LOINC": LOINC, "SCT": "http://snomed.info/sct", "UCUM": UCUM}
# HL7 table 0078 flags that are also v3 ObservationInterpretation codes, with displays.
_FLAGS = {
    "L": "Low",
    "H": "High",
    "LL": "Critical low",
    "HH": "Critical high",
    "N": "Normal",
    "A": "Abnormal",
    "AA": "Critical abnormal",
    "<": "Off scale low",
    ">": "Off scale high",
    "U": "Significant change up",
    "D": "Significant change down",
    "B": "Better",
    "W": "Worse",
    "S": "Susceptible",
    "R": "Resistant",
    "I": "Intermediate",
    "POS": "Positive",
    "NEG": "Negative",
    "IND": "Indeterminate",
    "DET": "Detected",
    "ND": "Not detected",
}
# Why a result has no value, by Observation.status.
_ABSENT_REASONS = {
    "cancelled": "not-performed",
    "registered": "temp-unknown",
    "entered-in-error": "error",
}


def result_identifier(mapped: MappedResult, report: Report) -> str:
    """The Observation's identifier value: ``order^namespace/code^system/sub-id``."""
    number = mapped.order.order_number()
    assert number is not None, "map_report holds results without an order number"
    namespace = number.namespace or report.sending_facility
    coding = mapped.result.codings[0]
    return f"{number.value}^{namespace}/{coding.code}^{coding.system}/{mapped.result.sub_id}"


def build_observation(
    mapped: MappedResult, report: Report, subject_ref: str, ids: Identifiers
) -> dict[str, Any]:
    """The Observation one mapped OBX becomes."""
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": ids.result, "value": result_identifier(mapped, report)}],
        "status": mapped.status.fhir_status,
        "category": [{"coding": [{"system": _CATEGORY, "code": "laboratory"}]}],
        "code": _code(mapped, report, ids),
        "subject": {"reference": subject_ref},
    }
    _put(observation, "effectiveDateTime", mapped.effective)
    _put(observation, "issued", mapped.issued)
    observation.update(_value(mapped, report, ids))
    _put(observation, "interpretation", _interpretation(mapped.result.flags))
    _put(observation, "note", _notes(mapped))
    _put(observation, "referenceRange", _reference_range(mapped))
    return observation


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value:
        target[key] = value


def _code(mapped: MappedResult, report: Report, ids: Identifiers) -> dict[str, Any]:
    analyte = mapped.analyte
    codings = [{"system": LOINC, "code": analyte.loinc, "display": analyte.loinc_display}]
    for sent in mapped.result.codings:
        coding = _sent_coding(sent, report, ids)
        if coding not in codings and not (coding["system"] == LOINC and sent.code == analyte.loinc):
            codings.append(coding)
    return {"coding": codings, "text": mapped.result.codings[0].text or analyte.display}


def _sent_coding(sent: Coding, report: Report, ids: Identifiers) -> dict[str, Any]:
    system = _CODE_SYSTEMS.get(sent.system.upper())
    if system is None:
        scope = sent.system or "local"
        system = f"{ids.local_code}:{report.sending_application or 'lis'}:{scope}"
    coding = {"system": system, "code": sent.code}
    if sent.text:
        coding["display"] = sent.text
    return coding


def _value(mapped: MappedResult, report: Report, ids: Identifiers) -> dict[str, Any]:
    if mapped.text is not None:
        return {"valueString": mapped.text}
    if mapped.codes:
        return _coded_value(mapped, report, ids)
    if mapped.quantity is not None:
        value: dict[str, Any] = {"valueQuantity": _quantity(mapped.quantity)}
        if mapped.as_sent is not None:
            value["extension"] = [
                {"url": VALUE_AS_SENT, "valueQuantity": _quantity(mapped.as_sent)}
            ]
        return value
    reason = _ABSENT_REASONS.get(mapped.status.fhir_status)
    if reason is None:
        return {}
    return {"dataAbsentReason": {"coding": [{"system": _ABSENT, "code": reason}]}}


def _coded_value(mapped: MappedResult, report: Report, ids: Identifiers) -> dict[str, Any]:
    """One coded value -> valueCodeableConcept; repeats -> one component each (none is cut)."""
    concepts = [_concept(codings, report, ids) for codings in mapped.codes]
    if len(concepts) == 1:
        return {"valueCodeableConcept": concepts[0]}
    code = _code(mapped, report, ids)
    return {"component": [{"code": code, "valueCodeableConcept": c} for c in concepts]}


def _concept(codings: tuple[Coding, ...], report: Report, ids: Identifiers) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [_sent_coding(c, report, ids) for c in codings if c.code]}
    text = next((c.text for c in codings if c.text), "")
    if text:
        concept["text"] = text
    return {k: v for k, v in concept.items() if v}


def _quantity(quantity: Quantity) -> dict[str, Any]:
    out: dict[str, Any] = {"value": quantity.value}
    if quantity.comparator:
        out["comparator"] = quantity.comparator
    out.update({"unit": quantity.unit, "system": UCUM, "code": quantity.unit})
    return out


def _interpretation(flags: tuple[str, ...]) -> list[dict[str, Any]]:
    concepts: list[dict[str, Any]] = []
    for flag in flags:
        code = flag.upper()
        if code in _FLAGS:
            coding = {"system": _INTERPRETATION, "code": code, "display": _FLAGS[code]}
            concepts.append({"coding": [coding]})
        else:
            concepts.append({"text": flag})
    return concepts


def _notes(mapped: MappedResult) -> list[dict[str, str]]:
    return [{"text": text} for text in (*mapped.result.notes, *mapped.order.notes)]


def _reference_range(mapped: MappedResult) -> list[dict[str, Any]]:
    if not mapped.reference_text:
        return []
    entry: dict[str, Any] = {}
    unit = mapped.analyte.unit
    for key, bound in (("low", mapped.reference_low), ("high", mapped.reference_high)):
        if bound is not None:
            entry[key] = _quantity(Quantity(Decimal(bound), unit))
    entry["text"] = mapped.reference_text
    return [entry]

"""FHIR R4 lab Observation -> :class:`LabRecord`, the plain data an LB row is made of. Pure.

Reads the shape :mod:`adapter.build.observation` writes (http://hl7.org/fhir/R4/observation.html):
``valueQuantity`` in the analyte's canonical unit, the ``value-as-sent`` extension when the lab's
unit was converted, ``referenceRange`` (low/high in the canonical unit, ``text`` as the lab sent
OBX-7), ``interpretation`` (OBX-8), ``dataAbsentReason`` for a cancelled result. Which
Observations are kept is the report's rule (:mod:`adapter.report.extract`), plus cancelled ones,
which SDTM records as not done; entered-in-error and registered (no result yet) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapter.build.observation import LOINC, VALUE_AS_SENT
from adapter.mapping.values import parse_range
from adapter.report.extract import COUNTING_STATUSES, Catalogue, in_study, reference_range
from adapter.trial.study import Study

CANCELLED = "cancelled"
LB_STATUSES = (*COUNTING_STATUSES, CANCELLED)
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@dataclass(frozen=True, slots=True)
class Quantity:
    value: Decimal
    comparator: str
    unit: str  # UCUM


@dataclass(frozen=True, slots=True)
class LabRecord:
    """One lab Observation of a subject, as SDTM LB needs it."""

    subject: str
    observation_id: str
    identifier: str  # the Observation's business identifier (stable ordering)
    analyte: str  # analyte key (mappings/analytes.yaml)
    loinc: str  # the analyte's canonical LOINC code
    status: str
    effective: str  # FHIR dateTime as stored ("" when absent)
    as_sent: Quantity | None  # value and unit as the lab sent them
    standard: Decimal | None  # the value in the canonical unit (None: no value or no conversion)
    comparator: str
    standard_unit: str  # canonical UCUM unit of the analyte
    range_text: str  # OBX-7 as sent
    low: Decimal | None  # range in the canonical unit
    high: Decimal | None
    interpretation: tuple[str, ...]  # v3 ObservationInterpretation codes


def lab_record(
    observation: dict[str, Any], subject: str, cat: Catalogue, study_ref: str, study: Study
) -> LabRecord | str:
    """The record of one Observation, or why it is not an LB row."""
    key = _analyte_key(observation, cat)
    if key is None:
        return "not one of the study's analytes"
    status = str(observation.get("status", ""))
    if status not in LB_STATUSES:
        return f"{key}: status {status or '(none)'} (not a result)"
    if not in_study(observation, study_ref, study):
        return f"{key}: linked to another study"
    analyte = cat.analytes[key]
    stored = _quantity(observation.get("valueQuantity"))
    sent = _sent(observation) or stored
    standard = None
    if stored is not None:
        factor = analyte.factor_from(stored.unit) or analyte.factor_from(
            cat.mappings.ucum_for(stored.unit) or ""
        )
        standard = factor.apply(stored.value) if factor else None
    low, high = reference_range(observation)
    return LabRecord(
        subject=subject,
        observation_id=str(observation.get("id", "")),
        identifier=_identifier(observation),
        analyte=key,
        loinc=analyte.loinc,
        status=status,
        effective=str(observation.get("effectiveDateTime") or ""),
        as_sent=sent,
        standard=standard,
        comparator=stored.comparator if stored else "",
        standard_unit=analyte.unit,
        range_text=_range_text(observation),
        low=low,
        high=high,
        interpretation=_interpretation(observation),
    )


def original_range(record: LabRecord) -> tuple[Decimal | None, Decimal | None]:
    """The reference range in the lab's own unit: OBX-7 as sent, parsed."""
    bounds = parse_range(record.range_text) if record.range_text else None
    if bounds is None:
        return None, None
    return bounds.low, bounds.high


def _analyte_key(observation: dict[str, Any], cat: Catalogue) -> str | None:
    for coding in (observation.get("code") or {}).get("coding", []):
        if coding.get("system") != LOINC:
            continue
        key = cat.by_code.get((LOINC, str(coding.get("code", ""))))
        if key is not None and key in cat.analytes:
            return key
    return None


def _quantity(value: Any) -> Quantity | None:
    if not isinstance(value, dict) or value.get("value") is None:
        return None
    unit = str(value.get("code") or value.get("unit") or "")
    return Quantity(Decimal(str(value["value"])), str(value.get("comparator", "")), unit)


def _sent(observation: dict[str, Any]) -> Quantity | None:
    """The value-as-sent extension (on the Observation, next to valueQuantity)."""
    for extension in observation.get("extension", []):
        if extension.get("url") == VALUE_AS_SENT:
            return _quantity(extension.get("valueQuantity"))
    return None


def _identifier(observation: dict[str, Any]) -> str:
    identifiers = observation.get("identifier") or [{}]
    return str(identifiers[0].get("value", ""))


def _range_text(observation: dict[str, Any]) -> str:
    ranges = observation.get("referenceRange") or [{}]
    return str(ranges[0].get("text", ""))


def _interpretation(observation: dict[str, Any]) -> tuple[str, ...]:
    codes = []
    for concept in observation.get("interpretation") or []:
        for coding in concept.get("coding", []):
            if coding.get("system") == _INTERPRETATION:
                codes.append(str(coding.get("code", "")))
    return tuple(codes)

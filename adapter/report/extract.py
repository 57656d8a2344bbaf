"""FHIR R4 JSON -> the report's plain data (:mod:`adapter.report.model`). Pure.

Reads the shapes :mod:`adapter.trial.resources` and :mod:`adapter.build` write
(http://hl7.org/fhir/R4/researchsubject.html, patient.html, observation.html) and score
Observations coded in :data:`adapter.scores.codes.SCORE_SYSTEM`. Values are brought to each
measure's canonical unit with the factors of ``mappings/analytes.yaml``; an Observation that
cannot be used (no value, a unit with no conversion, a status that does not count, another
study) becomes a :class:`~adapter.report.model.Skipped` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from adapter.build.observation import LOINC
from adapter.mappings import Analyte, MappingSet
from adapter.report.model import ANALYTE, SCORE, Measure, Measurement, Skipped, SubjectData
from adapter.scores.codes import SCORE_CODES, SCORE_SYSTEM, SCORE_UNIT
from adapter.trial.resources import (
    DAY_ZERO_EXTENSION,
    LAST_KNOWN_ALIVE_EXTENSION,
    RESEARCH_STUDY_EXTENSION,
)
from adapter.trial.study import Study
from adapter.trial.visits import local_date

COUNTING_STATUSES = ("final", "corrected", "amended", "preliminary")
"""Observation.status values whose value counts (cancelled, entered-in-error... do not)."""
# The pairing rule the score writer appends to a note (adapter.scoring.resources): not a reason.
_PAIRING = re.compile(r"\s*\(inputs are paired within [^)]*\)")


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The study's measures, and how to recognise and convert their Observations."""

    measures: tuple[Measure, ...]
    by_code: Mapping[tuple[str, str], str]  # (system, code) -> measure key
    analytes: Mapping[str, Analyte]
    mappings: MappingSet

    def measure(self, key: str) -> Measure:
        return next(m for m in self.measures if m.key == key)

    def code_tokens(self) -> list[str]:
        """``system|code`` of every measure, in a stable order (for the search)."""
        return [f"{system}|{code}" for system, code in sorted(self.by_code)]


def catalogue(study: Study, mappings: MappingSet) -> Catalogue:
    """The study's analytes (from the mappings) then its scores (from the score codes)."""
    measures: list[Measure] = []
    by_code: dict[tuple[str, str], str] = {}
    analytes: dict[str, Analyte] = {}
    for key in study.analytes:
        analyte = mappings.analytes[key]
        analytes[key] = analyte
        measures.append(Measure(key, ANALYTE, analyte.display, analyte.unit, analyte.loinc))
        by_code[(LOINC, analyte.loinc)] = key
    for key in study.scores:
        score = SCORE_CODES[key]
        measures.append(Measure(key, SCORE, score.display, SCORE_UNIT))
        by_code[(SCORE_SYSTEM, score.code)] = key
    return Catalogue(tuple(measures), by_code, analytes, mappings)


def subject_of(
    resource: dict[str, Any], patients: Mapping[str, dict[str, Any]], study: Study
) -> SubjectData:
    """A ResearchSubject (with its Patient, by ``Patient/<id>``) as plain data."""
    identifiers = resource.get("identifier") or [{}]
    patient_ref = str((resource.get("individual") or {}).get("reference", ""))
    patient = patients.get(patient_ref, {})
    period = resource.get("period") or {}
    return SubjectData(
        subject=str(identifiers[0].get("value") or resource.get("id", "")),
        arm=str(resource.get("assignedArm", "")),
        status=str(resource.get("status", "")),
        consent=_date(period.get("start"), study),
        period_end=_date(period.get("end"), study),
        day0=_date(_extension(resource, DAY_ZERO_EXTENSION, "valueDate"), study),
        last_known_alive=_date(
            _extension(resource, LAST_KNOWN_ALIVE_EXTENSION, "valueDate"), study
        ),
        death=_date(patient.get("deceasedDateTime"), study),
        patient_ref=patient_ref,
        sex=str(patient.get("gender", "")),
        birth_year=_year(patient.get("birthDate")),
        last_updated=max(_last_updated(resource), _last_updated(patient)),
    )


def measurements_of(
    observations: Iterable[dict[str, Any]],
    subject: str,
    cat: Catalogue,
    study_ref: str,
    study: Study,
) -> tuple[list[Measurement], list[Skipped]]:
    """The counting measurements among one subject's Observations, and the skipped ones."""
    kept: list[Measurement] = []
    skipped: list[Skipped] = []
    for observation in observations:
        result = measurement_of(observation, subject, cat, study_ref, study)
        if isinstance(result, Measurement):
            kept.append(result)
        else:
            skipped.append(result)
    return kept, skipped


def measurement_of(
    observation: dict[str, Any], subject: str, cat: Catalogue, study_ref: str, study: Study
) -> Measurement | Skipped:
    """One Observation as a measurement in the canonical unit, or why it is skipped."""
    obs_id = str(observation.get("id", ""))

    def skip(reason: str) -> Skipped:
        return Skipped(subject, obs_id, reason)

    key = _measure_key(observation, cat)
    if key is None:
        return skip("code is none of the study's analytes or scores")
    status = str(observation.get("status", ""))
    if status not in COUNTING_STATUSES:
        return skip(f"{key}: status {status or '(none)'} does not count")
    if not in_study(observation, study_ref, study):
        return skip(f"{key}: linked to another study")
    effective = observation.get("effectiveDateTime")
    if not isinstance(effective, str) or len(effective) < 10:
        return skip(f"{key}: no effective date")
    value = _value(observation, cat.measure(key), cat)
    if isinstance(value, str):
        return skip(f"{key}: {value}")
    amount, comparator = value
    low, high = reference_range(observation)
    return Measurement(
        subject=subject,
        measure=key,
        value=amount,
        comparator=comparator,
        effective=effective,
        status=status,
        observation_id=obs_id,
        tag=_timepoint(observation, study),
        low=low,
        high=high,
    )


def reference_range(observation: dict[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    """The first reference range's low and high values (the builder writes them in the
    analyte's canonical unit), None where absent."""
    ranges = observation.get("referenceRange") or [{}]
    return _bound(ranges[0].get("low")), _bound(ranges[0].get("high"))


def _bound(quantity: Any) -> Decimal | None:
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return None
    return Decimal(str(quantity["value"]))


def absent_reason(observation: dict[str, Any]) -> str:
    """Why a score Observation has no value, in its own words: the note the score writer puts
    on it ("not computable: dialysis status unknown"), else its dataAbsentReason code."""
    for note in observation.get("note") or []:
        text = _PAIRING.sub("", str(note.get("text", ""))).strip().rstrip(".")
        if text:
            return text[0].lower() + text[1:]
    codes = [
        str(c.get("code", ""))
        for c in (observation.get("dataAbsentReason") or {}).get("coding", [])
    ]
    return f"no value ({', '.join(codes)})" if any(codes) else "no numeric value"


def _measure_key(observation: dict[str, Any], cat: Catalogue) -> str | None:
    for coding in (observation.get("code") or {}).get("coding", []):
        key = cat.by_code.get((str(coding.get("system", "")), str(coding.get("code", ""))))
        if key is not None:
            return key
    return None


def in_study(observation: dict[str, Any], study_ref: str, study: Study) -> bool:
    """No study link (the subject's pseudonymous Patient is enough), or a link to this one."""
    links = [
        e.get("valueReference") or {}
        for e in observation.get("extension", [])
        if e.get("url") == RESEARCH_STUDY_EXTENSION
    ]
    return not links or any(
        link.get("reference") == study_ref
        or (link.get("identifier") or {}).get("value") == study.identifier
        for link in links
    )


def _value(
    observation: dict[str, Any], measure: Measure, cat: Catalogue
) -> tuple[Decimal, str] | str:
    """(value in the canonical unit, comparator), or why there is no usable value."""
    if "valueInteger" in observation and measure.kind == SCORE:
        return Decimal(int(observation["valueInteger"])), ""
    quantity = observation.get("valueQuantity")
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        # A score's note says why it has no value; a lab result's note is the lab's free
        # text (NTE), which never goes into a report.
        return absent_reason(observation) if measure.kind == SCORE else "no numeric value"
    value = Decimal(str(quantity["value"]))
    comparator = str(quantity.get("comparator", ""))
    unit = str(quantity.get("code") or quantity.get("unit") or "")
    if measure.kind == SCORE:
        if unit not in ("", SCORE_UNIT):
            return f"score in unit {unit!r}, expected {SCORE_UNIT}"
        return value, comparator
    analyte = cat.analytes[measure.key]
    factor = analyte.factor_from(unit) or analyte.factor_from(cat.mappings.ucum_for(unit) or "")
    if factor is None:
        return f"value in {unit or 'no unit'}, which has no conversion to {analyte.unit}"
    return factor.apply(value), comparator


def _timepoint(observation: dict[str, Any], study: Study) -> str:
    tags = (observation.get("meta") or {}).get("tag", [])
    return next(
        (str(t.get("code", "")) for t in tags if t.get("system") == study.timepoint_system), ""
    )


def _extension(resource: dict[str, Any], url: str, key: str) -> Any:
    return next((e.get(key) for e in resource.get("extension", []) if e.get("url") == url), None)


def _year(value: Any) -> int | None:
    """The year of a FHIR date (``1960`` or ``1960-04-02``), None when absent or malformed."""
    text = str(value or "")[:4]
    return int(text) if len(text) == 4 and text.isdigit() else None


def _last_updated(resource: dict[str, Any]) -> str:
    return str((resource.get("meta") or {}).get("lastUpdated", ""))


def _date(value: Any, study: Study) -> date | None:
    """A FHIR date or dateTime as a calendar date in the study's time zone (None if absent)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    return local_date(value, study.timezone)

"""Plain data the report is computed from: what the reader takes from the FHIR server.

No FHIR shapes beyond this point: the core (:mod:`adapter.report.tables`) sees subjects and
measurements only, so it can be tested with hand-made data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

ANALYTE = "analyte"
SCORE = "score"


@dataclass(frozen=True, slots=True)
class Measure:
    """Something reported per visit: a lab analyte or a score, in its canonical unit."""

    key: str  # analyte key of mappings/analytes.yaml, or score key of config/study.yaml
    kind: str  # ANALYTE or SCORE
    display: str
    unit: str
    loinc: str = ""  # an analyte's canonical LOINC code ("" for a score)


@dataclass(frozen=True, slots=True)
class SubjectData:
    """One ResearchSubject (and its pseudonymous Patient), as the report needs it."""

    subject: str  # the subject number
    arm: str
    status: str
    consent: date | None
    period_end: date | None
    day0: date | None
    last_known_alive: date | None
    death: date | None
    patient_ref: str  # "Patient/<id>"
    sex: str = ""  # Patient.gender: female, male, other, unknown ("" when absent)
    birth_year: int | None = None  # the Patient holds the birth year only
    last_updated: str = ""  # the later meta.lastUpdated of the ResearchSubject and Patient


@dataclass(frozen=True, slots=True)
class Measurement:
    """One counting Observation of a measure, already in the measure's canonical unit."""

    subject: str
    measure: str  # Measure.key
    value: Decimal
    comparator: str  # "", "<", "<=", ">=", ">"
    effective: str  # FHIR dateTime as stored (offset kept)
    status: str
    observation_id: str
    tag: str  # the visit timepoint tag the Observation carries ("" when none)
    low: Decimal | None = None  # reference range, in the canonical unit
    high: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """An Observation the report could not use, and why (listed, never silently lost)."""

    subject: str
    observation_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TrialData:
    """Everything read from the server for one study."""

    study_id: str  # the ResearchStudy's logical id on the server
    subjects: tuple[SubjectData, ...]
    measurements: tuple[Measurement, ...]
    skipped: tuple[Skipped, ...]

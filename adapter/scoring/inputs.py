"""Score inputs read from FHIR Observations: lab results and clinical assessments. Pure.

Lab results are recognised by the LOINC code TrialBridge writes first on every result
(``mappings/analytes.yaml``): total bilirubin 1975-2, INR 6301-6, creatinine 2160-0, sodium
2951-2, albumin 1751-7, in their canonical units. Prothrombin time (5902-2) is not an input:
Child-Pugh's PT criterion is the prolongation over the laboratory's control, which the LIS
does not send, and INR is never derived from PT.

Which statuses count (http://hl7.org/fhir/R4/valueset-observation-status.html): final,
corrected and amended always; preliminary when ``scoring.count_preliminary`` is true (the
score is then preliminary too). Cancelled and entered-in-error results are *withdrawn*: they
are never used, and a score that needs one withdraws itself (see :mod:`.core`). Registered
results and results without a usable value are ignored. A value with a comparator
(``<0.5``) is censored, so it is not used as a number: the score is not computable with
that reason rather than computed from a guessed value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from adapter.build.observation import LOINC
from adapter.scoring.assessments import ASSESSMENT_SYSTEM, FINDINGS, answer_of

BILIRUBIN, INR, CREATININE, SODIUM, ALBUMIN = "bilirubin", "inr", "creatinine", "sodium", "albumin"
ASCITES, ENCEPHALOPATHY, DIALYSIS = "ascites", "encephalopathy", "dialysis"
LAB_LOINC: Mapping[str, str] = {
    "1975-2": BILIRUBIN,
    "6301-6": INR,
    "2160-0": CREATININE,
    "2951-2": SODIUM,
    "1751-7": ALBUMIN,
}
FINAL_STATUSES = ("final", "corrected", "amended")
WITHDRAWN_STATUSES = ("cancelled", "entered-in-error")

Value = tuple[Decimal, str] | str | bool


@dataclass(frozen=True, slots=True)
class Input:
    """One lab result or assessment finding, as scoring sees it."""

    kind: str  # bilirubin, inr, ... ascites, encephalopathy, dialysis
    reference: str  # Observation/<id>
    key: str  # its first identifier's value, else its reference: stable across versions
    status: str
    effective: str  # as stored (a date-only value stays date-only)
    start: datetime  # the time it covers: an instant, or a whole local day for a date
    end: datetime
    value: Value | None  # None: withdrawn, or no usable value (see ``problem``)
    problem: str | None = None  # why a counting result has no usable value

    @property
    def withdrawn(self) -> bool:
        return self.status in WITHDRAWN_STATUSES

    def gap(self, other: Input) -> timedelta:
        """Time between the two (zero when their spans overlap)."""
        if self.end <= other.start:
            return other.start - self.end
        if other.end <= self.start:
            return self.start - other.end
        return timedelta(0)


def read_input(observation: Mapping[str, Any], tz: timezone, *, preliminary: bool) -> Input | None:
    """The input an Observation is, or None when it is no input (or does not count)."""
    kind = _kind(observation)
    status = str(observation.get("status", ""))
    counts = status in FINAL_STATUSES or (preliminary and status == "preliminary")
    effective = observation.get("effectiveDateTime")
    if kind is None or not isinstance(effective, str) or len(effective) < 10:
        return None
    if not counts and status not in WITHDRAWN_STATUSES:
        return None
    start, end = span(effective, tz)
    value, problem = (None, None) if not counts else _value(kind, observation)
    return Input(
        kind=kind,
        reference=f"Observation/{observation.get('id', '')}",
        key=_key(observation),
        status=status,
        effective=effective,
        start=start,
        end=end,
        value=value,
        problem=problem,
    )


def span(effective: str, tz: timezone) -> tuple[datetime, datetime]:
    """An instant as (t, t); a date as that whole day in the study's time zone."""
    if len(effective) == 10:
        day = datetime.fromisoformat(effective).replace(tzinfo=tz)
        return day, day + timedelta(days=1)
    moment = datetime.fromisoformat(effective.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment, moment


def _kind(observation: Mapping[str, Any]) -> str | None:
    for coding in (observation.get("code") or {}).get("coding", []):
        system, code = coding.get("system"), str(coding.get("code", ""))
        if system == LOINC and code in LAB_LOINC:
            return LAB_LOINC[code]
        if system == ASSESSMENT_SYSTEM and code in FINDINGS:
            return FINDINGS[code].kind
    return None


def _key(observation: Mapping[str, Any]) -> str:
    identifiers = observation.get("identifier") or []
    if identifiers and identifiers[0].get("value"):
        return str(identifiers[0]["value"])
    return f"Observation/{observation.get('id', '')}"


def _value(kind: str, observation: Mapping[str, Any]) -> tuple[Value | None, str | None]:
    if kind in (ASCITES, ENCEPHALOPATHY, DIALYSIS):
        answer = answer_of(kind, observation)
        return (answer, None) if answer is not None else (None, f"{kind}: no recognised answer")
    quantity = observation.get("valueQuantity")
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return None, f"{kind}: no numeric value"
    if quantity.get("comparator"):
        shown = f"{quantity['comparator']}{quantity['value']}"
        return None, f"{kind} is {shown}, a censored value"
    unit = str(quantity.get("code") or quantity.get("unit") or "")
    return (Decimal(str(quantity["value"])), unit), None

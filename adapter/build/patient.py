"""The Patient placeholder a report's results point to.

Until the trial's enrolment registry exists (the trial issue), the Patient is keyed by the
LIS patient identifier: the first PID-3 repetition of type MR, else the first one.
Only the identifier is written: no name, birth date or address.
"""

from __future__ import annotations

from typing import Any

from adapter.config import Identifiers
from adapter.parse.model import PatientIdentifier, Report


def lis_patient_identifier(report: Report) -> PatientIdentifier:
    """The PID-3 repetition that identifies the patient for the LIS (MR preferred)."""
    for identifier in report.patient_ids:
        if identifier.type_code.upper() == "MR":
            return identifier
    return report.patient_ids[0]


def patient_system(identifier: PatientIdentifier, report: Report, ids: Identifiers) -> str:
    """The identifier system: the namespace plus the assigning authority (or the facility)."""
    authority = identifier.authority or report.sending_facility or "unknown"
    return f"{ids.patient}:{authority}"


def build_patient(report: Report, ids: Identifiers) -> dict[str, Any]:
    """A Patient holding only the LIS identifier."""
    identifier = lis_patient_identifier(report)
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": patient_system(identifier, report, ids), "value": identifier.value}
        ],
    }

"""CDISC controlled terminology the SDTM export writes. Pure constants and lookups.

Sources: CDISC SDTM Controlled Terminology (NCI EVS), codelists LBTESTCD/LBTEST (C65047 /
C67154), UNIT (C71620), SEX (C66731), NRIND (C78736), AGEU (C66781), EPOCH (C99079),
NCOMPLT (C66727), PROTMLST (C114118); SDTMIG v3.3 for the variables. The LOINC codes are the
canonical codes of ``mappings/analytes.yaml`` (https://loinc.org).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LabTest:
    """An analyte as SDTM LB names it."""

    testcd: str  # LBTESTCD (<= 8 characters)
    test: str  # LBTEST (<= 40 characters)
    category: str  # LBCAT


LAB_TESTS: dict[str, LabTest] = {
    "1742-6": LabTest("ALT", "Alanine Aminotransferase", "CHEMISTRY"),
    "1920-8": LabTest("AST", "Aspartate Aminotransferase", "CHEMISTRY"),
    "6768-6": LabTest("ALP", "Alkaline Phosphatase", "CHEMISTRY"),
    "1975-2": LabTest("BILI", "Bilirubin", "CHEMISTRY"),
    "1751-7": LabTest("ALB", "Albumin", "CHEMISTRY"),
    "5902-2": LabTest("PT", "Prothrombin Time", "COAGULATION"),
    "6301-6": LabTest("INR", "Prothrombin Intl. Normalized Ratio", "COAGULATION"),
    "2160-0": LabTest("CREAT", "Creatinine", "CHEMISTRY"),
    "2951-2": LabTest("SODIUM", "Sodium", "CHEMISTRY"),
}
"""By the analyte's LOINC code."""

# UCUM (as TrialBridge stores units) -> CDISC UNIT submission value. A unit not listed is
# written as it is; INR has no unit.
UNITS: dict[str, str] = {
    "U/L": "U/L",
    "[IU]/L": "IU/L",
    "mg/dL": "mg/dL",
    "g/dL": "g/dL",
    "g/L": "g/L",
    "umol/L": "umol/L",
    "mmol/L": "mmol/L",
    "meq/L": "mEq/L",
    "s": "sec",
    "{INR}": "",
    "1": "",
}

SEX = {"female": "F", "male": "M"}  # anything else (other, unknown, absent): "U"

# v3 ObservationInterpretation (as the builder writes OBX-8) -> LBNRIND.
NRIND = {
    "N": "NORMAL",
    "L": "LOW",
    "LL": "LOW",
    "H": "HIGH",
    "HH": "HIGH",
    "A": "ABNORMAL",
    "AA": "ABNORMAL",
}

EPOCH_SCREENING = "SCREENING"
EPOCH_TREATMENT = "TREATMENT"

# Disposition (DS): protocol milestones and disposition events.
DS_MILESTONE = "PROTOCOL MILESTONE"
DS_EVENT = "DISPOSITION EVENT"
CONSENTED = "INFORMED CONSENT OBTAINED"
RANDOMIZED = "RANDOMIZED"
COMPLETED = "COMPLETED"
WITHDRAWN = "WITHDRAWAL BY SUBJECT"
DEATH = "DEATH"

TPHASE = {
    "n-a": "NOT APPLICABLE",
    "early-phase-1": "PHASE 0 TRIAL",
    "phase-1": "PHASE I TRIAL",
    "phase-1-phase-2": "PHASE I/II TRIAL",
    "phase-2": "PHASE II TRIAL",
    "phase-2-phase-3": "PHASE II/III TRIAL",
    "phase-3": "PHASE III TRIAL",
    "phase-4": "PHASE IV TRIAL",
}
"""FHIR research-study-phase -> CDISC TPHASE."""


def unit(ucum: str) -> str:
    """The CDISC unit for a UCUM unit (itself when not listed)."""
    return UNITS.get(ucum, ucum)

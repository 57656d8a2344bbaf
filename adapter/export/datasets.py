"""The SDTM datasets the export writes: each domain's variables (name, label, type) in the order
and with the labels of SDTMIG v3.3 and the CDISC pilot study's published datasets (SDTM
Metadata Submission Guidelines v2.0 examples), and a dataset as plain rows. Pure.

Types are Dataset-JSON v1.1 ``dataType`` values: ``string``, ``integer``, ``float`` and, for
ISO 8601 dates that are always date-only, ``date`` (as the pilot's DM and DS do). LBDTC may hold
a time and an offset, so it is ``string`` (as the pilot's LB does). In SAS XPORT, integer and
float are numeric (8-byte) variables and the others character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STRING, INTEGER, FLOAT, DATE = "string", "integer", "float", "date"
NUMERIC = (INTEGER, FLOAT)


@dataclass(frozen=True, slots=True)
class Variable:
    name: str  # <= 8 characters (SAS XPORT v5)
    label: str  # <= 40 characters
    type: str  # STRING, INTEGER, FLOAT or DATE
    key: int | None = None  # keySequence: the dataset's sort keys, in order


@dataclass(frozen=True, slots=True)
class Domain:
    name: str  # TS, DM, LB...
    label: str
    variables: tuple[Variable, ...]

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]


@dataclass(frozen=True, slots=True)
class Dataset:
    """One domain's rows, each a list of values in the order of ``domain.variables`` (None is
    a null: an empty string for character variables, missing for numeric ones)."""

    domain: Domain
    rows: list[list[Any]]


def _v(name: str, label: str, kind: str = STRING, key: int | None = None) -> Variable:
    return Variable(name, label, kind, key)


_STUDYID = _v("STUDYID", "Study Identifier", key=1)
_DOMAIN = _v("DOMAIN", "Domain Abbreviation")
_USUBJID = _v("USUBJID", "Unique Subject Identifier", key=2)

TS = Domain("TS", "Trial Summary", (
    _STUDYID, _DOMAIN,
    _v("TSSEQ", "Sequence Number", INTEGER, 4),
    _v("TSGRPID", "Group ID"),
    _v("TSPARMCD", "Trial Summary Parameter Short Name", key=2),
    _v("TSPARM", "Trial Summary Parameter"),
    _v("TSVAL", "Parameter Value", key=3),
    _v("TSVALNF", "Parameter Null Flavor"),
    _v("TSVALCD", "Parameter Value Code"),
    _v("TSVCDREF", "Name of the Reference Terminology"),
    _v("TSVCDVER", "Version of the Reference Terminology"),
))  # fmt: skip

TA = Domain("TA", "Trial Arms", (
    _STUDYID, _DOMAIN,
    _v("ARMCD", "Planned Arm Code", key=2),
    _v("ARM", "Description of Planned Arm"),
    _v("TAETORD", "Planned Order of Element within Arm", INTEGER, 3),
    _v("ETCD", "Element Code"),
    _v("ELEMENT", "Description of Element"),
    _v("TABRANCH", "Branch"),
    _v("TATRANS", "Transition Rule"),
    _v("EPOCH", "Epoch"),
))  # fmt: skip

TE = Domain("TE", "Trial Elements", (
    _STUDYID, _DOMAIN,
    _v("ETCD", "Element Code", key=2),
    _v("ELEMENT", "Description of Element"),
    _v("TESTRL", "Rule for Start of Element"),
    _v("TEENRL", "Rule for End of Element"),
))  # fmt: skip

TV = Domain("TV", "Trial Visits", (
    _STUDYID, _DOMAIN,
    _v("VISITNUM", "Visit Number", FLOAT, 2),
    _v("VISIT", "Visit Name"),
    _v("VISITDY", "Planned Study Day of Visit", INTEGER),
    _v("ARMCD", "Planned Arm Code", key=3),
    _v("TVSTRL", "Visit Start Rule"),
    _v("TVENRL", "Visit End Rule"),
))  # fmt: skip

DM = Domain("DM", "Demographics", (
    _STUDYID, _DOMAIN, _USUBJID,
    _v("SUBJID", "Subject Identifier for the Study"),
    _v("RFSTDTC", "Subject Reference Start Date/Time", DATE),
    _v("RFENDTC", "Subject Reference End Date/Time", DATE),
    _v("RFXSTDTC", "Date/Time of First Study Treatment", DATE),
    _v("RFXENDTC", "Date/Time of Last Study Treatment", DATE),
    _v("RFICDTC", "Date/Time of Informed Consent", DATE),
    _v("RFPENDTC", "Date/Time of End of Participation", DATE),
    _v("DTHDTC", "Date/Time of Death", DATE),
    _v("DTHFL", "Subject Death Flag"),
    _v("SITEID", "Study Site Identifier"),
    _v("BRTHDTC", "Date/Time of Birth", DATE),
    _v("AGE", "Age", INTEGER),
    _v("AGEU", "Age Units"),
    _v("SEX", "Sex"),
    _v("RACE", "Race"),
    _v("ETHNIC", "Ethnicity"),
    _v("ARMCD", "Planned Arm Code"),
    _v("ARM", "Description of Planned Arm"),
    _v("ACTARMCD", "Actual Arm Code"),
    _v("ACTARM", "Description of Actual Arm"),
    _v("ARMNRS", "Reason Arm and/or Actual Arm is Null"),
    _v("COUNTRY", "Country"),
))  # fmt: skip

LB = Domain("LB", "Laboratory Test Results", (
    _STUDYID, _DOMAIN, _USUBJID,
    _v("LBSEQ", "Sequence Number", INTEGER),
    _v("LBSPID", "Sponsor-Defined Identifier"),
    _v("LBTESTCD", "Lab Test or Examination Short Name", key=4),
    _v("LBTEST", "Lab Test or Examination Name"),
    _v("LBCAT", "Category for Lab Test", key=3),
    _v("LBORRES", "Result or Finding in Original Units"),
    _v("LBORRESU", "Original Units"),
    _v("LBORNRLO", "Reference Range Lower Limit in Orig Unit"),
    _v("LBORNRHI", "Reference Range Upper Limit in Orig Unit"),
    _v("LBSTRESC", "Character Result/Finding in Std Format"),
    _v("LBSTRESN", "Numeric Result/Finding in Standard Units", FLOAT),
    _v("LBSTRESU", "Standard Units"),
    _v("LBSTNRLO", "Reference Range Lower Limit-Std Units", FLOAT),
    _v("LBSTNRHI", "Reference Range Upper Limit-Std Units", FLOAT),
    _v("LBNRIND", "Reference Range Indicator"),
    _v("LBSTAT", "Completion Status"),
    _v("LBREASND", "Reason Test Not Done"),
    _v("LBLOINC", "LOINC Code"),
    _v("LBLOBXFL", "Last Observation Before Exposure Flag"),
    _v("LBTOX", "Toxicity"),
    _v("LBTOXGR", "Standard Toxicity Grade"),
    _v("VISITNUM", "Visit Number", FLOAT, 6),
    _v("VISIT", "Visit Name"),
    _v("VISITDY", "Planned Study Day of Visit", INTEGER),
    _v("EPOCH", "Epoch"),
    _v("LBDTC", "Date/Time of Specimen Collection", key=5),
    _v("LBDY", "Study Day of Specimen Collection", INTEGER),
))  # fmt: skip

SV = Domain("SV", "Subject Visits", (
    _STUDYID, _DOMAIN, _USUBJID,
    _v("VISITNUM", "Visit Number", FLOAT, 4),
    _v("VISIT", "Visit Name"),
    _v("VISITDY", "Planned Study Day of Visit", INTEGER),
    _v("SVSTDTC", "Start Date/Time of Visit", DATE, 3),
    _v("SVENDTC", "End Date/Time of Visit", DATE),
    _v("SVSTDY", "Study Day of Start of Visit", INTEGER),
    _v("SVENDY", "Study Day of End of Visit", INTEGER),
    _v("SVUPDES", "Description of Unplanned Visit"),
))  # fmt: skip

DS = Domain("DS", "Disposition", (
    _STUDYID, _DOMAIN, _USUBJID,
    _v("DSSEQ", "Sequence Number", INTEGER),
    _v("DSTERM", "Reported Term for the Disposition Event"),
    _v("DSDECOD", "Standardized Disposition Term", key=6),
    _v("DSCAT", "Category for Disposition Event", key=4),
    _v("EPOCH", "Epoch"),
    _v("DSSTDTC", "Start Date/Time of Disposition Event", DATE, 3),
    _v("DSSTDY", "Study Day of Start of Disposition Event", INTEGER),
))  # fmt: skip

SUPPLB = Domain("SUPPLB", "Supplemental Qualifiers for LB", (
    _STUDYID,
    _v("RDOMAIN", "Related Domain Abbreviation", key=2),
    _v("USUBJID", "Unique Subject Identifier", key=3),
    _v("IDVAR", "Identifying Variable", key=4),
    _v("IDVARVAL", "Identifying Variable Value", key=5),
    _v("QNAM", "Qualifier Variable Name", key=6),
    _v("QLABEL", "Qualifier Variable Label"),
    _v("QVAL", "Data Value"),
    _v("QORIG", "Origin"),
    _v("QEVAL", "Evaluator"),
))  # fmt: skip

DOMAINS: tuple[Domain, ...] = (TS, TA, TE, TV, DM, LB, SUPPLB, SV, DS)
"""Every domain, in the order the files are written."""

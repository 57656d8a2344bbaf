"""The trial design domains (TS, TA, TE, TV) from the study definition, and the subject
domains DM and DS from the subjects read off the server. Pure.

Only what ``config/study.yaml``, ``config/sdtm.yaml`` and the server hold is written: no
design fact is invented (the trial's masking, for one, is not in the study file, so TS has no
TBLIND). Text is ASCII (SAS XPORT v5): the multiplication sign becomes ``x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from adapter.errors import ExportError
from adapter.export import cdisc
from adapter.export.lb import sdtm_day, visit_name, visit_number
from adapter.export.settings import SdtmSettings
from adapter.report.model import SubjectData
from adapter.trial.study import Arm, Study

SNOMED = "http://snomed.info/sct"
SCREEN_ELEMENT = "SCRN"
MAX_ARMCD = 20  # SDTMIG: ARMCD is limited to 20 characters


def ascii_text(text: str) -> str:
    """Free text from the study file as SAS XPORT v5 can hold it (ASCII)."""
    return " ".join(text.replace("\u00d7", "x").replace("\u00b5", "u").split())


def arm_code(arm: Arm) -> str:
    """ARMCD: the study's arm code in upper case with ``_`` for ``-`` (``LOW_DOSE``)."""
    code = arm.code.upper().replace("-", "_")
    if len(code) > MAX_ARMCD:
        raise ExportError(
            f"arm code {arm.code!r} is {len(code)} characters; SDTM ARMCD holds {MAX_ARMCD}: "
            "shorten arms[].code in the study file"
        )
    return code


def usubjid(study: Study, subject: str) -> str:
    """USUBJID: the study identifier and the subject number."""
    return f"{study.identifier}-{subject}"


# TS -----------------------------------------------------------------------------------------


def ts_rows(study: Study, settings: SdtmSettings, subjects: int) -> list[dict[str, Any]]:
    """One row per trial summary parameter the study file holds."""
    params: list[tuple[str, str, str, str, str]] = [
        ("TITLE", "Trial Title", ascii_text(study.title), "", ""),
        ("TPHASE", "Trial Phase Classification", cdisc.TPHASE.get(study.phase, ""), "", ""),
        ("TINDTP", "Trial Intent Type", study.primary_purpose.upper(), "", ""),
        ("PLANSUB", "Planned Number of Subjects", str(study.target_enrolment), "", ""),
        ("ACTSUB", "Actual Number of Subjects", str(subjects), "", ""),
        ("NARMS", "Planned Number of Arms", str(len(study.arms)), "", ""),
        ("SSTDTC", "Study Start Date", study.period_start.isoformat(), "", ""),
    ]
    if study.period_end:
        params.append(("SENDTC", "Study End Date", study.period_end.isoformat(), "", ""))
    params += [
        ("AGEMIN", "Planned Minimum Age of Subjects", f"P{study.min_age}Y", "", ""),
        ("AGEMAX", "Planned Maximum Age of Subjects", f"P{study.max_age}Y", "", ""),
    ]
    if study.condition:
        ref = "SNOMED CT" if study.condition.get("system") == SNOMED else ""
        display = ascii_text(study.condition.get("display", ""))
        code = study.condition.get("code", "")
        params.append(("INDIC", "Trial Disease/Condition Indication", display, code, ref))
    if study.intervention:
        params.append(
            ("TRT", "Investigational Therapy or Treatment", ascii_text(study.intervention), "", "")
        )
    params.append(
        ("FCNTRY", "Planned Country of Investigational Sites", settings.country, "", "ISO 3166")
    )
    return [
        {
            "STUDYID": study.identifier,
            "DOMAIN": "TS",
            "TSSEQ": 1,
            "TSGRPID": "",
            "TSPARMCD": code,
            "TSPARM": parm,
            "TSVAL": value,
            "TSVALNF": "" if value else "NI",
            "TSVALCD": value_code if value_code else (value if ref == "ISO 3166" else ""),
            "TSVCDREF": ref,
            "TSVCDVER": "",
        }
        for code, parm, value, value_code, ref in params
    ]


# TE, TA, TV ---------------------------------------------------------------------------------


def element_code(study: Study, arm: Arm) -> str:
    """ETCD of an arm's treatment element: TRT1, TRT2... in the order of the arms."""
    return f"TRT{study.arms.index(arm) + 1}"


def te_rows(study: Study) -> list[dict[str, Any]]:
    """Screening (consent to first infusion), then each arm's treatment element."""
    last = study.visits[-1]
    end = f"End of the {last.name} window (study day {sdtm_day(last.last_day)})"
    rows = [_te(study, SCREEN_ELEMENT, "Screening", "Informed consent", "First infusion")]
    for arm in study.arms:
        element = ascii_text(f"{arm.name}: {arm.description}" if arm.description else arm.name)
        rows.append(_te(study, element_code(study, arm), element, "First infusion", end))
    return rows


def _te(study: Study, etcd: str, element: str, start: str, end: str) -> dict[str, Any]:
    return {
        "STUDYID": study.identifier,
        "DOMAIN": "TE",
        "ETCD": etcd,
        "ELEMENT": element,
        "TESTRL": start,
        "TEENRL": end,
    }


def ta_rows(study: Study) -> list[dict[str, Any]]:
    """Each arm: screening then its treatment element."""
    rows = []
    for arm in study.arms:
        base = {"STUDYID": study.identifier, "DOMAIN": "TA", "ARMCD": arm_code(arm)}
        base["ARM"] = ascii_text(arm.name)
        rows.append({**base, "TAETORD": 1, "ETCD": SCREEN_ELEMENT, "ELEMENT": "Screening",
                     "TABRANCH": f"Randomized to {base['ARM']}", "TATRANS": "",
                     "EPOCH": cdisc.EPOCH_SCREENING})  # fmt: skip
        element = ascii_text(f"{arm.name}: {arm.description}" if arm.description else arm.name)
        rows.append({**base, "TAETORD": 2, "ETCD": element_code(study, arm), "ELEMENT": element,
                     "TABRANCH": "", "TATRANS": "", "EPOCH": cdisc.EPOCH_TREATMENT})  # fmt: skip
    return rows


def tv_rows(study: Study) -> list[dict[str, Any]]:
    """The planned visits with their windows, the same for every arm (ARMCD null)."""
    rows = []
    for visit in study.visits:
        planned = sdtm_day(visit.target_day)
        first, last = sdtm_day(visit.first_day), sdtm_day(visit.last_day)
        rows.append(
            {
                "STUDYID": study.identifier,
                "DOMAIN": "TV",
                "VISITNUM": float(visit_number(study, visit)),
                "VISIT": visit_name(visit),
                "VISITDY": planned,
                "ARMCD": "",
                "TVSTRL": f"Laboratory draw from study day {first} (window start)",
                "TVENRL": f"Study day {last} (window end); planned day {planned}",
            }
        )
    return rows


# DM -----------------------------------------------------------------------------------------


def dm_row(study: Study, settings: SdtmSettings, subject: SubjectData) -> dict[str, Any]:
    """One subject's demographics: pseudonymous, dates as ISO 8601 dates."""
    arm = _arm(study, subject.arm)
    treated = subject.day0 is not None
    code = arm_code(arm) if arm else ""
    name = ascii_text(arm.name) if arm else ""
    end = subject.death or subject.period_end
    return {
        "STUDYID": study.identifier,
        "DOMAIN": "DM",
        "USUBJID": usubjid(study, subject.subject),
        "SUBJID": subject.subject,
        "RFSTDTC": _iso(subject.day0),
        "RFENDTC": _iso(end) if treated else "",
        "RFXSTDTC": _iso(subject.day0),
        "RFXENDTC": "",  # the date of the last infusion is not on the server
        "RFICDTC": _iso(subject.consent),
        "RFPENDTC": _iso(end),
        "DTHDTC": _iso(subject.death),
        "DTHFL": "Y" if subject.death else "",
        "SITEID": settings.site_id,
        "BRTHDTC": f"{subject.birth_year:04d}" if subject.birth_year else "",
        "AGE": age_at_consent(subject),
        "AGEU": "YEARS" if age_at_consent(subject) is not None else "",
        "SEX": cdisc.SEX.get(subject.sex, "U"),
        "RACE": "",
        "ETHNIC": "",
        "ARMCD": code,
        "ARM": name,
        "ACTARMCD": code if treated else "",
        "ACTARM": name if treated else "",
        "ARMNRS": "" if treated or not arm else "NOT TREATED",
        "COUNTRY": settings.country,
    }


def age_at_consent(subject: SubjectData) -> int | None:
    """Completed years at consent that the subject had certainly reached: consent year minus
    birth year, minus one (the registry holds the birth year only, so the true age is this or
    one more; the export's derivations file says so)."""
    if subject.birth_year is None or subject.consent is None:
        return None
    return subject.consent.year - subject.birth_year - 1


# DS -----------------------------------------------------------------------------------------


def ds_rows(study: Study, subject: SubjectData) -> list[dict[str, Any]]:
    """Consent and randomisation (protocol milestones), then how participation ended."""
    events: list[tuple[str, str, str, date | None]] = [
        (cdisc.CONSENTED, cdisc.CONSENTED, cdisc.DS_MILESTONE, subject.consent),
    ]
    if _arm(study, subject.arm):
        # The date of randomisation is not on the server: the milestone is dated null.
        events.append((cdisc.RANDOMIZED, cdisc.RANDOMIZED, cdisc.DS_MILESTONE, None))
    if subject.death:
        events.append(("DEATH", cdisc.DEATH, cdisc.DS_EVENT, subject.death))
    elif subject.status == "withdrawn":
        events.append(("WITHDRAWN", cdisc.WITHDRAWN, cdisc.DS_EVENT, subject.period_end))
    elif subject.status == "off-study" and subject.period_end:
        events.append(("COMPLETED", cdisc.COMPLETED, cdisc.DS_EVENT, subject.period_end))
    rows = []
    for seq, (term, decod, category, when) in enumerate(events, start=1):
        day = (when - subject.day0).days if when and subject.day0 else None
        rows.append(
            {
                "STUDYID": study.identifier,
                "DOMAIN": "DS",
                "USUBJID": usubjid(study, subject.subject),
                "DSSEQ": seq,
                "DSTERM": term,
                "DSDECOD": decod,
                "DSCAT": category,
                "EPOCH": _ds_epoch(day, category),
                "DSSTDTC": _iso(when),
                "DSSTDY": sdtm_day(day),
            }
        )
    return rows


def _ds_epoch(day: int | None, category: str) -> str:
    if category == cdisc.DS_MILESTONE:
        return cdisc.EPOCH_SCREENING
    if day is None:
        return ""
    return cdisc.EPOCH_SCREENING if day <= 0 else cdisc.EPOCH_TREATMENT


def _arm(study: Study, code: str) -> Arm | None:
    return next((a for a in study.arms if a.code == code), None)


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def subjects_sorted(subjects: Sequence[SubjectData]) -> list[SubjectData]:
    return sorted(subjects, key=lambda s: (s.subject, s.patient_ref))

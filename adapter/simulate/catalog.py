"""What the simulated LIS measures and how it writes it: codes, units, ranges, flags.

Each analyte has a canonical unit (the study's, where it is a study analyte) and one or more
*forms*: the unit the lab writes in OBX-6, the factor from the canonical unit, the decimals
it reports, its reference range (OBX-7) and the limits behind the abnormal flag (OBX-8).
Local codes follow the hospital LIS (and ``mappings/analytes.yaml``); LOINC codes are those
of the form's unit (bilirubin in umol/L is 14631-6, not 1975-2).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from adapter.simulate.model import Result


@dataclass(frozen=True)
class Form:
    """One way the lab reports an analyte."""

    unit: str
    factor: Decimal  # value in this unit = canonical value * factor
    decimals: int
    ref_range: str
    low: Decimal | None = None
    high: Decimal | None = None
    crit_low: Decimal | None = None
    crit_high: Decimal | None = None
    loinc: str = ""


@dataclass(frozen=True)
class Analyte:
    """An analyte the LIS reports."""

    key: str
    codes: tuple[str, ...]  # local codes; the first is the usual one
    text: str
    forms: tuple[Form, ...]  # the first is the usual one
    loinc: str = ""  # LOINC of the canonical form ("" = this LIS never sends LOINC for it)


def _d(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _form(
    unit: str,
    factor: str,
    decimals: int,
    ref_range: str,
    low: str | None = None,
    high: str | None = None,
    crit_low: str | None = None,
    crit_high: str | None = None,
    loinc: str = "",
) -> Form:
    """Build a form from decimal strings (exact: no float artefacts in what the lab prints)."""
    return Form(
        unit,
        Decimal(factor),
        decimals,
        ref_range,
        _d(low),
        _d(high),
        _d(crit_low),
        _d(crit_high),
        loinc,
    )


ANALYTES: dict[str, Analyte] = {
    a.key: a
    for a in (
        Analyte(
            "alt",
            ("ALT", "GPT"),
            "Alanine aminotransferase",
            (
                _form("U/L", "1", 0, "7-56", "7", "56", None, "1000"),
                _form("IU/L", "1", 0, "9-50", "9", "50", None, "1000"),
            ),
            "1742-6",
        ),
        Analyte(
            "ast",
            ("AST", "GOT"),
            "Aspartate aminotransferase",
            (
                _form("U/L", "1", 0, "10-40", "10", "40", None, "1000"),
                _form("IU/L", "1", 0, "15-40", "15", "40", None, "1000"),
            ),
            "1920-8",
        ),
        Analyte(
            "alp",
            ("ALP", "AKP"),
            "Alkaline phosphatase",
            (
                _form("U/L", "1", 0, "45-125", "45", "125"),
                _form("IU/L", "1", 0, "40-150", "40", "150"),
            ),
            "6768-6",
        ),
        Analyte(
            "bilirubin_total",
            ("TBIL", "TBILI"),
            "Total bilirubin",
            (
                _form("mg/dL", "1", 1, "0.3-1.2", "0.3", "1.2", None, "12"),
                _form("mg/dL", "1", 1, "<1.2", None, "1.2", None, "12"),
                _form("µmol/L", "17.1", 1, "3.4-20.5", "3.4", "20.5", None, "205.2", "14631-6"),
                _form("µmol/L", "17.1", 1, "<21", None, "21", None, "205.2", "14631-6"),
            ),
            "1975-2",
        ),
        Analyte(
            "albumin",
            ("ALB",),
            "Albumin",
            (
                _form("g/dL", "1", 1, "3.5-5.0", "3.5", "5.0", "2.4"),
                _form("g/L", "10", 1, "35-50", "35", "50", "24"),
            ),
            "1751-7",
        ),
        Analyte(
            "pt_seconds",
            ("PT",),
            "Prothrombin time",
            (
                _form("s", "1", 1, "11.0-14.5", "11.0", "14.5", None, "27"),
                _form("sec", "1", 1, "11.0-14.5", "11.0", "14.5", None, "27"),
            ),
            "5902-2",
        ),
        Analyte(
            "inr",
            ("INR",),
            "INR",
            (
                _form("", "1", 2, "0.8-1.2", "0.8", "1.2", None, "2.8"),
                _form("{INR}", "1", 2, "0.8-1.2", "0.8", "1.2", None, "2.8"),
            ),
            "6301-6",
        ),
        Analyte(
            "creatinine",
            ("CREA", "CRE"),
            "Creatinine",
            (
                _form("mg/dL", "1", 2, "0.6-1.2", "0.6", "1.2", None, "3.0"),
                _form("µmol/L", "88.4", 0, "53-106", "53", "106", None, "265", "14682-9"),
            ),
            "2160-0",
        ),
        Analyte(
            "sodium",
            ("NA", "SOD"),
            "Sodium",
            (
                _form("mmol/L", "1", 0, "135-145", "135", "145", "128", "155"),
                _form("mEq/L", "1", 0, "136-145", "136", "145", "128", "155"),
            ),
            "2951-2",
        ),
        # Not study analytes: this LIS sends them with local codes nobody has mapped yet.
        Analyte(
            "ggt",
            ("GGT",),
            "Gamma-glutamyl transferase",
            (_form("U/L", "1", 0, "10-60", "10", "60"),),
        ),
        Analyte(
            "bilirubin_direct",
            ("DBIL",),
            "Direct bilirubin",
            (_form("µmol/L", "17.1", 1, "0-6.8", "0", "6.8"),),
        ),
        Analyte(
            "ammonia",
            ("AMMON",),
            "Ammonia",
            (_form("µmol/L", "1", 0, "11-32", "11", "32", None, "100"),),
        ),
        # Routine hospital tests.
        Analyte(
            "glucose",
            ("GLU",),
            "Glucose",
            (_form("mmol/L", "1", 1, "3.9-6.1", "3.9", "6.1", "2.8", "22.2"),),
            "2345-7",
        ),
        Analyte(
            "potassium",
            ("K",),
            "Potassium",
            (_form("mmol/L", "1", 1, "3.5-5.3", "3.5", "5.3", "2.8", "6.2"),),
            "2823-3",
        ),
        Analyte(
            "chloride",
            ("CL",),
            "Chloride",
            (_form("mmol/L", "1", 0, "96-108", "96", "108"),),
            "2075-0",
        ),
        Analyte(
            "urea", ("UREA", "BUN"), "Urea", (_form("mmol/L", "1", 1, "2.9-8.2", "2.9", "8.2"),)
        ),
        Analyte(
            "wbc",
            ("WBC",),
            "Leukocytes",
            (_form("10*9/L", "1", 2, "3.5-9.5", "3.5", "9.5", "1.0", "30"),),
            "6690-2",
        ),
        Analyte(
            "rbc",
            ("RBC",),
            "Erythrocytes",
            (_form("10*12/L", "1", 2, "3.8-5.8", "3.8", "5.8"),),
            "789-8",
        ),
        Analyte(
            "hemoglobin",
            ("HGB", "HB"),
            "Haemoglobin",
            (_form("g/L", "1", 0, "115-175", "115", "175", "60", "200"),),
            "718-7",
        ),
        Analyte(
            "hematocrit",
            ("HCT",),
            "Haematocrit",
            (_form("%", "1", 1, "35-50", "35", "50"),),
            "4544-3",
        ),
        Analyte(
            "platelets",
            ("PLT",),
            "Platelets",
            (_form("10*9/L", "1", 0, "125-350", "125", "350", "30", "1000"),),
            "777-3",
        ),
        Analyte(
            "crp",
            ("CRP",),
            "C-reactive protein",
            (_form("mg/L", "1", 1, "0-10", "0", "10"),),
            "1988-5",
        ),
    )
}

STUDY_ANALYTES = (
    "alt",
    "ast",
    "alp",
    "bilirubin_total",
    "albumin",
    "pt_seconds",
    "inr",
    "creatinine",
    "sodium",
)
"""The analytes ``mappings/analytes.yaml`` maps (same keys)."""

UNMAPPED_CODES = ("GGT", "DBIL", "AMMON")
"""Local codes the feed carries for trial subjects that the mapping does not know."""


def quantize(value: Decimal, decimals: int) -> Decimal:
    """Round half-up to ``decimals`` places (what a lab instrument prints)."""
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def flag(value: Decimal, form: Form) -> str:
    """The OBX-8 flag for ``value`` against ``form``'s limits."""
    if form.crit_high is not None and value >= form.crit_high:
        return "HH"
    if form.high is not None and (value >= form.high if form.low is None else value > form.high):
        return "H"
    if form.crit_low is not None and value <= form.crit_low:
        return "LL"
    if form.low is not None and value < form.low:
        return "L"
    return "N"


def in_form(canonical: Decimal, form: Form) -> Decimal:
    """The canonical value expressed in ``form``'s unit, rounded as the lab prints it."""
    return quantize(canonical * form.factor, form.decimals)


def make_result(
    analyte: str, canonical: Decimal, *, form: int = 0, loinc: bool = False, code: int = 0
) -> Result:
    """A final NM result of ``analyte`` whose true value is ``canonical`` (canonical unit)."""
    spec = ANALYTES[analyte]
    chosen = spec.forms[form]
    value = in_form(canonical, chosen)
    use_loinc = loinc and bool(spec.loinc)
    return Result(
        analyte=analyte,
        code=(chosen.loinc or spec.loinc) if use_loinc else spec.codes[code % len(spec.codes)],
        text=spec.text if not use_loinc else spec.codes[0],
        system="LN" if use_loinc else "L",
        value_type="NM",
        value=str(value),
        unit=chosen.unit,
        ref_range=chosen.ref_range,
        flag=flag(value, chosen),
    )


def form_of(found: Result) -> Form:
    """The form a result was written in (by unit and reference range)."""
    for form in ANALYTES[found.analyte].forms:
        if (form.unit, form.ref_range) == (found.unit, found.ref_range):
            return form
    raise KeyError(f"no form of {found.analyte} in {found.unit!r} / {found.ref_range!r}")

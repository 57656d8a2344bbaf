"""CTCAE v5.0 grades of single laboratory results. Pure.

Source: Common Terminology Criteria for Adverse Events (CTCAE) Version 5.0, U.S. Department of
Health and Human Services, National Institutes of Health, National Cancer Institute, published
November 27, 2017 (SOC "Investigations" and "Metabolism and nutrition disorders"). Each rule
below quotes the grade text it implements.

Conventions (they are the CTCAE's own words read literally, nothing added):

- ULN and LLN are the result's own reference range (FHIR ``referenceRange.high``/``low``, in
  the same unit as the value); a rule that needs one and has none gives no grade.
- "x ULN" and "x baseline" are ratios of exact decimals; ``>a - b`` is the half-open interval
  (a, b], ``a - b`` without ``>`` includes a, and ``<a - b`` for a decrease is [b, a).
- "Baseline was abnormal" means the baseline value is above its own ULN.
- Grade 0 means the result meets no grade's criterion (the SDTM custom for LBTOXGR); it is a
  grade, not a missing one.
- A censored value (``<0.5``, ``>1000``) gives no grade: its grade depends on the exact value.

A result that cannot be graded gets ``grade=None`` and the reason; nothing is ever guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

CTCAE_VERSION = "CTCAE v5.0"

ALT = "Alanine aminotransferase increased"
AST = "Aspartate aminotransferase increased"
ALP = "Alkaline phosphatase increased"
BILI = "Blood bilirubin increased"
ALB = "Hypoalbuminemia"
INR = "INR increased"
CREAT = "Creatinine increased"
SODIUM = "Hyponatremia"


@dataclass(frozen=True, slots=True)
class Value:
    """One result as grading needs it: the value (in any unit, the range in the same one)."""

    value: Decimal | None
    comparator: str = ""  # "", "<", "<=", ">=", ">"
    low: Decimal | None = None  # LLN
    high: Decimal | None = None  # ULN
    unit: str = ""  # UCUM; the rules with fixed thresholds (albumin, sodium) need it


@dataclass(frozen=True, slots=True)
class Grade:
    """A CTCAE grade (0-4) with how it was reached, or None with the reason."""

    term: str
    grade: int | None
    basis: str  # "2.5 x ULN", "3.1 x baseline (baseline above ULN)", or why not graded

    @property
    def graded(self) -> bool:
        return self.grade is not None


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule may need besides the value: the subject's baseline result, and whether the
    subject was on anticoagulation (None: not recorded)."""

    baseline: Value | None = None
    is_baseline: bool = False  # the result is the baseline itself (graded against ULN only)
    anticoagulated: bool | None = None


Rule = Callable[[Decimal, Value, Context], tuple[int | None, str]]


def grade(term: str, result: Value, context: Context | None = None) -> Grade:
    """The CTCAE v5.0 grade of ``result`` for ``term`` (one of the module's term constants)."""
    context = context or Context()
    if result.value is None:
        return Grade(term, None, "no numeric value")
    if result.comparator:
        return Grade(term, None, f"censored value ({result.comparator}{_fmt(result.value)})")
    points, basis = RULES[term](result.value, result, context)
    return Grade(term, points, basis)


# Transaminases, alkaline phosphatase, bilirubin: ULN multiples, or baseline multiples when the
# baseline was abnormal. Thresholds: (grade, multiple, inclusive), highest grade first.

_Thresholds = tuple[tuple[int, Decimal, bool], ...]

# CTCAE v5.0, Investigations, "Alanine aminotransferase increased" and "Aspartate
# aminotransferase increased" (the same text):
#   Grade 1 ">ULN - 3.0 x ULN if baseline was normal; 1.5 - 3.0 x baseline if baseline was
#   abnormal"; Grade 2 ">3.0 - 5.0 x ULN ...; >3.0 - 5.0 x baseline ..."; Grade 3 ">5.0 - 20.0
#   x ULN ...; >5.0 - 20.0 x baseline ..."; Grade 4 ">20.0 x ULN ...; >20.0 x baseline ...".
_TRANSAMINASE_ULN: _Thresholds = ((4, Decimal(20), False), (3, Decimal(5), False),
                                  (2, Decimal(3), False), (1, Decimal(1), False))  # fmt: skip
_TRANSAMINASE_BASE: _Thresholds = ((4, Decimal(20), False), (3, Decimal(5), False),
                                   (2, Decimal(3), False), (1, Decimal("1.5"), True))  # fmt: skip
# CTCAE v5.0, Investigations, "Alkaline phosphatase increased":
#   Grade 1 ">ULN - 2.5 x ULN if baseline was normal; 2.0 - 2.5 x baseline if baseline was
#   abnormal"; Grade 2 ">2.5 - 5.0 x ULN ...; >2.5 - 5.0 x baseline ..."; Grade 3 ">5.0 - 20.0
#   x ULN ...; >5.0 - 20.0 x baseline ..."; Grade 4 ">20.0 x ULN ...; >20.0 x baseline ...".
_ALP_ULN: _Thresholds = ((4, Decimal(20), False), (3, Decimal(5), False),
                         (2, Decimal("2.5"), False), (1, Decimal(1), False))  # fmt: skip
_ALP_BASE: _Thresholds = ((4, Decimal(20), False), (3, Decimal(5), False),
                          (2, Decimal("2.5"), False), (1, Decimal(2), True))  # fmt: skip
# CTCAE v5.0, Investigations, "Blood bilirubin increased":
#   Grade 1 ">ULN - 1.5 x ULN if baseline was normal; > 1.0 - 1.5 x baseline if baseline was
#   abnormal"; Grade 2 ">1.5 - 3.0 x ULN ...; >1.5 - 3.0 x baseline ..."; Grade 3 ">3.0 - 10.0
#   x ULN ...; >3.0 - 10.0 x baseline ..."; Grade 4 ">10.0 x ULN ...; >10.0 x baseline ...".
_BILI: _Thresholds = ((4, Decimal(10), False), (3, Decimal(3), False),
                      (2, Decimal("1.5"), False), (1, Decimal(1), False))  # fmt: skip


# Creatinine increased (see _creatinine): ULN multiples for grades 1-4, baseline for 2-3.
_CREAT_ULN: _Thresholds = ((4, Decimal(6), False), (3, Decimal(3), False),
                           (2, Decimal("1.5"), False), (1, Decimal(1), False))  # fmt: skip
_CREAT_BASE: _Thresholds = ((3, Decimal(3), False), (2, Decimal("1.5"), False))
# INR increased (see _inr): the value itself without anticoagulation, baseline multiples with.
_INR_VALUE: _Thresholds = ((3, Decimal("2.5"), False), (2, Decimal("1.5"), False),
                           (1, Decimal("1.2"), False))  # fmt: skip
_INR_BASE: _Thresholds = ((3, Decimal("2.5"), False), (2, Decimal("1.5"), False),
                          (1, Decimal(1), False))  # fmt: skip


def _by_multiple(ratio: Decimal, thresholds: _Thresholds) -> int:
    for points, multiple, inclusive in thresholds:
        if ratio > multiple or (inclusive and ratio == multiple):
            return points
    return 0


def _baseline_rule(uln_rule: _Thresholds, base_rule: _Thresholds) -> Rule:
    """ULN multiples if the baseline was normal, baseline multiples if it was abnormal."""

    def rule(value: Decimal, result: Value, context: Context) -> tuple[int | None, str]:
        uln = result.high
        if uln is None or uln <= 0:
            return None, "no upper reference limit (ULN) on the result"
        if value <= uln:
            # At or below ULN no grade is met by either rule (a baseline multiple above an
            # abnormal baseline is above ULN too), so the baseline is not needed.
            return 0, f"{_ratio(value, uln)} x ULN"
        if context.is_baseline:
            return _by_multiple(value / uln, uln_rule), f"{_ratio(value, uln)} x ULN (baseline)"
        base = _usable_baseline(context.baseline)
        if isinstance(base, str):
            return None, f"above ULN and {base}: which CTCAE rule applies depends on it"
        base_value, base_uln = base
        if base_value <= base_uln:
            return _by_multiple(value / uln, uln_rule), f"{_ratio(value, uln)} x ULN"
        points = _by_multiple(value / base_value, base_rule)
        return points, f"{_ratio(value, base_value)} x baseline (baseline above ULN)"

    return rule


def _usable_baseline(baseline: Value | None) -> tuple[Decimal, Decimal] | str:
    """(baseline value, its ULN), or why the baseline cannot be used."""
    if baseline is None or baseline.value is None:
        return "no baseline result"
    if baseline.comparator:
        return f"the baseline is censored ({baseline.comparator}{_fmt(baseline.value)})"
    if baseline.high is None or baseline.high <= 0:
        return "the baseline has no upper reference limit"
    if baseline.value <= 0:
        return "the baseline is not above zero"
    return baseline.value, baseline.high


def _creatinine(value: Decimal, result: Value, context: Context) -> tuple[int | None, str]:
    """CTCAE v5.0, Investigations, "Creatinine increased": Grade 1 ">ULN - 1.5 x ULN"; Grade 2
    ">1.5 - 3.0 x baseline; >1.5 - 3.0 x ULN"; Grade 3 ">3.0 baseline; >3.0 - 6.0 x ULN"; Grade
    4 ">6.0 x ULN". Either criterion of a grade is enough, so the grade is the higher of the two.
    """
    uln = result.high
    if uln is None or uln <= 0:
        return None, "no upper reference limit (ULN) on the result"
    by_uln = _by_multiple(value / uln, _CREAT_ULN)
    basis = f"{_ratio(value, uln)} x ULN"
    if context.is_baseline or by_uln >= 3:
        # A baseline multiple reaches grade 3 at most, so it cannot change a grade of 3 or 4;
        # the baseline result is its own baseline (1.0 x).
        return by_uln, basis
    base = context.baseline
    if base is None or base.value is None:
        return None, f"{basis}, and no baseline result: grades 2 and 3 also count x baseline"
    if base.comparator:
        return None, f"{basis}, and the baseline is censored ({base.comparator}{base.value})"
    if base.value <= 0:
        return None, f"{basis}, and the baseline is not above zero"
    ratio = value / base.value
    by_base = _by_multiple(ratio, _CREAT_BASE)
    if by_base > by_uln:
        return by_base, f"{_ratio(value, base.value)} x baseline"
    return by_uln, basis


def _hypoalbuminemia(value: Decimal, result: Value, context: Context) -> tuple[int | None, str]:
    """CTCAE v5.0, Metabolism and nutrition disorders, "Hypoalbuminemia": Grade 1 "<LLN - 3
    g/dL; <LLN - 30 g/L"; Grade 2 "<3 - 2 g/dL; <30 - 20 g/L"; Grade 3 "<2 g/dL; <20 g/L";
    Grade 4 "Life-threatening consequences; urgent intervention indicated" (not a laboratory
    criterion, so never given from a value). The value is brought to g/dL first.
    """
    factor = _ALBUMIN_TO_G_DL.get(result.unit)
    if factor is None:
        return None, f"albumin in {result.unit or 'no unit'}: CTCAE's thresholds are in g/dL, g/L"
    value = value * factor
    if value < 2:
        return 3, "< 2 g/dL"
    if value < 3:
        return 2, "2 to < 3 g/dL"
    if result.low is None:
        return None, "no lower reference limit (LLN) on the result"
    if value < result.low * factor:
        return 1, "3 g/dL to < LLN"
    return 0, "at or above LLN"


def _hyponatremia(value: Decimal, result: Value, context: Context) -> tuple[int | None, str]:
    """CTCAE v5.0, Metabolism and nutrition disorders, "Hyponatremia": Grade 1 "<LLN - 130
    mmol/L"; Grade 2 "125-129 mmol/L and asymptomatic"; Grade 3 "125-129 mmol/L symptomatic;
    120-124 mmol/L regardless of symptoms"; Grade 4 "<120 mmol/L; life-threatening
    consequences". 125-129 is grade 2 or 3 by symptoms, which the laboratory does not send: no
    grade there. Bands are read as half-open, so 129.5 is in "125-129" and 124.5 in "120-124".
    """
    if result.unit not in _SODIUM_UNITS:
        return None, f"sodium in {result.unit or 'no unit'}: CTCAE's thresholds are in mmol/L"
    if value < 120:
        return 4, "< 120 mmol/L"
    if value < 125:
        return 3, "120 to < 125 mmol/L"
    if value < 130:
        return None, (
            "125 to < 130 mmol/L is grade 2 if asymptomatic and grade 3 if symptomatic; "
            "symptoms are not recorded"
        )
    if result.low is None:
        return None, "no lower reference limit (LLN) on the result"
    if value < result.low:
        return 1, "130 mmol/L to < LLN"
    return 0, "at or above LLN"


def _inr(value: Decimal, result: Value, context: Context) -> tuple[int | None, str]:
    """CTCAE v5.0, Investigations, "INR increased": Grade 1 ">1.2 - 1.5; >1 - 1.5 x baseline if
    on anticoagulation"; Grade 2 ">1.5 - 2.5; >1.5 - 2.5 x baseline if on anticoagulation";
    Grade 3 ">2.5; >2.5 times above baseline if on anticoagulation". Which criterion applies
    depends on anticoagulation; when it is not recorded there is no grade.
    """
    if context.anticoagulated is None:
        return None, (
            "anticoagulation is not recorded: CTCAE grades INR by its value without "
            "anticoagulation and by multiples of baseline with it"
        )
    if not context.anticoagulated or context.is_baseline:
        points = _by_multiple(value, _INR_VALUE)
        return points, f"INR {_fmt(value)}"
    base = context.baseline
    if base is None or base.value is None or base.comparator or base.value <= 0:
        return None, "on anticoagulation and no usable baseline INR"
    ratio = value / base.value
    points = _by_multiple(ratio, _INR_BASE)
    return points, f"{_ratio(value, base.value)} x baseline (on anticoagulation)"


_ALBUMIN_TO_G_DL = {"g/dL": Decimal(1), "g/L": Decimal("0.1")}
_SODIUM_UNITS = ("mmol/L", "meq/L", "mEq/L")  # monovalent: 1 mEq/L = 1 mmol/L

RULES: dict[str, Rule] = {
    ALT: _baseline_rule(_TRANSAMINASE_ULN, _TRANSAMINASE_BASE),
    AST: _baseline_rule(_TRANSAMINASE_ULN, _TRANSAMINASE_BASE),
    ALP: _baseline_rule(_ALP_ULN, _ALP_BASE),
    BILI: _baseline_rule(_BILI, _BILI),
    CREAT: _creatinine,
    ALB: _hypoalbuminemia,
    SODIUM: _hyponatremia,
    INR: _inr,
}
"""The graded terms and their rules."""


def _ratio(value: Decimal, reference: Decimal) -> str:
    return f"{value / reference:.2f}"


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text

"""MELD, MELD-Na and MELD 3.0, exactly as the OPTN policy states them. Pure.

Natural logarithms, exact decimals, and rounding half away from zero. Every input must be
present and usable, dialysis status included: nothing is defaulted (see ``_inputs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from adapter.errors import ScoreInputError
from adapter.scores._inputs import (
    ALBUMIN,
    BILIRUBIN,
    CREATININE,
    INR,
    SODIUM,
    Number,
    Problem,
    Quantity,
    clamp,
    exact,
    known_bool,
    quantity,
    reasons,
    round_half_up,
)
from adapter.scores.results import Meld3Result, MeldResult

MELD_FORMULA = "MELD (UNOS/OPTN 2002)"
MELD_NA_FORMULA = "MELD-Na (OPTN 2016)"
MELD_3_FORMULA = "MELD 3.0 (OPTN 2023)"

_ONE = Decimal(1)
_MIN_SCORE, _MAX_SCORE = 6, 40
_NA_LOW, _NA_HIGH = Decimal(125), Decimal(137)
_FEMALE = {"f": True, "female": True, "m": False, "male": False}
_SEX_UNKNOWN = {"u", "unknown", "o", "other"}


@dataclass(frozen=True)
class _Labs:
    """Bilirubin and creatinine in mg/dL, INR, and whether dialysis sets creatinine."""

    bilirubin: Decimal
    inr: Decimal
    creatinine: Decimal
    dialysis: bool


def _labs(
    bilirubin: Quantity | None,
    inr: Number | Quantity | None,
    creatinine: Quantity | None,
    dialysis: bool | None,
) -> _Labs | Problem:
    bili = quantity(BILIRUBIN, bilirubin, "mg/dL")
    ratio = quantity(INR, inr, "{INR}")
    crea = quantity(CREATININE, creatinine, "mg/dL")
    dial = known_bool("dialysis status", dialysis)
    if (
        isinstance(bili, Decimal)
        and isinstance(ratio, Decimal)
        and isinstance(crea, Decimal)
        and isinstance(dial, bool)
    ):
        return _Labs(bili, ratio, crea, dial)
    return Problem(reasons(bili, ratio, crea, dial))


def _bound(points: int) -> int:
    return min(max(points, _MIN_SCORE), _MAX_SCORE)


def _meld_bounded(labs: _Labs) -> tuple[Decimal, Decimal, Decimal]:
    """(bilirubin, INR, creatinine) as MELD and MELD-Na use them, bounds applied."""
    crea = Decimal(4) if labs.dialysis else clamp(labs.creatinine, _ONE, Decimal(4))
    return max(labs.bilirubin, _ONE), max(labs.inr, _ONE), crea


def _meld_i(labs: _Labs) -> int:
    """MELD(i): OPTN Policy 9.1.D; Kamath et al., Hepatology 2001;33:464-470; Wiesner et al.,
    Gastroenterology 2003;124:91-96.

    0.957·ln(Cr) + 0.378·ln(bili) + 1.120·ln(INR) + 0.643, with Cr and bili in mg/dL; values
    below 1.0 set to 1.0; Cr above 4.0, or any Cr after two or more dialyses (or 24 h of CVVHD)
    in the prior week, set to 4.0; rounded to the tenth, then multiplied by 10.
    """
    bili, inr, crea = _meld_bounded(labs)
    raw = (
        Decimal("0.957") * crea.ln()
        + Decimal("0.378") * bili.ln()
        + Decimal("1.120") * inr.ln()
        + Decimal("0.643")
    )
    return int(round_half_up(raw, "0.1") * 10)


@exact
def meld(
    *,
    bilirubin: Quantity | None,
    inr: Number | Quantity | None,
    creatinine: Quantity | None,
    dialysis: bool | None,
) -> MeldResult:
    """MELD (UNOS/OPTN 2002): MELD(i) bounded to 6..40."""
    labs = _labs(bilirubin, inr, creatinine, dialysis)
    if isinstance(labs, Problem):
        return MeldResult(formula=MELD_FORMULA, computable=False, reason=labs.reason)
    return MeldResult(formula=MELD_FORMULA, computable=True, score=_bound(_meld_i(labs)))


def _sodium_adjusted(meld_i: int, sodium: Decimal) -> int:
    """MELD-Na: OPTN Policy 9.1.D effective 2016-01-11; Kim et al., N Engl J Med
    2008;359:1018-1026.

    When the rounded MELD(i) is above 11: MELD(i) + 1.32·(137 - Na) - 0.033·MELD(i)·(137 - Na),
    Na bounded to 125..137 mmol/L; rounded. MELD(i) itself is used unbounded: the adjusted
    value rises with MELD(i) and equals 40 at MELD(i) = 40, so bounding before or after gives
    the same score.
    """
    if meld_i <= 11:
        return meld_i
    gap = Decimal(137) - clamp(sodium, _NA_LOW, _NA_HIGH)
    value = meld_i + Decimal("1.32") * gap - Decimal("0.033") * meld_i * gap
    return int(round_half_up(value))


@exact
def meld_na(
    *,
    bilirubin: Quantity | None,
    inr: Number | Quantity | None,
    creatinine: Quantity | None,
    sodium: Quantity | None,
    dialysis: bool | None,
) -> MeldResult:
    """MELD-Na (OPTN 2016), bounded to 6..40. Sodium is required even when MELD(i) ≤ 11."""
    labs = _labs(bilirubin, inr, creatinine, dialysis)
    na = quantity(SODIUM, sodium, "mmol/L")
    if isinstance(labs, Problem) or isinstance(na, Problem):
        return MeldResult(formula=MELD_NA_FORMULA, computable=False, reason=reasons(labs, na))
    score = _bound(_sodium_adjusted(_meld_i(labs), na))
    return MeldResult(formula=MELD_NA_FORMULA, computable=True, score=score)


def _female_term(sex: str | None, age_years: int | None) -> Decimal | Problem:
    """1 for females aged 18 or more and for everyone aged 12-17, else 0 (OPTN 2023).

    OPTN Policy 9.1.D (MELD 3.0, effective 2023-07-13) gives candidates aged 12 to 17 the
    female coefficient (1.33) whatever their sex, so at those ages sex is not an input and a
    missing sex does not stop the score. From 18 on sex decides the term and is required: a
    missing sex is never guessed.
    """
    female = _is_female(sex)  # a sex that is given must still be a valid one
    age = _age(age_years)
    if isinstance(age, int) and age < 18:
        return _ONE
    if isinstance(female, Problem) or isinstance(age, Problem):
        return Problem(reasons(female, age))
    return _ONE if female else Decimal(0)


def _is_female(sex: str | None) -> bool | Problem:
    if sex is None:
        return Problem("sex missing")
    if not isinstance(sex, str):
        raise ScoreInputError(f"sex: expected 'F' or 'M', got {sex!r}")
    key = sex.strip().lower()
    if key in _SEX_UNKNOWN:
        return Problem(f"sex {sex!r}: MELD 3.0 is defined for female or male only")
    if key not in _FEMALE:
        raise ScoreInputError(f"sex: unknown value {sex!r} (accepted: F, M, female, male)")
    return _FEMALE[key]


def _age(age_years: int | None) -> int | Problem:
    if age_years is None:
        return Problem("age missing")
    if isinstance(age_years, bool) or not isinstance(age_years, int):
        raise ScoreInputError(f"age_years: expected whole years, got {age_years!r}")
    if age_years < 0:
        return Problem(f"age must not be negative, got {age_years}")
    if age_years < 12:
        return Problem("MELD 3.0 is not defined under 12 years (PELD applies)")
    return age_years


@dataclass(frozen=True)
class _Meld3Inputs:
    labs: _Labs
    sodium: Decimal
    albumin: Decimal
    female: Decimal


def _meld_3_bounded(v: _Meld3Inputs) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """(bilirubin, INR, creatinine, sodium, albumin) as MELD 3.0 uses them, bounds applied."""
    crea = Decimal(3) if v.labs.dialysis else clamp(v.labs.creatinine, _ONE, Decimal(3))
    return (
        max(v.labs.bilirubin, _ONE),
        max(v.labs.inr, _ONE),
        crea,
        clamp(v.sodium, _NA_LOW, _NA_HIGH),
        clamp(v.albumin, Decimal("1.5"), Decimal("3.5")),
    )


def _meld_3_raw(v: _Meld3Inputs) -> Decimal:
    """MELD 3.0: Kim et al., Gastroenterology 2021;161:1887-1895.e4; OPTN Policy 9.1.D
    effective 2023-07-13.

    1.33·female + 4.56·ln(bili) + 0.82·(137 - Na) - 0.24·(137 - Na)·ln(bili) + 9.09·ln(INR)
    + 11.14·ln(Cr) + 1.85·(3.5 - alb) - 1.83·(3.5 - alb)·ln(Cr) + 6; bili, INR and Cr at least
    1.0; Cr at most 3.0 and 3.0 on dialysis; Na 125..137 mmol/L; albumin 1.5..3.5 g/dL.
    """
    bili, inr, crea, sodium, albumin = _meld_3_bounded(v)
    ln_bili, ln_crea = bili.ln(), crea.ln()
    na_gap = Decimal(137) - sodium
    alb_gap = Decimal("3.5") - albumin
    return (
        Decimal("1.33") * v.female
        + Decimal("4.56") * ln_bili
        + Decimal("0.82") * na_gap
        - Decimal("0.24") * na_gap * ln_bili
        + Decimal("9.09") * inr.ln()
        + Decimal("11.14") * ln_crea
        + Decimal("1.85") * alb_gap
        - Decimal("1.83") * alb_gap * ln_crea
        + Decimal(6)
    )


@exact
def meld_3(
    *,
    bilirubin: Quantity | None,
    inr: Number | Quantity | None,
    creatinine: Quantity | None,
    sodium: Quantity | None,
    albumin: Quantity | None,
    sex: str | None,
    age_years: int | None,
    dialysis: bool | None,
) -> Meld3Result:
    """MELD 3.0 (OPTN 2023): one rounding at the end, then capped at 40 (the minimum, 6, is
    reached by construction). ``score_uncapped`` is the rounded value before the cap."""
    inputs = _meld_3_inputs(bilirubin, inr, creatinine, sodium, albumin, sex, age_years, dialysis)
    if isinstance(inputs, Problem):
        return Meld3Result(formula=MELD_3_FORMULA, computable=False, reason=inputs.reason)
    uncapped = int(round_half_up(_meld_3_raw(inputs)))
    return Meld3Result(
        formula=MELD_3_FORMULA, computable=True, score=_bound(uncapped), score_uncapped=uncapped
    )


def _meld_3_inputs(
    bilirubin: Quantity | None,
    inr: Number | Quantity | None,
    creatinine: Quantity | None,
    sodium: Quantity | None,
    albumin: Quantity | None,
    sex: str | None,
    age_years: int | None,
    dialysis: bool | None,
) -> _Meld3Inputs | Problem:
    labs = _labs(bilirubin, inr, creatinine, dialysis)
    na = quantity(SODIUM, sodium, "mmol/L")
    alb = quantity(ALBUMIN, albumin, "g/dL")
    female = _female_term(sex, age_years)
    if (
        isinstance(labs, _Labs)
        and isinstance(na, Decimal)
        and isinstance(alb, Decimal)
        and isinstance(female, Decimal)
    ):
        return _Meld3Inputs(labs, na, alb, female)
    return Problem(reasons(labs, na, alb, female))

"""Child-Pugh score and class (Pugh et al., 1973), with exact band edges. Pure.

Middle bands are closed at both ends: bilirubin 2.0 and 3.0 mg/dL both score 2, albumin 2.8
and 3.5 g/dL both score 2, INR 1.7 and 2.3 both score 2, PT prolongation 4 and 6 s both score
2. Every input must be present; INR is never derived from PT.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from adapter.errors import ScoreInputError
from adapter.scores._inputs import (
    ALBUMIN,
    BILIRUBIN,
    INR,
    PT_PROLONGATION,
    Number,
    Problem,
    Quantity,
    choice,
    exact,
    quantity,
    reasons,
)
from adapter.scores.results import ChildPughResult, Klass

CHILD_PUGH_FORMULA = "Child-Pugh (Pugh 1973)"

_ASCITES = {"none": 1, "mild": 2, "moderate-severe": 3}
_ENCEPHALOPATHY = {"none": 1, "grade1-2": 2, "grade3-4": 3}
# Bilirubin bands in mg/dL (low, high): 1 point below low, 2 from low to high, 3 above high.
_BILIRUBIN_BANDS = (Decimal(2), Decimal(3))
_CHOLESTATIC_BANDS = (Decimal(4), Decimal(10))  # PBC/PSC
_ALBUMIN_BANDS = (Decimal("2.8"), Decimal("3.5"))  # g/dL, falling: 1 point above 3.5
_INR_BANDS = (Decimal("1.7"), Decimal("2.3"))
_PT_BANDS = (Decimal(4), Decimal(6))  # seconds prolonged over control


@dataclass(frozen=True)
class _Points:
    bilirubin: int
    albumin: int
    coagulation: int
    ascites: int
    encephalopathy: int

    def total(self) -> int:
        return self.bilirubin + self.albumin + self.coagulation + self.ascites + self.encephalopathy


def _rising(value: Decimal, bands: tuple[Decimal, Decimal]) -> int:
    """1 below the low edge, 2 from low to high inclusive, 3 above the high edge."""
    low, high = bands
    return 1 if value < low else 2 if value <= high else 3


def _falling(value: Decimal, bands: tuple[Decimal, Decimal]) -> int:
    """1 above the high edge, 2 from low to high inclusive, 3 below the low edge."""
    low, high = bands
    return 1 if value > high else 2 if value >= low else 3


def _klass(points: int) -> Klass:
    """Class A 5-6, B 7-9, C 10-15."""
    return "A" if points <= 6 else "B" if points <= 9 else "C"


def _coagulation(inr: Number | Quantity | None, pt: Quantity | None) -> int | Problem:
    """INR bands; PT prolongation bands only when INR is absent (never an INR from PT).

    An INR that is present but unusable (zero, NaN) makes the score not computable: it does
    not fall back to PT.
    """
    if inr is not None:
        ratio = quantity(INR, inr, "{INR}")
        return ratio if isinstance(ratio, Problem) else _rising(ratio, _INR_BANDS)
    if pt is not None:
        seconds = quantity(PT_PROLONGATION, pt, "s")
        return seconds if isinstance(seconds, Problem) else _rising(seconds, _PT_BANDS)
    return Problem("INR missing and PT prolongation missing")


def _points(
    bilirubin: Quantity | None,
    albumin: Quantity | None,
    coagulation: int | Problem,
    ascites: str | None,
    encephalopathy: str | None,
    cholestatic: bool,
) -> _Points | Problem:
    bili = quantity(BILIRUBIN, bilirubin, "mg/dL")
    alb = quantity(ALBUMIN, albumin, "g/dL")
    asc = choice("ascites", ascites, _ASCITES)
    enc = choice("encephalopathy", encephalopathy, _ENCEPHALOPATHY)
    if (
        isinstance(bili, Decimal)
        and isinstance(alb, Decimal)
        and isinstance(coagulation, int)
        and isinstance(asc, int)
        and isinstance(enc, int)
    ):
        bands = _CHOLESTATIC_BANDS if cholestatic else _BILIRUBIN_BANDS
        return _Points(_rising(bili, bands), _falling(alb, _ALBUMIN_BANDS), coagulation, asc, enc)
    return Problem(reasons(bili, alb, coagulation, asc, enc))


@exact
def child_pugh(
    *,
    bilirubin: Quantity | None,
    albumin: Quantity | None,
    inr: Number | Quantity | None = None,
    pt_seconds_prolonged: Quantity | None = None,
    ascites: str | None,
    encephalopathy: str | None,
    cholestatic: bool = False,
) -> ChildPughResult:
    """Child-Pugh points 5..15 and class: Pugh RNH et al., Br J Surg 1973;60:646-649.

    Bilirubin < 2 / 2-3 / > 3 mg/dL (cholestatic disease, PBC/PSC: < 4 / 4-10 / > 10);
    albumin > 3.5 / 2.8-3.5 / < 2.8 g/dL; INR < 1.7 / 1.7-2.3 / > 2.3, or when INR is absent
    PT prolonged < 4 / 4-6 / > 6 s; ascites none / mild / moderate-severe; encephalopathy none
    / grade 1-2 / grade 3-4. ``ascites`` and ``encephalopathy`` are required (None → not
    computable).
    """
    if not isinstance(cholestatic, bool):
        raise ScoreInputError(f"cholestatic: expected True or False, got {cholestatic!r}")
    coagulation = _coagulation(inr, pt_seconds_prolonged)
    points = _points(bilirubin, albumin, coagulation, ascites, encephalopathy, cholestatic)
    if isinstance(points, Problem):
        return ChildPughResult(formula=CHILD_PUGH_FORMULA, computable=False, reason=points.reason)
    total = points.total()
    return ChildPughResult(
        formula=CHILD_PUGH_FORMULA, computable=True, score=total, klass=_klass(total)
    )

"""ALBI score and grade (Johnson et al., J Clin Oncol 2015). Pure."""

from __future__ import annotations

from decimal import Decimal

from adapter.scores._inputs import ALBUMIN, BILIRUBIN, Problem, Quantity, exact, quantity, reasons
from adapter.scores.results import AlbiResult, Grade

ALBI_FORMULA = "ALBI (Johnson 2015)"

_GRADE_1_MAX = Decimal("-2.60")
_GRADE_2_MAX = Decimal("-1.39")


def _grade(value: Decimal) -> Grade:
    """Grade 1 at or below -2.60, grade 2 at or below -1.39, grade 3 above."""
    return 1 if value <= _GRADE_1_MAX else 2 if value <= _GRADE_2_MAX else 3


@exact
def albi(*, bilirubin: Quantity | None, albumin: Quantity | None) -> AlbiResult:
    """ALBI = 0.66·log10(bilirubin µmol/L) - 0.085·albumin g/L: Johnson PJ et al.,
    J Clin Oncol 2015;33:550-558. ``score`` is the unrounded value; the grade uses it exactly.
    """
    bili = quantity(BILIRUBIN, bilirubin, "umol/L")
    alb = quantity(ALBUMIN, albumin, "g/L")
    if isinstance(bili, Problem) or isinstance(alb, Problem):
        return AlbiResult(formula=ALBI_FORMULA, computable=False, reason=reasons(bili, alb))
    value = Decimal("0.66") * bili.log10() - Decimal("0.085") * alb
    return AlbiResult(
        formula=ALBI_FORMULA, computable=True, score=float(value), grade=_grade(value)
    )

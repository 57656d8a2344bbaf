"""Reading score inputs: ``(value, unit)`` pairs to exact decimals in the formula's unit.

Everything here is pure. Values become :class:`decimal.Decimal` (a float through its shortest
repr, so ``0.99`` is 0.99 and not 0.98999…), units are converted with the published factors,
and thresholds are then compared without floating-point artefacts.

Two kinds of trouble, kept apart on purpose:

* a **malformed** input (unknown unit, a string where a number belongs, a bare number for a
  lab value that needs a unit) raises :class:`~adapter.errors.ScoreInputError`: going on would
  mean guessing what the caller meant;
* a **missing or unusable** value (None, zero, negative, NaN, unknown dialysis status, …)
  gives a :class:`Problem`, and the score is reported as not computable with that reason.
  Nothing is ever defaulted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from functools import wraps
from typing import ParamSpec, TypeVar

from adapter.errors import ScoreInputError

Number = int | float | Decimal
Quantity = tuple[Number, str]
"""A laboratory value with its unit, e.g. ``(1.9, "mg/dL")`` or ``(115, "umol/L")``."""

_PRECISION = 28
_MICRO_SIGNS = ("µ", "μ")  # U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Problem:
    """Why one input cannot be used (the score is then not computable)."""

    reason: str


@dataclass(frozen=True)
class Analyte:
    """A lab input: its name, and how many of each accepted unit make one reference unit."""

    name: str
    per_reference: Mapping[str, Decimal]
    positive: bool = True
    bare_number_ok: bool = False

    def factor(self, unit: str) -> Decimal:
        """The number of ``unit`` in one reference unit; unknown units raise."""
        key = normalise_unit(unit)
        if key not in self.per_reference:
            accepted = ", ".join(sorted(self.per_reference))
            raise ScoreInputError(f"{self.name}: unknown unit {unit!r} (accepted: {accepted})")
        return self.per_reference[key]


# Conversion factors: bilirubin 17.1 µmol/L per mg/dL, creatinine 88.4 µmol/L per mg/dL,
# albumin 10 g/L per g/dL; sodium mEq/L = mmol/L (monovalent ion).
BILIRUBIN = Analyte("bilirubin", {"mg/dL": Decimal(1), "umol/L": Decimal("17.1")})
CREATININE = Analyte("creatinine", {"mg/dL": Decimal(1), "umol/L": Decimal("88.4")})
ALBUMIN = Analyte("albumin", {"g/dL": Decimal(1), "g/L": Decimal(10)})
SODIUM = Analyte("sodium", {"mmol/L": Decimal(1), "mEq/L": Decimal(1)})
INR = Analyte("INR", {"{INR}": Decimal(1), "1": Decimal(1)}, bare_number_ok=True)
# A prolongation is a difference (patient PT minus control): 0 s and below are real values.
PT_PROLONGATION = Analyte("PT prolongation", {"s": Decimal(1)}, positive=False)


def exact(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` in a private decimal context (28 digits), whatever the caller set."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(Context(prec=_PRECISION)):
            return func(*args, **kwargs)

    return wrapper


def normalise_unit(unit: str) -> str:
    """Spell the micro sign as ``u`` (``µmol/L`` and ``μmol/L`` → ``umol/L``)."""
    text = unit.strip()
    for sign in _MICRO_SIGNS:
        text = text.replace(sign, "u")
    return text


def round_half_up(value: Decimal, step: str = "1") -> Decimal:
    """Round half away from zero to ``step`` (``"1"``, ``"0.1"``, …); not Python's ``round``."""
    return value.quantize(Decimal(step), rounding=ROUND_HALF_UP)


def clamp(value: Decimal, low: Decimal, high: Decimal) -> Decimal:
    """Bound ``value`` to ``low..high``."""
    return min(max(value, low), high)


def to_decimal(name: str, value: object) -> Decimal:
    """A number as an exact decimal; anything else (bool, str, None inside a pair) raises."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ScoreInputError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal("NaN")
    return Decimal(value)


def quantity(analyte: Analyte, given: object, unit: str) -> Decimal | Problem:
    """Read ``given`` (``(value, unit)``, or None) and express it in ``unit``."""
    if given is None:
        return Problem(f"{analyte.name} missing")
    value, given_unit = _split(analyte, given)
    factor = analyte.factor(given_unit)
    number = to_decimal(analyte.name, value)
    problem = _unusable(analyte, number, given_unit)
    if problem is not None:
        return problem
    target = analyte.factor(unit)
    return number if factor == target else number / factor * target


def _split(analyte: Analyte, given: object) -> tuple[object, str]:
    if isinstance(given, tuple) and len(given) == 2 and isinstance(given[1], str):
        return given[0], given[1]
    if analyte.bare_number_ok and not isinstance(given, tuple | str):
        return given, next(iter(analyte.per_reference))
    raise ScoreInputError(
        f"{analyte.name}: expected (value, unit), got {given!r}"
        + ("" if analyte.bare_number_ok else " — a lab value needs its unit")
    )


def _unusable(analyte: Analyte, number: Decimal, unit: str) -> Problem | None:
    if not number.is_finite():
        return Problem(f"{analyte.name} is not a finite number")
    if analyte.positive and number <= 0:
        return Problem(f"{analyte.name} must be above zero, got {number} {unit}")
    return None


def known_bool(name: str, given: object) -> bool | Problem:
    """A yes/no input: True, False, or None (unknown → Problem)."""
    if given is None:
        return Problem(f"{name} unknown")
    if not isinstance(given, bool):
        raise ScoreInputError(f"{name}: expected True, False or None, got {given!r}")
    return given


def choice(name: str, given: object, options: Mapping[str, int]) -> int | Problem:
    """A graded clinical finding (e.g. ascites) to its points; None → Problem."""
    if given is None:
        return Problem(f"{name} missing")
    if not isinstance(given, str) or _key(given) not in options:
        accepted = ", ".join(repr(option) for option in options)
        raise ScoreInputError(f"{name}: unknown value {given!r} (accepted: {accepted})")
    return options[_key(given)]


def _key(text: str) -> str:
    return text.strip().lower().replace("\u2013", "-").replace(" ", "")


def reasons(*parsed: object) -> str:
    """The reasons of every :class:`Problem` among ``parsed``, joined."""
    return "; ".join(item.reason for item in parsed if isinstance(item, Problem))

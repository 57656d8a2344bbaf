"""OBX-5 interpretation: numbers (with comparators) from NM, SN and ST; text otherwise; and
OBX-7 reference ranges.

A number is taken with at most 15 significant digits and a magnitude between 1e-15 and
1e15 (``MAX_DIGITS``): no laboratory measures more finely, and unit conversion works with
28-digit decimals, which a 40-digit value overflowed. A longer number is held with the
reason; a reference range that long is kept as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from adapter.errors import MappingError

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_COMPARED = re.compile(rf"^\s*(?P<cmp><=|>=|<|>|=)?\s*(?P<num>{_NUMBER})\s*$")
_SN = re.compile(rf"^(?P<cmp><=|>=|<|>|=|<>)?\^(?P<num>{_NUMBER})$")
_RANGE = re.compile(
    rf"^\s*(?P<low>{_NUMBER})\s*(?:-|\u2013|to|_)\s*(?P<high>{_NUMBER})\s*(?P<unit>[^\d\s].*)?$",
    re.IGNORECASE,
)
_BOUND = re.compile(rf"^\s*(?P<cmp><=|>=|<|>)\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\d\s].*)?$")
NUMERIC_TYPES = frozenset({"NM", "SN", "ST"})
MAX_DIGITS = 15


@dataclass(frozen=True, slots=True)
class Number:
    """A numeric result as sent: the value and an optional FHIR comparator."""

    value: Decimal
    comparator: str | None = None  # one of <, <=, >=, >


@dataclass(frozen=True, slots=True)
class RangeBounds:
    """A parsed OBX-7: low and/or high in the result's unit, or text only."""

    low: Decimal | None
    high: Decimal | None
    text: str


def parse_number(value_type: str, value: str) -> Number | None:
    """The number an NM, SN or ST value carries, or None when it carries none.

    SN is ``comparator^number`` (``<^0.10``, ``^182``); a number with its comparator squeezed
    into one component (``<0.10``) is read too, as real senders do it.
    """
    if value_type not in NUMERIC_TYPES:
        return None
    match = _SN.match(value.strip()) if value_type == "SN" else None
    match = match or _COMPARED.match(value.replace("^", "", 1) if value_type == "SN" else value)
    if not match:
        return None
    comparator = match["cmp"]
    if comparator == "<>":
        return None
    try:
        number = Decimal(match["num"])
    except InvalidOperation:
        return None
    if not _measurable(number):
        shown = match["num"] if len(match["num"]) <= 40 else match["num"][:40] + "..."
        raise MappingError(
            f"OBX-5 {shown} has more digits than a measurement can have (at most "
            f"{MAX_DIGITS} significant digits, between 1e-{MAX_DIGITS} and 1e{MAX_DIGITS})",
            hint="the value is garbled: ask the lab to resend the result",
        )
    return Number(number, None if comparator in (None, "=") else comparator)


def _measurable(number: Decimal) -> bool:
    """Within what a lab reports and unit conversion can carry exactly (module docstring)."""
    if not number:
        return True
    digits = number.as_tuple().digits  # trailing zeros count: they were written
    significant = len(digits) - next(i for i, d in enumerate(digits) if d)
    return significant <= MAX_DIGITS and -MAX_DIGITS <= number.adjusted() <= MAX_DIGITS


_RANGE_CACHED = 256  # longer OBX-7 texts are not ranges anyone parses (and not cached)


def parse_range(text: str) -> RangeBounds | None:
    """OBX-7 -> bounds: ``7-56``, ``-3-3``, ``4.3 to 6.2``, ``70_105``, ``<0.50``, ``>5``.

    A lone ``>5`` is a lower bound, ``<0.50`` an upper bound; anything else is kept as text.
    """
    text = text.strip()
    if not text:
        return None
    if len(text) > _RANGE_CACHED:
        return RangeBounds(None, None, text)
    return _parse_range(text)


@lru_cache(maxsize=1024)  # pure, and each analyte's range recurs in every message
def _parse_range(text: str) -> RangeBounds:
    if match := _RANGE.match(text):
        low, high = Decimal(match["low"]), Decimal(match["high"])
        if _measurable(low) and _measurable(high):
            return RangeBounds(low, high, text)
    elif match := _BOUND.match(text):
        bound = Decimal(match["num"])
        is_upper = match["cmp"].startswith("<")
        if _measurable(bound):
            return RangeBounds(None if is_upper else bound, bound if is_upper else None, text)
    return RangeBounds(None, None, text)

"""OBX-5 interpretation: numbers (with comparators) from NM, SN and ST; text otherwise; and
OBX-7 reference ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_COMPARED = re.compile(rf"^\s*(?P<cmp><=|>=|<|>|=)?\s*(?P<num>{_NUMBER})\s*$")
_SN = re.compile(rf"^(?P<cmp><=|>=|<|>|=|<>)?\^(?P<num>{_NUMBER})$")
_RANGE = re.compile(
    rf"^\s*(?P<low>{_NUMBER})\s*(?:-|\u2013|to|_)\s*(?P<high>{_NUMBER})\s*(?P<unit>[^\d\s].*)?$",
    re.IGNORECASE,
)
_BOUND = re.compile(rf"^\s*(?P<cmp><=|>=|<|>)\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\d\s].*)?$")
NUMERIC_TYPES = frozenset({"NM", "SN", "ST"})


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
    return Number(number, None if comparator in (None, "=") else comparator)


@lru_cache(maxsize=1024)  # pure, and each analyte's range recurs in every message
def parse_range(text: str) -> RangeBounds | None:
    """OBX-7 -> bounds: ``7-56``, ``-3-3``, ``4.3 to 6.2``, ``70_105``, ``<0.50``, ``>5``.

    A lone ``>5`` is a lower bound, ``<0.50`` an upper bound; anything else is kept as text.
    """
    text = text.strip()
    if not text:
        return None
    if match := _RANGE.match(text):
        return RangeBounds(Decimal(match["low"]), Decimal(match["high"]), text)
    if match := _BOUND.match(text):
        bound = Decimal(match["num"])
        is_upper = match["cmp"].startswith("<")
        return RangeBounds(None if is_upper else bound, bound if is_upper else None, text)
    return RangeBounds(None, None, text)

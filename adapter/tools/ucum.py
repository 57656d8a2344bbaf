"""UCUM validity and dimensional conversion factors, through ``ucumvert``.

``ucumvert`` parses a unit with the grammar of the UCUM specification
(https://ucum.org/ucum) and turns it into a ``pint`` unit, which can say whether two units
are commensurable and what factor converts one into the other. Annotations (``{INR}``) are
unity in UCUM (§ 12), so they are dropped before the conversion.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from ucumvert import InvalidUcumError, PintUcumRegistry, parse_ucum  # type: ignore[import-untyped]

_LONE_ANNOTATION = re.compile(r"(?<![\w\]\)])\{[^}]*\}")
_ANNOTATION = re.compile(r"\{[^}]*\}")


def ucum_problem(unit: str) -> str | None:
    """Why ``unit`` is not valid UCUM (case-sensitive syntax), or None when it is."""
    try:
        parse_ucum(unit)
    except InvalidUcumError as exc:
        return str(exc).splitlines()[0]
    return None


def _without_annotations(unit: str) -> str:
    return _ANNOTATION.sub("", _LONE_ANNOTATION.sub("1", unit))


class UcumConverter:
    """Conversion factors between UCUM units (building it takes about half a second)."""

    def __init__(self) -> None:
        self._registry: Any = PintUcumRegistry()

    def factor(self, source: str, target: str) -> Decimal | None:
        """What a value in ``source`` is multiplied by to be in ``target``.

        None when the units are not commensurable (µmol/L and mg/dL need a molar mass;
        [IU] is an arbitrary unit) or cannot be converted at all.
        """
        try:
            source_unit = self._registry.from_ucum(_without_annotations(source))
            target_unit = self._registry.from_ucum(_without_annotations(target))
            quantity = (1 * source_unit).to(target_unit)
        except Exception:  # pint and lark raise many types; each means "cannot convert"
            return None
        return Decimal(repr(float(quantity.magnitude)))


def same_factor(declared: Decimal, dimensional: Decimal) -> bool:
    """Whether a declared factor equals the dimensional one (to a part in 10^9)."""
    return abs(declared - dimensional) <= abs(dimensional) * Decimal("1e-9")

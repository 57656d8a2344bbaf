"""The small immutable results every score function returns.

``computable`` says whether there is a score; when there is not, ``score`` is None and
``reason`` says why (every unusable input, joined with ``; ``). ``formula`` names the
definition and its version, for provenance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Klass = Literal["A", "B", "C"]
Grade = Literal[1, 2, 3]


@dataclass(frozen=True, kw_only=True)
class MeldResult:
    """MELD or MELD-Na: integer points 6..40."""

    formula: str
    computable: bool
    score: int | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Meld3Result:
    """MELD 3.0: integer points capped at 40, and the rounded value before the cap."""

    formula: str
    computable: bool
    score: int | None = None
    score_uncapped: int | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ChildPughResult:
    """Child-Pugh: points 5..15 and class A/B/C."""

    formula: str
    computable: bool
    score: int | None = None
    klass: Klass | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class AlbiResult:
    """ALBI: the unrounded linear predictor and grade 1/2/3."""

    formula: str
    computable: bool
    score: float | None = None
    grade: Grade | None = None
    reason: str | None = None

"""Liver scores: MELD, MELD-Na, MELD 3.0, Child-Pugh and ALBI, exactly as published.

The pure core of the ``scores`` stage (no I/O)::

    from adapter.scores import meld, meld_na, meld_3, child_pugh, albi

    meld(bilirubin=(1.9, "mg/dL"), inr=1.2, creatinine=(115, "umol/L"), dialysis=False)

Lab inputs are ``(value, unit)`` with unit one of mg/dL, umol/L (or µmol/L), g/dL, g/L,
mmol/L, mEq/L, s; INR is a number or ``(value, "{INR}")``; any input may be None (missing).
An unknown unit raises :class:`~adapter.errors.ScoreInputError`; a missing or unusable value
gives a result with ``computable=False`` and the ``reason``, never a default.
"""

from adapter.scores.albi import albi
from adapter.scores.child_pugh import child_pugh
from adapter.scores.meld import meld, meld_3, meld_na
from adapter.scores.results import AlbiResult, ChildPughResult, Meld3Result, MeldResult

__all__ = [
    "AlbiResult",
    "ChildPughResult",
    "Meld3Result",
    "MeldResult",
    "albi",
    "child_pugh",
    "meld",
    "meld_3",
    "meld_na",
]

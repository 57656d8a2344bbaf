"""The codes of TrialBridge's score Observations: one small constant table.

Score Observations (MELD, MELD-Na, MELD 3.0, Child-Pugh, ALBI) carry ``code.coding`` with
system :data:`SCORE_SYSTEM` and one of the codes below, and their value as ``valueQuantity``
(or ``valueInteger``) in the UCUM unit :data:`SCORE_UNIT`. The writer of those Observations
and every reader (the research report) use this table, so the codes cannot drift apart.
Keys are the names ``config/study.yaml`` lists under ``scores``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

SCORE_SYSTEM = "urn:trialbridge:score"
SCORE_UNIT = "{score}"


@dataclass(frozen=True, slots=True)
class ScoreCode:
    """One score: the study configuration's key, its code in :data:`SCORE_SYSTEM`, display."""

    key: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        """The Coding a score Observation carries in ``code.coding``."""
        return {"system": SCORE_SYSTEM, "code": self.code, "display": self.display}


SCORE_CODES: MappingProxyType[str, ScoreCode] = MappingProxyType(
    {
        score.key: score
        for score in (
            ScoreCode("meld", "meld", "MELD"),
            ScoreCode("meld_na", "meld-na", "MELD-Na"),
            ScoreCode("meld_3", "meld-3", "MELD 3.0"),
            ScoreCode("child_pugh", "child-pugh", "Child-Pugh score"),
            ScoreCode("albi", "albi", "ALBI score"),
        )
    }
)
"""Score key (as in ``config/study.yaml``) -> its code."""


def score_by_code(code: str) -> ScoreCode | None:
    """The score a code in :data:`SCORE_SYSTEM` means, or None."""
    return next((s for s in SCORE_CODES.values() if s.code == code), None)

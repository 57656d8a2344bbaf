"""The codes of TrialBridge's score Observations: one small constant table.

Score Observations (MELD, MELD-Na, MELD 3.0, Child-Pugh, ALBI) carry ``code.coding`` with
system :data:`SCORE_SYSTEM` and one of the codes below, and their value as ``valueQuantity``
(or ``valueInteger``) in the UCUM unit :data:`SCORE_UNIT`. The writer of those Observations
(:mod:`adapter.scoring`) and every reader (the research report) use this table, so the codes
cannot drift apart. Keys are the names ``config/study.yaml`` lists under ``scores``.

Standard codes, written as a second coding after the study's own (readers match on
:data:`SCORE_SYSTEM`; other systems can match on LOINC):

* MELD: LOINC 44760-7 "Model for end-stage liver disease score" (Pt, ^Patient, Qn; active;
  LOINC's definition: calculated from serum creatinine, total bilirubin and INR).
* MELD-Na: LOINC 100348-2 "Model for end-stage liver disease sodium score" (Qn; active).
  Source for both: the LOINC entries as published on https://loinc.org (looked up through
  https://www.healthassure.in/codes/loinc-44760-7-… and …/loinc-100348-2-…).
* MELD 3.0: no LOINC or SNOMED CT code found; the study code only. 44760-7 is not reused:
  it names the 2002 formula's score, and a reader must not mix the two.
* Child-Pugh: LOINC has 98153-0 "Child-Pugh panel", but that is a panel (an order code),
  not the total score; no code for the total score was found, so the study code only.
* ALBI: no standard code found; the study code only.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

SCORE_SYSTEM = "urn:trialbridge:score"
SCORE_UNIT = "{score}"
LOINC = "http://loinc.org"


@dataclass(frozen=True, slots=True)
class ScoreCode:
    """One score: the study configuration's key, its code in :data:`SCORE_SYSTEM`, display,
    and the standard (LOINC) code when one exists."""

    key: str
    code: str
    display: str
    loinc: str | None = None
    loinc_display: str | None = None

    def coding(self) -> dict[str, str]:
        """The Coding a score Observation carries first in ``code.coding``."""
        return {"system": SCORE_SYSTEM, "code": self.code, "display": self.display}

    def codings(self) -> list[dict[str, str]]:
        """Every Coding of the score: the study's, then the standard one if any."""
        standard = (
            [{"system": LOINC, "code": self.loinc, "display": self.loinc_display or ""}]
            if self.loinc
            else []
        )
        return [self.coding(), *standard]


SCORE_CODES: MappingProxyType[str, ScoreCode] = MappingProxyType(
    {
        score.key: score
        for score in (
            ScoreCode("meld", "meld", "MELD", "44760-7", "Model for end-stage liver disease score"),
            ScoreCode(
                "meld_na",
                "meld-na",
                "MELD-Na",
                "100348-2",
                "Model for end-stage liver disease sodium score",
            ),
            ScoreCode("meld_3", "meld-3", "MELD 3.0"),
            ScoreCode("child_pugh", "child-pugh", "Child-Pugh score"),
            ScoreCode("albi", "albi", "ALBI score"),
        )
    }
)
"""Score key (as in ``config/study.yaml``) -> its code."""

# Parts of a score Observation other than its value (``component.code``), in SCORE_SYSTEM.
CHILD_PUGH_CLASS = "child-pugh-class"
CHILD_PUGH_CLASS_SYSTEM = f"{SCORE_SYSTEM}:child-pugh-class"  # codes A, B, C
ALBI_GRADE = "albi-grade"
ALBI_GRADE_SYSTEM = f"{SCORE_SYSTEM}:albi-grade"  # codes 1, 2, 3
MELD_3_UNCAPPED = "meld-3-uncapped"


def score_by_code(code: str) -> ScoreCode | None:
    """The score a code in :data:`SCORE_SYSTEM` means, or None."""
    return next((s for s in SCORE_CODES.values() if s.code == code), None)
